"""The conditions one pair is compared under, built for :func:`~.comparison.compare_conditions`.

- :func:`_injections`: the layer-independent token injections (p+ prepended, appended,
  replacing or inserted at the vector's positions, and the contrasts), as log-probs;
- :func:`_conditions`: the steering conditions at a reference layer — ActAdd, the random and
  dimension-slice controls, transplants from other layers, coefficients and sums;
- :func:`_layer_conditions`: the contextual patch (:func:`contextual_patch`), the contextual
  difference (``ctxdiff``, ``ctxdiff_normed``:
  :mod:`~actadd.studies.token_injection.contextual`) and the null draws at a reference layer;
- :func:`_visible`: p+'s tokens at the vector's positions, hidden below the layer.

Nulls (``null_residual``, ``null_embedding``): with ``null_draws_per_prompt = k`` (the
default of the token_injection_v2 config) every text gets ``k`` draws of its own
(:func:`~actadd.studies.token_injection.conditions.per_prompt_draws`), evaluated as ``k``
conditions in which each text carries its own vector — ``k × n_prompts`` draws per
(pair, layer) for the cost of ``k`` conditions; a text's null row is the mean over its own
draws, so the spread over prompts includes the draw-to-draw spread. With ``null_draws = N``
(the older design) each of ``N`` draws runs on every text (``N`` conditions).

The underscored names are this study's internals, shared with
:mod:`~actadd.studies.token_injection.comparison` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Placement
from actadd.core.vectors import SteeringVector
from actadd.runtime.backends import Model
from actadd.studies.token_injection.conditions import (
    CONTEXTUAL,
    LAYER_INJECTIONS,
    PairSetting,
    Settings,
    aligned_arms,
    dim_slice,
    embedding_random_like,
    hidden_below,
    inject_tokens,
    match_row_norms,
    per_prompt_draws,
    place_ids,
    random_like,
    residual_random_like,
    seed_of,
)
from actadd.studies.token_injection.contextual import (
    ContextSource,
    contextual_difference,
    contextual_placements,
)
from actadd.studies.token_injection.forwards import PromptBatch, _text_resid, next_token_logprobs

__all__ = ["contextual_patch"]


@dataclass
class _Cond:
    """One steering condition at a reference layer: its vectors and its table columns."""

    name: str
    family: str
    vectors: list[SteeringVector | Placement]
    meta: dict[str, Any] = field(default_factory=dict)


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
    context: ContextSource | None = None


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


def _context_source(
    model: Model,
    batch: PromptBatch,
    pair: PairSetting,
    settings: Settings,
    layers: Sequence[int],
) -> ContextSource | None:
    """Each prompt followed by p+'s and by p−'s aligned tokens, with their residual streams at
    ``layers``: the source of the contextual difference (None when no ``ctxdiff*`` runs)."""
    if not any(name in settings.injections for name in CONTEXTUAL):
        return None
    plus, minus = aligned_arms(model, pair.positive, pair.negative, pair.equalize, pair.pad_token)
    return ContextSource(model, batch.token_lists, plus, minus, layers)


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
    """The contextual patch, the contextual difference and the null draws at ``layer``
    (vectors added at ``layer``)."""
    model, settings, pair = ctx.model, ctx.settings, ctx.pair
    actadd_vec = units[layer] * pair.coeff
    out = []
    if patched is not None:
        placements = contextual_patch(model, ctx.batch, patched, layer, actadd_vec.k)
        out.append(_Cond("patch", "patch", placements, dict(add_layer=layer)))
    if ctx.context is not None:
        vecs = contextual_difference(model, ctx.batch.token_lists, pair, layer, source=ctx.context)
        for name in CONTEXTUAL:
            if name in settings.injections:
                ref = actadd_vec if name == "ctxdiff_normed" else None
                placed = contextual_placements(vecs, ref)
                norm = float(torch.stack([p.vector.tensor.norm() for p in placed]).mean())
                meta = dict(add_layer=layer, coeff=pair.coeff, vec_norm=norm)
                out.append(_Cond(name, "context", placed, meta))
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
        gen = torch.Generator().manual_seed(seed_of(settings.seed + 1, pair_index, layer))
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
        gen = torch.Generator().manual_seed(seed_of(settings.seed, pair_index, layer))
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
