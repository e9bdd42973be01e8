"""Comparing the token-injection conditions with ActAdd on next-token distributions.

:class:`PromptBatch` holds the prompts (unpadded, grouped by length) with their clean
residual streams; every steered condition is a set of rows of one batched forward from the
clean prefix (:class:`actadd.prefix.PrefixBatch`). Token injections are plain forwards on
the injected token lists (:func:`next_token_logprobs`).

Metrics per condition and prompt (:func:`effect_metrics`): ``kl`` = KL(condition ‖ baseline),
``target_logprob_delta`` = change of the log-probability mass on the pair's target words,
``effect_corr`` = Pearson correlation over the vocabulary of the condition's log-prob shift with
ActAdd's shift, ``topk_overlap`` = overlap of the ``k`` most-promoted tokens (largest shift) with
ActAdd's, ``inject_corr`` = correlation of the shift with that of prepending p+. Any
perturbation of the front positions shares a generic component of the shift, so the
correlations have a floor well above 0: read them against the ``random`` control's.

:func:`compare_conditions` runs everything for a list of :class:`PairSetting` under
:class:`Settings` and returns one tidy DataFrame (:data:`COLUMNS`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from actadd.analysis.conditions import (
    PairSetting,
    Settings,
    dim_slice,
    embedding_vector,
    inject_tokens,
    random_like,
)
from actadd.config import text_list
from actadd.errors import ConfigError, SteeringError
from actadd.metrics import kl_div, log_probs, logprob_mass, target_token_ids
from actadd.metrics import topk_overlap as _topk_overlap
from actadd.prefix import Condition, PrefixBatch
from actadd.stats import pearson
from actadd.steer import AlignLike, OnShort, Placement, as_placement
from actadd.vectors import SteeringVector

# ---------------------------------------------------------------------- forwards


def _placed(vectors: Condition, align: AlignLike) -> list[Placement]:
    """A condition's vectors with ``align`` as their default alignment."""
    if vectors is None:
        return []
    items = [vectors] if isinstance(vectors, (SteeringVector, Placement)) else list(vectors)
    placed = [as_placement(v) for v in items]
    return [p if p.align is not None else Placement(p.vector, align, p.rows) for p in placed]


@torch.no_grad()
def next_token_logprobs(
    model: HookedTransformer,
    token_lists: Sequence[Sequence[int]],
    vectors: Condition = None,
    *,
    align: AlignLike = "front",
    on_short: OnShort = "error",
) -> Float[Tensor, "batch d_vocab"]:
    """Log-probabilities of the next token after each token list, steered by ``vectors``
    if given. Lists of equal length share a forward pass; none is padded, so each row is
    a plain forward on that token list (up to float rounding)."""
    if not len(token_lists) or any(len(t) == 0 for t in token_lists):
        raise SteeringError("next_token_logprobs needs at least one non-empty token list.")
    batch = PrefixBatch(model, token_lists, padding="by_length", max_rows=128)
    (logits,) = batch.logits([_placed(vectors, align)], on_short=on_short)
    return log_probs(logits).cpu()


class PromptBatch(PrefixBatch):
    """Prompts (leading token first, grouped by length, never padded) with their clean
    residual streams at every layer, read out as next-token log-probs on the CPU.

    Attributes:
        texts, token_lists: the texts and their ids.
        base: unsteered next-token log-probs, ``[n_texts, d_vocab]``.
    """

    def __init__(self, model: HookedTransformer, texts: Sequence[str]) -> None:
        self.texts = text_list(texts, "prompts")
        self.token_lists = [model.to_tokens(t)[0].tolist() for t in self.texts]
        super().__init__(model, self.token_lists, padding="by_length", max_rows=128)
        self.prefetch(range(model.cfg.n_layers + 1))
        self.base = log_probs(self.clean).cpu()

    def logprobs(
        self, vectors: Condition = None, *, align: AlignLike = "front", on_short: OnShort = "error"
    ) -> Float[Tensor, "n_texts d_vocab"]:
        """Next-token log-probs at the end of every text, steered by ``vectors``."""
        return self.logprobs_many([vectors], align=align, on_short=on_short)[0]

    def logprobs_many(
        self,
        conditions: Sequence[Condition],
        *,
        align: AlignLike = "front",
        on_short: OnShort = "error",
    ) -> list[Float[Tensor, "n_texts d_vocab"]]:
        """:meth:`logprobs` for each condition (a vector, a list of vectors, or ``None``),
        all conditions batched from the clean prefix."""
        placed = [_placed(c, align) for c in conditions]
        return [log_probs(x).cpu() for x in self.logits(placed, on_short=on_short)]


# ---------------------------------------------------------------------- metrics


def effect_metrics(
    base: Float[Tensor, "batch d_vocab"],
    cond: Float[Tensor, "batch d_vocab"],
    target_ids: Sequence[int],
    *,
    ref: tuple[Tensor, Tensor] | None = None,
    inject: tuple[Tensor, Tensor] | None = None,
    k: int = 20,
) -> dict[str, np.ndarray]:
    """Per-row effect of a condition, from next-token log-probs ``[batch, d_vocab]``.

    ``cond`` is compared with its baseline ``base``; ``ref`` and ``inject`` are
    ``(baseline, condition)`` pairs whose log-prob shifts the condition's shift is compared
    with (ActAdd and prepend injection). Returns arrays of length ``batch``: ``kl``,
    ``target_logprob_delta``, ``effect_corr``, ``topk_overlap``, ``inject_corr`` (NaN
    where a comparison is not given or a shift is exactly zero).
    """
    if base.shape != cond.shape:
        raise SteeringError(f"shape mismatch: {tuple(base.shape)} vs {tuple(cond.shape)}.")
    delta = cond - base
    nan = np.full(base.shape[0], np.nan)
    out = dict(
        kl=kl_div(cond, base).cpu().numpy(),
        target_logprob_delta=(logprob_mass(cond, target_ids) - logprob_mass(base, target_ids))
        .cpu()
        .numpy(),
        effect_corr=nan,
        topk_overlap=nan,
        inject_corr=nan,
    )
    if ref is not None:
        ref_delta = ref[1] - ref[0]
        out["effect_corr"] = pearson(delta, ref_delta).cpu().numpy()
        out["topk_overlap"] = _topk_overlap(delta, ref_delta, k).cpu().numpy()
    if inject is not None:
        out["inject_corr"] = pearson(delta, inject[1] - inject[0]).cpu().numpy()
    return out


# ---------------------------------------------------------------------- the runner

# one row per (pair, layer, condition, text); see compare_conditions
COLUMNS: list[str] = (
    "model pair layer condition family add_layer source_layer coeff scale other_pair "
    "prompt_index prompt prompt_kind kl target_logprob_delta effect_corr topk_overlap "
    "inject_corr vec_norm other_target_logprob_delta additive_corr"
).split()
METRICS: list[str] = (
    "kl target_logprob_delta effect_corr topk_overlap inject_corr "
    "other_target_logprob_delta additive_corr"
).split()


@dataclass
class _Cond:
    """One steering condition at a reference layer: its vectors and its table columns."""

    name: str
    family: str
    vectors: list[SteeringVector]
    meta: dict[str, Any] = field(default_factory=dict)


def _seed_for(seed: int, pair_index: int, layer: int) -> int:
    return int(np.random.SeedSequence([seed, pair_index, layer]).generate_state(1)[0])


def compare_conditions(
    model: HookedTransformer,
    pairs: Sequence[PairSetting],
    settings: Settings,
    *,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run every condition of ``settings`` for every pair; return one tidy DataFrame.

    One row per (pair, reference layer, condition, text), plus a ``prompt_kind="mean"`` row
    per (pair, layer, condition) averaging the user prompts (neutral texts left out).
    Columns: :data:`COLUMNS`. ``layer`` is the reference layer, whose ActAdd effect
    ``effect_corr`` compares with; ``add_layer`` is where the condition itself adds (NaN for
    injections); ``scale`` is the factor on the pair's reference vector (transplants: the
    norm ratio from ``source_layer``; ``coeff`` rows: the multiple of the pair's ``c``).
    """
    pairs = list(pairs)
    if not pairs or not all(isinstance(p, PairSetting) for p in pairs):
        raise ConfigError("Give at least one PairSetting (actadd.analysis.PairSetting).")
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise ConfigError(f"Pair names must be unique, got {names}.")
    by_name = {p.name: p for p in pairs}
    for p in pairs:
        if p.sum_with is not None and p.sum_with not in by_name:
            raise ConfigError(
                f"Pair {p.name!r} has sum_with={p.sum_with!r}, not a pair of this run ({names})."
            )
    settings.check_model(model)

    texts = list(settings.prompts) + list(settings.neutral)
    ref_layers = settings.reference_layers()
    sweep = set(settings.sweep_sources) or set(range(max(settings.sweep_targets, default=-1) + 1))
    needed = sorted(set(ref_layers) | set(settings.transplant_sources) | sweep)
    steps = len(pairs) * (len(ref_layers) + 1)
    bar = tqdm(total=steps, desc="token injection", unit="step", disable=_disable(progress))
    records: list[dict] = []
    with bar:
        batch = PromptBatch(model, texts)
        norms = {layer: batch.typical_norm(layer) for layer in range(model.cfg.n_layers + 1)}
        units = {
            p.name: SteeringVector.from_pair_layers(
                model,
                p.positive,
                p.negative,
                needed,
                1.0,
                equalize=p.equalize,
                pad_token=p.pad_token,
            )
            for p in pairs
        }
        for pi, pair in enumerate(pairs):
            bar.set_postfix_str(f"{pair.name}: injections")
            ids = target_token_ids(model, pair.target_words, strict=False)
            if not ids:
                raise ConfigError(
                    f"Pair {pair.name!r}: none of its target words {pair.target_words} is a "
                    f"single token in {model.cfg.model_name}."
                )
            injections = _injections(model, batch, pair, settings)
            emb = None
            if settings.embedding:
                vec = embedding_vector(
                    model,
                    pair.positive,
                    pair.negative,
                    pair.coeff,
                    equalize=pair.equalize,
                    pad_token=pair.pad_token,
                )
                emb = batch.logprobs(vec, on_short=settings.on_short)
            bar.update(1)
            for layer in ref_layers:
                bar.set_postfix_str(f"{pair.name}: L{layer}")
                conds = _conditions(pair, pi, layer, settings, units, norms, by_name)
                lps = batch.logprobs_many([c.vectors for c in conds], on_short=settings.on_short)
                records += _layer_rows(
                    model, batch, pair, ids, layer, conds, lps, injections, emb, settings
                )
                bar.update(1)
    df = pd.DataFrame.from_records(records)
    for col in COLUMNS:
        if col not in df:
            df[col] = np.nan
    return df[COLUMNS]


def _layer_rows(
    model: HookedTransformer,
    batch: PromptBatch,
    pair: PairSetting,
    ids: list[int],
    layer: int,
    conds: list[_Cond],
    lps: list[Tensor],
    injections: dict[str, tuple[Tensor, Tensor]],
    emb: Tensor | None,
    settings: Settings,
) -> list[dict]:
    """Table rows of every condition at one reference layer, from their log-probs."""
    texts = list(settings.prompts) + list(settings.neutral)
    kinds = ["user"] * len(settings.prompts) + ["neutral"] * len(settings.neutral)
    got = dict(zip([c.name for c in conds], lps))
    ref = (batch.base, got["actadd"])
    records: list[dict] = []

    def emit(name, family, cond, baseline=batch.base, extra=None, **meta) -> None:
        m = effect_metrics(
            baseline, cond, ids, ref=ref, inject=injections["prepend"], k=settings.topk
        )
        m.update(extra or {})
        meta = {"pair": pair.name, "layer": layer, "condition": name, **meta}
        records.extend(_rows(model, texts, kinds, family, m, meta))

    for c, lp in zip(conds, lps):
        if c.family == "sum":
            other = c.meta["other_pair"]
            extra = _sum_extras(model, batch.base, lp, ref[1], got["_other"], other)
            emit(c.name, c.family, lp, extra=extra, **{**c.meta, "other_pair": other.name})
        elif not c.name.startswith("_"):
            emit(c.name, c.family, lp, **c.meta)
    for name in settings.injections:
        base, lp = injections[name]
        emit(f"inject_{name}", "injection", lp, baseline=base)
    if emb is not None:
        emit("embedding_l0", "embedding", emb, add_layer=0, coeff=pair.coeff)
    return records


def _conditions(
    pair: PairSetting,
    pair_index: int,
    layer: int,
    settings: Settings,
    units: dict[str, dict[int, SteeringVector]],
    norms: dict[int, float],
    by_name: dict[str, PairSetting],
) -> list[_Cond]:
    """The steering conditions of ``pair`` at reference ``layer`` (ActAdd first)."""
    unit = units[pair.name][layer]  # coefficient 1
    actadd_vec = unit * pair.coeff
    at = dict(add_layer=layer, coeff=pair.coeff)

    def cond(name: str, family: str, vecs: list[SteeringVector], **meta) -> _Cond:
        norm = float(sum(vecs[1:], vecs[0]).tensor.norm()) if len(vecs) else 0.0
        return _Cond(name, family, vecs, {**at, "vec_norm": norm, **meta})

    conds = [cond("actadd", "reference", [actadd_vec])]
    if settings.random_control:
        gen = torch.Generator().manual_seed(_seed_for(settings.seed, pair_index, layer))
        conds.append(cond("random", "control", [random_like(actadd_vec, gen)]))
    if settings.slice_frac is not None:
        conds.append(cond("slice", "control", [dim_slice(actadd_vec, float(settings.slice_frac))]))
    sources = {s for s in settings.transplant_sources if s < layer}
    if layer in settings.sweep_targets:
        sources |= set(settings.sweep_sources or range(layer + 1))
    for s in sorted(sources):
        # transplant_vector's construction, from the pair's vectors computed once per pair
        scale = 1.0 if s == layer else norms[layer] / norms[s]
        vec = (units[pair.name][s] * (pair.coeff * scale)).at_layer(layer)
        conds.append(cond("transplant", "transplant", [vec], source_layer=s, scale=scale))
    if layer in settings.dose_layers:
        for m in settings.dose_scales:
            c = m * pair.coeff
            conds.append(cond("coeff", "dose", [unit * c], coeff=c, scale=m))
        if pair.sum_with is not None:
            other = by_name[pair.sum_with]
            other_vec = units[other.name][layer] * other.coeff
            conds.append(cond("_other", "", [other_vec]))
            conds.append(cond("sum", "sum", [actadd_vec + other_vec], other_pair=other))
    return conds


def _sum_extras(
    model: HookedTransformer,
    base: Tensor,
    sum_lp: Tensor,
    ref_lp: Tensor,
    other_lp: Tensor,
    other: PairSetting,
) -> dict[str, np.ndarray]:
    """Columns of a ``sum`` row: the other pair's target change, and how well the sum's
    shift is predicted by adding the two vectors' separate shifts."""
    other_ids = target_token_ids(model, other.target_words, strict=False)
    delta = logprob_mass(sum_lp, other_ids) - logprob_mass(base, other_ids)
    additive = (ref_lp - base) + (other_lp - base)
    return dict(
        other_target_logprob_delta=delta.cpu().numpy(),
        additive_corr=pearson(sum_lp - base, additive).cpu().numpy(),
    )


def _rows(model, texts, kinds, family, m: dict[str, np.ndarray], meta: dict) -> list[dict]:
    """Per-text rows of one condition, then the mean over the user prompts."""
    rows = []
    for i, text in enumerate(texts):
        row = dict(model=model.cfg.model_name, family=family, prompt_index=i, prompt=text)
        row.update(prompt_kind=kinds[i], **meta)
        row.update({k: float(v[i]) for k, v in m.items()})
        rows.append(row)
    user = [r for r in rows if r["prompt_kind"] == "user"]
    mean = {**user[0], "prompt_index": -1, "prompt": "<mean over user prompts>"}
    mean["prompt_kind"] = "mean"
    for k in m:
        vals = [r[k] for r in user if not math.isnan(r[k])]
        mean[k] = float(np.mean(vals)) if vals else float("nan")
    return rows + [mean]


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _injections(
    model: HookedTransformer, batch: PromptBatch, pair: PairSetting, settings: Settings
) -> dict[str, tuple[Tensor, Tensor]]:
    """``{injection: (baseline log-probs, log-probs)}``; ``"prepend"`` is always there."""
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for name in dict.fromkeys(("prepend", *settings.injections)):
        if name == "prepend_contrast":
            minus = _inject_all(model, batch, pair.negative, "prepend")
            out[name] = (minus, out["prepend"][1])
        else:
            out[name] = (batch.base, _inject_all(model, batch, pair.positive, name))
    return out


def _inject_all(model: HookedTransformer, batch: PromptBatch, text: str, mode: str) -> Tensor:
    if not text:
        return batch.base
    return next_token_logprobs(model, [inject_tokens(model, t, text, mode) for t in batch.texts])
