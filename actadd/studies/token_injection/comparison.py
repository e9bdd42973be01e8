"""Comparing the token-injection conditions with ActAdd on next-token distributions.

:func:`compare_conditions` runs everything for a list of :class:`PairSetting` under
:class:`Settings` and returns one tidy DataFrame (:data:`COLUMNS`), and with
``return_nulls=True`` the per-draw null table (:data:`NULL_COLUMNS`).

Its parts, one module each:

- :mod:`~actadd.studies.token_injection.forwards`: the prompts with their clean residual
  streams (:class:`PromptBatch`) and plain next-token forwards (:func:`next_token_logprobs`);
- :mod:`~actadd.studies.token_injection.pair_conditions`: the conditions of one pair (token
  injections, steering conditions per reference layer, the contextual patch
  :func:`contextual_patch`, the contextual difference of
  :mod:`~actadd.studies.token_injection.contextual`, the null draws);
- :mod:`~actadd.studies.token_injection.effects`: the metrics of a condition
  (:func:`effect_metrics`);
- this module: the run over pairs and layers, and the table rows.

:class:`PromptBatch`, :func:`next_token_logprobs`, :func:`effect_metrics` and
:func:`contextual_patch` are re-exported here, where they used to live.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from actadd.core.metrics import logprob_mass, target_token_ids
from actadd.core.vectors import SteeringVector
from actadd.errors import ConfigError
from actadd.lab.stats import pearson
from actadd.progress import bar as progress_bar
from actadd.runtime.backends import Model
from actadd.studies.token_injection.conditions import (
    LAYER_INJECTIONS,
    PairSetting,
    Settings,
    embedding_vector,
    word_token_pool,
)
from actadd.studies.token_injection.effects import effect_metrics
from actadd.studies.token_injection.forwards import PromptBatch, next_token_logprobs
from actadd.studies.token_injection.pair_conditions import (
    _Cond,
    _conditions,
    _context_source,
    _Ctx,
    _injections,
    _layer_conditions,
    _patch_source,
    _visible,
    contextual_patch,
)

__all__ = [
    "COLUMNS",
    "METRICS",
    "NULLS",
    "NULL_COLUMNS",
    "PromptBatch",
    "compare_conditions",
    "contextual_patch",
    "effect_metrics",
    "next_token_logprobs",
]

# one row per (pair, layer, condition, text); see compare_conditions
COLUMNS: list[str] = (
    "model pair layer condition family add_layer source_layer coeff scale other_pair "
    "prompt_index prompt prompt_kind kl target_logprob_delta effect_corr topk_overlap "
    "inject_corr replace_corr js_replace js_replace_base topk_replace control_logprob_delta "
    "target_vs_control vec_norm draws draws_per_prompt other_target_logprob_delta additive_corr"
).split()
METRICS: list[str] = (
    "kl target_logprob_delta effect_corr topk_overlap inject_corr replace_corr js_replace "
    "js_replace_base topk_replace control_logprob_delta target_vs_control "
    "other_target_logprob_delta additive_corr"
).split()
# one row per (pair, layer, null kind, draw): the draw's mean over the user prompts
# (``null_draws``, prompt_index -1), or, per prompt (``null_draws_per_prompt``), the draw's
# value on the one user prompt it was drawn for (draw = prompt_index · k + j)
NULL_COLUMNS: list[str] = (
    "model pair layer null draw prompt_index kl target_logprob_delta effect_corr inject_corr "
    "replace_corr target_vs_control js_replace"
).split()
_NULL_METRICS = NULL_COLUMNS[6:]
NULLS: tuple[str, ...] = ("residual", "embedding")


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
            context = _context_source(model, batch, pair, settings, ref_layers)
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
            ctx = _Ctx(model, batch, pair, ids, control_ids, settings, injections, emb, context)
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
