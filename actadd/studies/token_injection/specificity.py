"""The specificity matrix: does ActAdd(wᵢ) resemble injecting wᵢ, and not wⱼ?

For concepts (pairs) ``i`` and ``j`` at layer ``L``, cell ``(i, j)`` compares the
next-token log-prob shift of ActAdd(pairᵢ) at ``L`` with that of pairⱼ's aligned p+ tokens
replacing the prompt's first tokens (the positions ActAdd's vector covers), per prompt:

- ``effect_corr``: Pearson correlation of the two shifts over the vocabulary;
- ``target_vs_control``: under ActAdd(pairᵢ), the log-prob change of pairⱼ's target words
  minus that of the control word set.

Nulls (compared with every injection ``j``). By default (``null_draws_per_prompt = k``)
every prompt gets its own ``k`` draws, evaluated as ``k`` conditions in which each prompt
carries its own vector (:func:`~actadd.studies.token_injection.conditions.per_prompt_draws`):
``k × n`` draws per cell (``n`` prompts) for the cost of ``k`` conditions, and a prompt's null value
(the mean over its ``k`` draws) carries the draw-to-draw spread, which the bootstrap over
prompts then covers. For the ``words`` null the draws are the null words, dealt to the
prompts in a seeded random order (cycling when ``k × n`` exceeds the list). The older
design, ``null_draws = N`` (each draw on every prompt, ``N`` conditions per cell and every
null word on every prompt), is kept. The nulls:

- ``words``: ActAdd of unrelated one-token words (``" u" − ""``, the concepts' pad and
  coefficient) — not norm-matched, a real ActAdd of another concept;
- ``residual``: vectors from the residual distribution at ``L``, norm-matched per row to
  ActAdd(pairᵢ) (:func:`~actadd.studies.token_injection.conditions.residual_random_like`);
- ``embedding``: differences of two random word-token embeddings, norm-matched per row to
  ActAdd(pairᵢ) (:func:`~actadd.studies.token_injection.conditions.embedding_random_like`).

Every steered condition is a block of rows of the one batched forward
(:class:`~actadd.studies.token_injection.forwards.PromptBatch`), processed in chunks so that
only a chunk's log-probs are held at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from actadd.config import Pair
from actadd.core.metrics import logprob_mass, target_token_ids
from actadd.core.placement import Placement
from actadd.core.vectors import SteeringVector
from actadd.errors import ConfigError
from actadd.lab.stats import pearson
from actadd.progress import bar as progress_bar
from actadd.runtime.backends import Model
from actadd.studies.token_injection.conditions import (
    PairSetting,
    aligned_arms,
    check_null_draws,
    embedding_random_like,
    per_prompt_draws,
    place_ids,
    residual_random_like,
    seed_of,
    word_token_pool,
)
from actadd.studies.token_injection.forwards import PromptBatch, _text_resid, next_token_logprobs

__all__ = [
    "DRAW_COLUMNS",
    "MATRIX_COLUMNS",
    "NULL_COLUMNS",
    "SPEC_NULLS",
    "SpecificityResult",
    "concept_pairs",
    "specificity_matrix",
]

SPEC_NULLS: tuple[str, ...] = ("words", "residual", "embedding")
MATRIX_COLUMNS = "layer actadd inject prompt_index effect_corr target_vs_control".split()
NULL_COLUMNS = (
    "layer null actadd inject prompt_index draws draws_per_prompt effect_corr target_vs_control"
).split()
# per draw: its mean over the prompts (null_draws; prompt_index -1), or its value on the one
# prompt it was drawn for (null_draws_per_prompt; draw = prompt_index · k + j)
DRAW_COLUMNS = "layer null actadd inject draw prompt_index effect_corr target_vs_control".split()


def concept_pairs(
    words: Sequence[str], coeff: float, pad_token: str | int, *, prefix: str = ""
) -> list[PairSetting]:
    """One-token concept pairs ``" w" − ""`` (the empty side is the pad), target ``w``."""
    return [
        PairSetting(f"{prefix}{w}", Pair(f" {w}", "", pad_token=pad_token), coeff, (w,))
        for w in words
    ]


@dataclass(frozen=True)
class SpecificityResult:
    """``matrix`` (:data:`MATRIX_COLUMNS`), ``nulls`` (per prompt, mean over its draws;
    :data:`NULL_COLUMNS`) and ``draws`` (per draw; :data:`DRAW_COLUMNS`)."""

    matrix: pd.DataFrame
    nulls: pd.DataFrame
    draws: pd.DataFrame


def specificity_matrix(
    model: Model,
    prompts: Sequence[str],
    pairs: Sequence[PairSetting],
    layers: Sequence[int],
    *,
    null_words: Sequence[str],
    null_coeff: float,
    null_pad: str | int,
    null_draws: int = 0,
    null_draws_per_prompt: int = 0,
    control_words: Sequence[str],
    seed: int = 0,
    chunk: int = 16,
    progress: bool | None = None,
) -> SpecificityResult:
    """ActAdd(pairᵢ) against the same-position injection of pairⱼ, for every ``i``, ``j``
    and layer, with the three nulls (see the module docstring): ``null_draws_per_prompt``
    draws for each prompt (default design) or ``null_draws`` draws on every prompt; both 0:
    the words null alone, every null word on every prompt. ``null_words`` must not repeat a
    concept's target word."""
    check_null_draws(null_draws, null_draws_per_prompt, "specificity")
    if not null_words:
        raise ConfigError("The specificity matrix needs null_words (the words null).")
    pairs = list(pairs)
    if len(pairs) < 2:
        raise ConfigError("The specificity matrix needs at least 2 pairs.")
    overlap = sorted({w.strip().lower() for w in null_words} & _targets(pairs))
    if overlap:
        raise ConfigError(f"null_words repeat concept target words: {overlap}.")
    control = target_token_ids(model, control_words, strict=False)
    if not control:
        raise ConfigError("The specificity matrix needs a control word set of single tokens.")
    batch = PromptBatch(model, prompts)
    base = batch.base
    n = len(prompts)
    target_ids = [target_token_ids(model, p.target_words, strict=False) for p in pairs]
    inj_shift = []
    for p in pairs:
        plus, _ = aligned_arms(model, p.positive, p.negative, p.equalize, p.pad_token)
        lists = [place_ids(t, plus, "replace") for t in batch.token_lists]
        inj_shift.append(next_token_logprobs(model, lists) - base)
    base_t = torch.stack([logprob_mass(base, ids) for ids in target_ids])  # [J, n]
    base_c = logprob_mass(base, control)

    def measure(lp: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``[J, n]`` similarity to each injection and target-vs-control change."""
        shift = lp - base
        corr = torch.stack([pearson(shift, s) for s in inj_shift]).numpy()
        tgt = torch.stack([logprob_mass(lp, ids) for ids in target_ids]) - base_t
        return corr, (tgt - (logprob_mass(lp, control) - base_c)[None]).numpy()

    null_pairs = concept_pairs(null_words, null_coeff, null_pad, prefix="null:")
    k = null_draws_per_prompt
    pool = word_token_pool(model) if (null_draws or k) else []
    # per-prompt design: prompt t's j-th null word is dealt[t·k + j]
    order = torch.randperm(
        len(null_pairs), generator=torch.Generator().manual_seed(seed_of(seed + 3))
    ).tolist()
    dealt = [order[i % len(order)] for i in range(n * k)]
    names = [p.name for p in pairs]
    matrix, nulls, draws = [], [], []
    bar = progress_bar(len(layers), "specificity", "layer", progress)
    with bar:
        for layer in layers:
            used = null_pairs if not k else [null_pairs[i] for i in sorted(set(dealt))]
            vecs = {
                p.name: p.vector(model, layer) for p in pairs + used
            }  # ActAdd of every concept and every null word used
            Job = tuple[str, str, int, SteeringVector | list[Placement]]
            jobs: list[Job] = [("actadd", p.name, 0, vecs[p.name]) for p in pairs]
            if k:
                for j in range(k):
                    words_j = [
                        Placement(vecs[null_pairs[dealt[t * k + j]].name], "front", (t,))
                        for t in range(n)
                    ]
                    jobs.append(("words", "", j, words_j))
                rows = torch.cat([r[1:] for r in _text_resid(batch, layer)])
                for pi, p in enumerate(pairs):
                    for ki, (kind, fn) in enumerate(_draw_fns(model, vecs[p.name], rows, pool)):
                        conds = per_prompt_draws(fn, n, k, (seed + 2, pi, layer, ki))
                        jobs += [(kind, p.name, j, c) for j, c in enumerate(conds)]
            else:
                jobs += [("words", "", d, vecs[q.name]) for d, q in enumerate(null_pairs)]
            if null_draws:
                rows = torch.cat([r[1:] for r in _text_resid(batch, layer)])
                for pi, p in enumerate(pairs):
                    gen = torch.Generator().manual_seed(seed_of(seed + 2, pi, layer))
                    for d in range(null_draws):
                        ref = vecs[p.name]
                        jobs.append(("residual", p.name, d, residual_random_like(ref, rows, gen)))
                        jobs.append(
                            ("embedding", p.name, d, embedding_random_like(model, ref, pool, gen))
                        )
            acc: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
            for c0 in range(0, len(jobs), chunk):
                part = jobs[c0 : c0 + chunk]
                lps = batch.logprobs_many([v if isinstance(v, list) else [v] for *_, v in part])
                for (kind, ref_name, d, _), lp in zip(part, lps):
                    corr, tvc = measure(lp)
                    if kind == "actadd":
                        for j, inj in enumerate(names):
                            for t in range(n):
                                matrix.append((layer, ref_name, inj, t, corr[j, t], tvc[j, t]))
                        continue
                    acc.setdefault((kind, ref_name), []).append((corr, tvc))
                    for j, inj in enumerate(names):
                        if not k:
                            row = (layer, kind, ref_name, inj, d, -1)
                            draws.append((*row, corr[j].mean(), tvc[j].mean()))
                            continue
                        for t in range(n):
                            row = (layer, kind, ref_name, inj, t * k + d, t)
                            draws.append((*row, corr[j, t], tvc[j, t]))
            for (kind, ref_name), ms in acc.items():
                corr = np.mean([m[0] for m in ms], axis=0)
                tvc = np.mean([m[1] for m in ms], axis=0)
                total = len(ms) * n if k else len(ms)
                if k and kind == "words":
                    total = len(set(dealt))  # distinct words behind the cell
                for j, inj in enumerate(names):
                    for t in range(n):
                        row = (layer, kind, ref_name, inj, t, total, len(ms))
                        nulls.append((*row, corr[j, t], tvc[j, t]))
            bar.update(1)
    return SpecificityResult(
        pd.DataFrame(matrix, columns=MATRIX_COLUMNS),
        pd.DataFrame(nulls, columns=NULL_COLUMNS),
        pd.DataFrame(draws, columns=DRAW_COLUMNS),
    )


def _draw_fns(
    model: Model, ref: SteeringVector, rows: Tensor, pool: list[int]
) -> tuple[tuple[str, Callable[[torch.Generator], SteeringVector]], ...]:
    """The residual and embedding null draws norm-matched per row to ``ref``."""
    return (
        ("residual", lambda g: residual_random_like(ref, rows, g)),
        ("embedding", lambda g: embedding_random_like(model, ref, pool, g)),
    )


def _targets(pairs: Sequence[PairSetting]) -> set[str]:
    return {w.strip().lower() for p in pairs for w in p.target_words}
