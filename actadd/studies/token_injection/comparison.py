"""Comparing the token-injection conditions with ActAdd on next-token distributions.

:class:`PromptBatch` holds the prompts (unpadded, grouped by length) with their clean
residual streams; every steered condition is a set of rows of one batched forward from the
clean prefix (:class:`actadd.core.prefix.PrefixBatch`). Token injections are plain forwards on
the injected token lists (:func:`next_token_logprobs`).

Metrics per condition and prompt (:func:`effect_metrics`): ``kl`` = KL(condition ‖ baseline),
``target_logprob_delta`` = change of the log-probability mass on the pair's target words,
``effect_corr`` = Pearson correlation over the vocabulary of the condition's log-prob shift with
ActAdd's shift, ``topk_overlap`` = overlap of the ``k`` most-promoted tokens (largest shift) with
ActAdd's, ``inject_corr`` = correlation of the shift with that of prepending p+. Any
perturbation of the front positions shares a generic component of the shift, so the
correlations have a floor well above 0: read them against the nulls'.

Nulls (``null_residual``, ``null_embedding``): with ``null_draws_per_prompt = k`` (the
default of the v2 config) every text gets ``k`` draws of its own
(:func:`~actadd.studies.token_injection.conditions.per_prompt_draws`), evaluated as ``k``
conditions in
which each text carries its own vector — ``k × n_prompts`` draws per (pair, layer) for the
cost of ``k`` conditions; a text's null row is the mean over its own draws, so the spread
over prompts includes the draw-to-draw spread. With ``null_draws = N`` (the older design)
each of ``N`` draws runs on every text (``N`` conditions).

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

from actadd.config import text_list
from actadd.core.metrics import kl_div, log_probs, logprob_mass, target_token_ids
from actadd.core.metrics import topk_overlap as _topk_overlap
from actadd.core.prefix import Condition, PrefixBatch
from actadd.core.steering import AlignLike, OnShort, Placement, as_placement
from actadd.core.vectors import SteeringVector
from actadd.errors import ConfigError, SteeringError
from actadd.lab.stats import pearson
from actadd.progress import bar as progress_bar
from actadd.runtime.backends import Model
from actadd.runtime.tokens import encode
from actadd.studies.token_injection.conditions import (
    LAYER_INJECTIONS,
    PairSetting,
    Settings,
    aligned_arms,
    dim_slice,
    embedding_random_like,
    embedding_vector,
    hidden_below,
    inject_tokens,
    match_row_norms,
    per_prompt_draws,
    place_ids,
    random_like,
    residual_random_like,
    word_token_pool,
)

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
    model: Model,
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

    def __init__(self, model: Model, texts: Sequence[str]) -> None:
        self.texts = text_list(texts, "prompts")
        self.token_lists = [encode(model, t) for t in self.texts]
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
    replace: tuple[Tensor, Tensor] | None = None,
    control_ids: Sequence[int] = (),
    k: int = 20,
) -> dict[str, np.ndarray]:
    """Per-row effect of a condition, from next-token log-probs ``[batch, d_vocab]``.

    ``cond`` is compared with its baseline ``base``; ``ref``, ``inject`` and ``replace`` are
    ``(baseline, condition)`` pairs whose log-prob shifts the condition's shift is compared
    with (ActAdd, prepending p+, and p+'s tokens at the vector's own positions). Returns
    arrays of length ``batch``: ``kl``, ``target_logprob_delta``, ``effect_corr``,
    ``topk_overlap``, ``inject_corr``, ``replace_corr``, and with ``control_ids``
    ``control_logprob_delta`` and ``target_vs_control`` (target change minus the control
    set's); NaN where a comparison is not given or a shift is exactly zero.
    """
    if base.shape != cond.shape:
        raise SteeringError(f"shape mismatch: {tuple(base.shape)} vs {tuple(cond.shape)}.")
    delta = cond - base
    nan = np.full(base.shape[0], np.nan)

    def mass_delta(ids: Sequence[int]) -> np.ndarray:
        return (logprob_mass(cond, ids) - logprob_mass(base, ids)).cpu().numpy()

    out = dict(
        kl=kl_div(cond, base).cpu().numpy(),
        target_logprob_delta=mass_delta(target_ids),
        effect_corr=nan,
        topk_overlap=nan,
        inject_corr=nan,
        replace_corr=nan,
        control_logprob_delta=nan,
        target_vs_control=nan,
    )
    if ref is not None:
        ref_delta = ref[1] - ref[0]
        out["effect_corr"] = pearson(delta, ref_delta).cpu().numpy()
        out["topk_overlap"] = _topk_overlap(delta, ref_delta, k).cpu().numpy()
    if inject is not None:
        out["inject_corr"] = pearson(delta, inject[1] - inject[0]).cpu().numpy()
    if replace is not None:
        out["replace_corr"] = pearson(delta, replace[1] - replace[0]).cpu().numpy()
    if len(control_ids):
        out["control_logprob_delta"] = mass_delta(control_ids)
        out["target_vs_control"] = out["target_logprob_delta"] - out["control_logprob_delta"]
    return out


# ---------------------------------------------------------------------- the runner

# one row per (pair, layer, condition, text); see compare_conditions
COLUMNS: list[str] = (
    "model pair layer condition family add_layer source_layer coeff scale other_pair "
    "prompt_index prompt prompt_kind kl target_logprob_delta effect_corr topk_overlap "
    "inject_corr replace_corr control_logprob_delta target_vs_control vec_norm draws "
    "draws_per_prompt other_target_logprob_delta additive_corr"
).split()
METRICS: list[str] = (
    "kl target_logprob_delta effect_corr topk_overlap inject_corr replace_corr "
    "control_logprob_delta target_vs_control other_target_logprob_delta additive_corr"
).split()
# one row per (pair, layer, null kind, draw): the draw's mean over the user prompts
# (``null_draws``, prompt_index -1), or, per prompt (``null_draws_per_prompt``), the draw's
# value on the one user prompt it was drawn for (draw = prompt_index · k + j)
NULL_COLUMNS: list[str] = (
    "model pair layer null draw prompt_index kl target_logprob_delta effect_corr inject_corr "
    "replace_corr target_vs_control"
).split()
_NULL_METRICS = NULL_COLUMNS[6:]
NULLS: tuple[str, ...] = ("residual", "embedding")


@dataclass
class _Cond:
    """One steering condition at a reference layer: its vectors and its table columns."""

    name: str
    family: str
    vectors: list[SteeringVector | Placement]
    meta: dict[str, Any] = field(default_factory=dict)


def _seed_for(seed: int, pair_index: int, layer: int) -> int:
    return int(np.random.SeedSequence([seed, pair_index, layer]).generate_state(1)[0])


def compare_conditions(
    model: Model,
    pairs: Sequence[PairSetting],
    settings: Settings,
    *,
    progress: bool | None = None,
    return_nulls: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Run every condition of ``settings`` for every pair; return one tidy DataFrame.

    One row per (pair, reference layer, condition, text), plus a ``prompt_kind="mean"`` row
    per (pair, layer, condition) averaging the user prompts (neutral texts left out).
    Columns: :data:`COLUMNS`. ``layer`` is the reference layer, whose ActAdd effect
    ``effect_corr`` compares with; ``add_layer`` is where the condition itself adds (NaN for
    injections); ``scale`` is the factor on the pair's reference vector (transplants: the
    norm ratio from ``source_layer``, for ``transplant_norm="row"`` the overall one;
    ``coeff`` rows: the multiple of the pair's ``c``). With null draws (per prompt, or
    shared), the rows ``null_residual`` / ``null_embedding`` hold each text's mean over its
    draws (``draws``: draws behind the cell over the user prompts; ``draws_per_prompt``: how
    many a text's value averages); ``return_nulls=True`` also returns the per-draw table
    (:data:`NULL_COLUMNS`).
    """
    pairs = list(pairs)
    if not pairs or not all(isinstance(p, PairSetting) for p in pairs):
        raise ConfigError(
            "Give at least one PairSetting (actadd.studies.token_injection.PairSetting)."
        )
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
    control_ids = (
        target_token_ids(model, settings.control_words, strict=False)
        if settings.control_words
        else []
    )
    if settings.control_words and not control_ids:
        raise ConfigError(
            f"None of the control words {list(settings.control_words)} is a single token in "
            f"{model.cfg.model_name}."
        )

    texts = list(settings.prompts) + list(settings.neutral)
    ref_layers = settings.reference_layers()
    sweep = set(settings.sweep_sources) or set(range(max(settings.sweep_targets, default=-1) + 1))
    needed = sorted(set(ref_layers) | set(settings.transplant_sources) | sweep)
    steps = len(pairs) * (len(ref_layers) + 1)
    bar = progress_bar(steps, "token injection", "step", progress)
    records: list[dict] = []
    null_records: list[dict] = []
    with bar:
        batch = PromptBatch(model, texts)
        norms = {layer: batch.typical_norm(layer) for layer in range(model.cfg.n_layers + 1)}
        nulls_on = settings.null_draws or settings.null_draws_per_prompt
        pool = word_token_pool(model) if nulls_on and "embedding" in settings.null_kinds else []
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
            patched = _patch_source(model, batch, pair, settings, ref_layers)
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
            ctx = _Ctx(model, batch, pair, ids, control_ids, settings, injections, emb)
            for layer in ref_layers:
                bar.set_postfix_str(f"{pair.name}: L{layer}")
                conds = _conditions(pair, pi, layer, settings, units, norms, by_name)
                conds += _layer_conditions(ctx, layer, patched, units[pair.name], pool, pi)
                lps = batch.logprobs_many([c.vectors for c in conds], on_short=settings.on_short)
                lps += _visible(ctx, layer)
                recs, nulls = _layer_rows(ctx, layer, conds, lps)
                records += recs
                null_records += nulls
                bar.update(1)
    df = pd.DataFrame.from_records(records)
    for col in COLUMNS:
        if col not in df:
            df[col] = np.nan
    df = df[COLUMNS]
    if not return_nulls:
        return df
    nulls = pd.DataFrame.from_records(null_records, columns=NULL_COLUMNS)
    nulls["model"] = model.cfg.model_name
    return df, nulls


@dataclass
class _Ctx:
    """What every reference layer of one pair shares."""

    model: Model
    batch: PromptBatch
    pair: PairSetting
    ids: list[int]
    control_ids: list[int]
    settings: Settings
    injections: dict[str, tuple[Tensor, Tensor]]
    emb: Tensor | None


def _text_resid(pb: PrefixBatch, layer: int) -> list[Tensor]:
    """Each text's clean ``resid_pre`` at ``layer``, ``[pos, d_model]``, in text order."""
    out: list[Tensor | None] = [None] * pb.n
    for g, r in zip(pb.groups, pb.resid(layer)):
        for row, t in enumerate(g.index):
            out[t] = r[row]
    return out


def _patch_source(
    model: Model,
    batch: PromptBatch,
    pair: PairSetting,
    settings: Settings,
    layers: Sequence[int],
) -> PrefixBatch | None:
    """The replace-injected texts (p+'s aligned tokens over positions ``[1, k)``) with their
    residual streams at ``layers``: the source of the contextual patch."""
    if "patch" not in settings.injections:
        return None
    plus, _ = aligned_arms(model, pair.positive, pair.negative, pair.equalize, pair.pad_token)
    lists = [place_ids(t, plus, "replace") for t in batch.token_lists]
    src = PrefixBatch(model, lists, padding="by_length", max_rows=128)
    src.prefetch(layers)
    return src


def contextual_patch(
    model: Model,
    clean: PrefixBatch,
    injected: PrefixBatch,
    layer: int,
    k: int,
) -> list[Placement]:
    """The contextual patch as one placement per text: at ``resid_pre`` of ``layer``,
    positions ``[0, k)`` of the clean run get the injected run's residual there (added as
    the difference injected − clean, so the patched rows equal the injected run's up to
    float rounding; every other position is untouched)."""
    inj, cln = _text_resid(injected, layer), _text_resid(clean, layer)
    out = []
    for i, (a, b) in enumerate(zip(inj, cln)):
        vec = SteeringVector.from_tensor(
            a[:k] - b[:k], layer, model.cfg.model_name, description="contextual_patch"
        )
        out.append(Placement(vec, "front", (i,)))
    return out


def _layer_conditions(
    ctx: _Ctx,
    layer: int,
    patched: PrefixBatch | None,
    units: dict[int, SteeringVector],
    pool: list[int],
    pair_index: int,
) -> list[_Cond]:
    """The contextual patch and the null draws at ``layer`` (vectors added at ``layer``)."""
    model, settings, pair = ctx.model, ctx.settings, ctx.pair
    actadd_vec = units[layer] * pair.coeff
    out = []
    if patched is not None:
        placements = contextual_patch(model, ctx.batch, patched, layer, actadd_vec.k)
        out.append(_Cond("patch", "patch", placements, dict(add_layer=layer)))
    if settings.null_draws_per_prompt:
        rows = torch.cat([r[1:] for r in _text_resid(ctx.batch, layer)])
        draw_fns = (
            ("residual", lambda g: residual_random_like(actadd_vec, rows, g)),
            ("embedding", lambda g: embedding_random_like(model, actadd_vec, pool, g)),
        )
        for kind_index, (kind, fn) in enumerate(draw_fns):
            if kind not in settings.null_kinds:
                continue
            seed = (settings.seed + 1, pair_index, layer, kind_index)
            conds = per_prompt_draws(fn, ctx.batch.n, settings.null_draws_per_prompt, seed)
            for j, placements in enumerate(conds):
                out.append(_Cond(f"_null_{kind}_{j}", "null", placements, dict(draw=j)))
    elif settings.null_draws:
        gen = torch.Generator().manual_seed(_seed_for(settings.seed + 1, pair_index, layer))
        rows = torch.cat([r[1:] for r in _text_resid(ctx.batch, layer)])
        for d in range(settings.null_draws):
            res = residual_random_like(actadd_vec, rows, gen)
            if "residual" in settings.null_kinds:
                out.append(_Cond(f"_null_residual_{d}", "null", [res], dict(draw=d)))
            if "embedding" in settings.null_kinds:
                emb = embedding_random_like(model, actadd_vec, pool, gen)
                out.append(_Cond(f"_null_embedding_{d}", "null", [emb], dict(draw=d)))
    return out


def _visible(ctx: _Ctx, layer: int) -> list[Tensor]:
    """Log-probs of the ``visible_*`` injections at ``layer`` (in :data:`LAYER_INJECTIONS`
    order): the aligned p+ tokens at positions ``[1, k)``, hidden below ``layer``."""
    out = []
    for name in ("visible_replace", "visible_insert"):
        if name in ctx.settings.injections:
            mode = name.split("_")[1]
            if layer == 0 and mode in ctx.injections:
                out.append(ctx.injections[mode][1])  # hiding below L0 changes nothing
                continue
            plus, _ = aligned_arms(
                ctx.model,
                ctx.pair.positive,
                ctx.pair.negative,
                ctx.pair.equalize,
                ctx.pair.pad_token,
            )
            lists = [place_ids(t, plus, mode) for t in ctx.batch.token_lists]
            with hidden_below(ctx.model, range(1, 1 + len(plus)), layer):
                out.append(next_token_logprobs(ctx.model, lists))
    return out


def _layer_rows(
    ctx: _Ctx, layer: int, conds: list[_Cond], lps: list[Tensor]
) -> tuple[list[dict], list[dict]]:
    """Table rows of every condition at one reference layer, from their log-probs; and the
    per-draw rows of the null table."""
    model, batch, pair, settings = ctx.model, ctx.batch, ctx.pair, ctx.settings
    texts = list(settings.prompts) + list(settings.neutral)
    kinds = ["user"] * len(settings.prompts) + ["neutral"] * len(settings.neutral)
    visible = [n for n in ("visible_replace", "visible_insert") if n in settings.injections]
    names = [c.name for c in conds] + visible
    got = dict(zip(names, lps))
    ref = (batch.base, got["actadd"])
    injections = ctx.injections
    records: list[dict] = []
    n_user = len(settings.prompts)

    def metrics(cond, baseline=batch.base) -> dict[str, np.ndarray]:
        return effect_metrics(
            baseline,
            cond,
            ctx.ids,
            ref=ref,
            inject=injections["prepend"],
            replace=injections["replace"],
            control_ids=ctx.control_ids,
            k=settings.topk,
        )

    def emit(name, family, m, extra=None, **meta) -> None:
        m.update(extra or {})
        meta = {"pair": pair.name, "layer": layer, "condition": name, **meta}
        records.extend(_rows(model, texts, kinds, family, m, meta))

    draws: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in NULLS}
    for c, lp in zip(conds, lps):
        if c.family == "sum":
            other = c.meta["other_pair"]
            extra = _sum_extras(model, batch.base, lp, ref[1], got["_other"], other)
            meta = {**c.meta, "other_pair": other.name}
            emit(c.name, c.family, metrics(lp), extra=extra, **meta)
        elif c.family == "null":
            draws[c.name.split("_")[2]].append(metrics(lp))
        elif not c.name.startswith("_"):
            emit(c.name, c.family, metrics(lp), **c.meta)
    for name in visible:
        emit(name, "visible", metrics(got[name]), add_layer=layer)
    for name in settings.injections:
        if name in LAYER_INJECTIONS:
            continue
        base, lp = injections[name]
        emit(f"inject_{name}", "injection", metrics(lp, baseline=base))
    if ctx.emb is not None:
        emit("embedding_l0", "embedding", metrics(ctx.emb), add_layer=0, coeff=pair.coeff)
    null_rows = []
    per_prompt = settings.null_draws_per_prompt
    for kind, ms in draws.items():
        if not ms:
            continue
        mean = {k: np.nanmean(np.stack([m[k] for m in ms]), axis=0) for k in ms[0]}
        n_draws = len(ms) * n_user if per_prompt else len(ms)
        emit(
            f"null_{kind}",
            "null",
            mean,
            add_layer=layer,
            draws=n_draws,
            draws_per_prompt=len(ms),
        )
        for j, m in enumerate(ms):
            base_row = dict(pair=pair.name, layer=layer, null=kind)
            if not per_prompt:
                row = dict(base_row, draw=j, prompt_index=-1)
                row.update({k: float(np.nanmean(m[k][:n_user])) for k in _NULL_METRICS})
                null_rows.append(row)
                continue
            for t in range(n_user):
                row = dict(base_row, draw=t * len(ms) + j, prompt_index=t)
                row.update({k: float(m[k][t]) for k in _NULL_METRICS})
                null_rows.append(row)
    return records, null_rows


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
        source = (units[pair.name][s] * pair.coeff).at_layer(layer)
        if s == layer:
            vec, scale = actadd_vec, 1.0
        elif settings.transplant_norm == "row":
            vec = match_row_norms(source, actadd_vec)
            scale = float(vec.tensor.norm() / source.tensor.norm().clamp_min(1e-12))
        else:  # the paper's one global ratio of typical residual norms
            scale = norms[layer] / norms[s]
            vec = source * scale
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
    model: Model,
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


def _injections(
    model: Model, batch: PromptBatch, pair: PairSetting, settings: Settings
) -> dict[str, tuple[Tensor, Tensor]]:
    """``{injection: (baseline log-probs, log-probs)}`` of the layer-independent injections;
    ``"prepend"`` and ``"replace"`` are always there (the references of ``inject_corr`` and
    ``replace_corr``). ``prepend`` / ``append`` place p+'s own text; ``replace``, ``insert``
    and the contrasts place the aligned arms (:func:`aligned_arms`), so an empty p− is
    the pad, as in ActAdd's vector."""
    plus, minus = aligned_arms(model, pair.positive, pair.negative, pair.equalize, pair.pad_token)

    def placed(extra: list[int], mode: str) -> Tensor:
        lists = [place_ids(t, extra, mode) for t in batch.token_lists]
        return next_token_logprobs(model, lists)

    out: dict[str, tuple[Tensor, Tensor]] = {}
    wanted = [n for n in settings.injections if n not in LAYER_INJECTIONS]
    for name in dict.fromkeys(("prepend", "replace", *wanted)):
        if name == "prepend_contrast":
            out[name] = (placed(minus, "insert"), placed(plus, "insert"))
        elif name == "replace_contrast":
            out[name] = (placed(minus, "replace"), out["replace"][1])
        elif name in ("replace", "insert"):
            out[name] = (batch.base, placed(plus, name))
        else:
            out[name] = (batch.base, _inject_all(model, batch, pair.positive, name))
    return out


def _inject_all(model: Model, batch: PromptBatch, text: str, mode: str) -> Tensor:
    if not text:
        return batch.base
    return next_token_logprobs(model, [inject_tokens(model, t, text, mode) for t in batch.texts])
