"""Generation-level comparison: topic-word rate under ActAdd against the same-position
token injection (and unsteered), on common random numbers.

For each pair, every arm samples ``n_samples`` completions of every prompt with the seeds
``sample_seed(seed, prompt, sample)`` — the same seeds in every arm, so arm differences are
not seed noise:

- ``unsteered``: the prompt as it is;
- ``actadd``: ActAdd's vector at ``layer`` (front alignment, the pair's coefficient);
- ``inject_replace``: the pair's aligned p+ tokens over the prompt's first tokens, the
  positions the vector covers.

``topic_any`` is 1 when the completion contains one of the pair's topic words (whole word,
any case; :func:`actadd.core.metrics.topic_counts`): ``topics[pair]``, a topic list (the
config's ``[generation] topics``), else the pair's target words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import pandas as pd
import torch

from actadd.core.generation import Sampling, generate_tokens, sample_seed
from actadd.core.metrics import topic_counts
from actadd.core.steering import steering
from actadd.runtime.backends import Model
from actadd.runtime.tokens import encode
from actadd.studies.token_injection.conditions import PairSetting, aligned_arms, place_ids

__all__ = ["ARMS", "COLUMNS", "topic_rates"]

ARMS: tuple[str, ...] = ("unsteered", "actadd", "inject_replace")
COLUMNS = "pair layer arm text_index sample topic_any completion".split()


@torch.no_grad()
def topic_rates(
    model: Model,
    pairs: Sequence[PairSetting],
    layer: int,
    prompts: Sequence[str],
    *,
    n_samples: int,
    seed: int,
    max_new_tokens: int,
    sampling: Sampling | None = None,
    topics: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """One row per (pair, arm, prompt, sample): :data:`COLUMNS`. ``topics`` maps a pair's
    name to the words its completions are counted with (default: its target words)."""
    topics = dict(topics or {})
    sampling = sampling or Sampling.paper()
    clean = [encode(model, p) for p in prompts]
    jobs = [(p, s) for p in range(len(prompts)) for s in range(n_samples)]

    def sample(lists: list[list[int]], vec=None) -> list[str]:
        gens = [torch.Generator().manual_seed(sample_seed(seed, p, s)) for p, s in jobs]
        with steering(model, [vec]) if vec is not None else nullcontext():
            out = generate_tokens(
                model,
                [lists[p] for p, _ in jobs],
                gens,
                max_new_tokens=max_new_tokens,
                sampling=sampling,
            )
        return [model.tokenizer.decode(t) for t in out]

    unsteered = sample(clean)
    rows = []
    for pair in pairs:
        plus, _ = aligned_arms(model, pair.positive, pair.negative, pair.equalize, pair.pad_token)
        arms = {
            "unsteered": unsteered,
            "actadd": sample(clean, pair.vector(model, layer)),
            "inject_replace": sample([place_ids(t, plus, "replace") for t in clean]),
        }
        for arm, texts in arms.items():
            hits = topic_counts(texts, topics.get(pair.name, pair.target_words)) > 0
            for (p, s), text, hit in zip(jobs, texts, hits):
                rows.append((pair.name, layer, arm, p, s, float(hit), text))
    return pd.DataFrame(rows, columns=COLUMNS)
