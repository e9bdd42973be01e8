"""Generation-level comparison: topic-word rate under ActAdd against the same-position
token injection (and unsteered), on common random numbers.

For each pair, every arm samples ``n_samples`` completions of every prompt with the seeds
``sample_seed(seed, prompt, sample)`` — the same seeds in every arm, so arm differences are
not seed noise:

- ``unsteered``: the prompt as it is;
- ``actadd``: ActAdd's vector at ``layer`` (front alignment, the pair's coefficient);
- ``inject_replace``: the pair's aligned p+ tokens over the prompt's first tokens, the
  positions the vector covers;
- ``ctxdiff`` (when asked for): the contextual difference, ActAdd's difference read after
  each prompt and added at ActAdd's rows of that prompt, no token replaced
  (:mod:`actadd.studies.token_injection.contextual`); ``ctxdiff_normed``: the same at
  ActAdd's row norms.

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
from actadd.core.steering import Placement, steering
from actadd.errors import ConfigError
from actadd.runtime.backends import Model
from actadd.runtime.tokens import encode
from actadd.studies.token_injection.conditions import PairSetting, aligned_arms, place_ids
from actadd.studies.token_injection.contextual import contextual_difference
from actadd.studies.token_injection.nulls import match_row_norms
from actadd.studies.token_injection.settings import DEFAULT_GENERATION_ARMS, GENERATION_ARMS

__all__ = ["ALL_ARMS", "ARMS", "COLUMNS", "topic_rates"]

#: the arms a run samples by default
ARMS: tuple[str, ...] = DEFAULT_GENERATION_ARMS
#: every arm a run may ask for (``arms``)
ALL_ARMS: tuple[str, ...] = GENERATION_ARMS
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
    arms: Sequence[str] = ARMS,
) -> pd.DataFrame:
    """One row per (pair, arm, prompt, sample): :data:`COLUMNS`. ``topics`` maps a pair's
    name to the words its completions are counted with (default: its target words);
    ``arms`` are the arms sampled (of :data:`ALL_ARMS`; ``unsteered`` always)."""
    unknown = sorted(set(arms) - set(ALL_ARMS))
    if unknown:
        raise ConfigError(f"Unknown generation arms {unknown}; allowed: {list(ALL_ARMS)}.")
    topics = dict(topics or {})
    sampling = sampling or Sampling.paper()
    clean = [encode(model, p) for p in prompts]
    jobs = [(p, s) for p in range(len(prompts)) for s in range(n_samples)]
    # the batch rows (jobs) that sample each prompt
    by_prompt = [tuple(j for j, (q, _) in enumerate(jobs) if q == p) for p in range(len(prompts))]

    def sample(lists: list[list[int]], vecs=None) -> list[str]:
        gens = [torch.Generator().manual_seed(sample_seed(seed, p, s)) for p, s in jobs]
        with steering(model, vecs) if vecs is not None else nullcontext():
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
        actadd = pair.vector(model, layer)
        texts_of = {"unsteered": unsteered}
        if "actadd" in arms:
            texts_of["actadd"] = sample(clean, [actadd])
        if "inject_replace" in arms:
            texts_of["inject_replace"] = sample([place_ids(t, plus, "replace") for t in clean])
        if {"ctxdiff", "ctxdiff_normed"} & set(arms):
            vecs = contextual_difference(model, clean, pair, layer)
            for arm in ("ctxdiff", "ctxdiff_normed"):
                if arm in arms:  # prompt p's own vector on the batch rows that sample p
                    own = [v if arm == "ctxdiff" else match_row_norms(v, actadd) for v in vecs]
                    placed = [Placement(v, "front", by_prompt[p]) for p, v in enumerate(own)]
                    texts_of[arm] = sample(clean, placed)
        for arm, texts in texts_of.items():
            hits = topic_counts(texts, topics.get(pair.name, pair.target_words)) > 0
            for (p, s), text, hit in zip(jobs, texts, hits):
                rows.append((pair.name, layer, arm, p, s, float(hit), text))
    return pd.DataFrame(rows, columns=COLUMNS)
