"""Condensing the token-injection table: per-layer means, dose response, headline numbers.

All functions read the tidy table of
:func:`actadd.studies.token_injection.comparison.compare_conditions`
(or its saved ``results`` table) and need no model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from actadd.lab.stats import spearman
from actadd.studies.token_injection.comparison import METRICS

__all__ = ["BANDS", "SUMMARY_KEYS", "dose_response_summary", "headline", "layer_summary"]


def dose_response_summary(df: pd.DataFrame, *, near: float = 0.5) -> pd.DataFrame:
    """Condense the ``coeff`` rows (means over user prompts) per (pair, layer).

    ``m`` below is the multiple of the pair's coefficient (column ``scale``), ``Δ`` the
    target log-prob change. Columns: ``n_coeffs``; ``spearman`` (rank correlation of Δ with
    ``m``); ``monotonic`` (Δ moves one way as ``m`` grows); ``slope_near0`` and ``r2_near0``
    (least-squares line through the origin over ``|m| <= near``: is the effect roughly
    linear in ``c`` near 0); ``odd_symmetry`` (mean of ``−Δ(−m) / Δ(m)`` over the ± pairs with
    ``|m| <= near``: 1 for a linear response); ``kl_exponent`` (slope of log KL against
    log ``|m|`` over ``|m| <= near``: 2 for a smooth response); ``peak_scale`` (the ``m``
    with the largest Δ).
    """
    rows = df[(df["condition"] == "coeff") & (df["prompt_kind"] == "mean")]
    out = []
    for (pair, layer), g in rows.groupby(["pair", "layer"], sort=True):
        g = g.sort_values("scale")
        c = g["scale"].to_numpy(float)
        y = g["target_logprob_delta"].to_numpy(float)
        kl = g["kl"].to_numpy(float)
        steps = np.sign(np.diff(y))
        small = np.abs(c) <= near
        rec = dict(pair=pair, layer=int(layer), n_coeffs=len(c))
        rec["spearman"] = spearman(c, y)
        rec["monotonic"] = bool(len(steps) and (np.all(steps >= 0) or np.all(steps <= 0)))
        cs, ys = c[small], y[small]
        rec["slope_near0"] = rec["r2_near0"] = float("nan")
        if len(cs) >= 2 and np.any(cs != 0):
            slope = float((cs @ ys) / (cs @ cs))
            ss_tot = float(((ys - ys.mean()) ** 2).sum())
            ss_res = float(((ys - slope * cs) ** 2).sum())
            rec["slope_near0"] = slope
            rec["r2_near0"] = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        ratios = [
            -float(ys[np.isclose(cs, -ci)][0]) / float(yi)
            for ci, yi in zip(cs, ys)
            if ci > 0 and yi != 0 and np.any(np.isclose(cs, -ci))
        ]
        rec["odd_symmetry"] = float(np.mean(ratios)) if ratios else float("nan")
        pos = small & (kl > 0)
        rec["kl_exponent"] = float("nan")
        if len(set(np.abs(c[pos]))) >= 2:
            rec["kl_exponent"] = float(np.polyfit(np.log(np.abs(c[pos])), np.log(kl[pos]), 1)[0])
        rec["peak_scale"] = float(c[np.nanargmax(y)]) if np.isfinite(y).any() else float("nan")
        out.append(rec)
    cols = ["pair", "layer", "n_coeffs", "spearman", "monotonic", "slope_near0", "r2_near0"]
    return pd.DataFrame(out, columns=cols + ["odd_symmetry", "kl_exponent", "peak_scale"])


SUMMARY_KEYS = [
    "pair",
    "layer",
    "condition",
    "family",
    "add_layer",
    "source_layer",
    "coeff",
    "scale",
    "other_pair",
]


def layer_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One line per condition instance (pair, layer, condition, source layer, coefficient):
    means over the user prompts with their standard errors (``*_sem``), ``n_prompts``, and
    the neutral texts' ``neutral_kl``, ``neutral_target_logprob_delta``,
    ``neutral_effect_corr``."""
    keys = [k for k in SUMMARY_KEYS if k in df]
    user = df[df["prompt_kind"] == "user"]
    g = user.groupby(keys, dropna=False, sort=False)
    cols = [c for c in METRICS + ["vec_norm"] if c in df]
    out = g[cols].mean()
    sem_cols = ["kl", "target_logprob_delta", "effect_corr", "inject_corr"]
    sem_cols += [c for c in ("replace_corr", "target_vs_control", "js_replace") if c in df]
    out = out.join(g[sem_cols].sem().add_suffix("_sem"))
    out["n_prompts"] = g.size()
    neutral = df[df["prompt_kind"] == "neutral"]
    if len(neutral):
        ncols = ["kl", "target_logprob_delta", "effect_corr"]
        n = neutral.groupby(keys, dropna=False, sort=False)[ncols].mean().add_prefix("neutral_")
        out = out.join(n)
    return out.reset_index()


BANDS: dict[str, tuple[int, int]] = {"L0-2": (0, 2), "L3-12": (3, 12), "L13+": (13, 10**6)}


def headline(
    summary: pd.DataFrame, bands: dict[str, tuple[int, int]] | None = None
) -> pd.DataFrame:
    """The numbers the conclusion rests on, one row per pair (means over layer bands).

    ``inj~actadd``: similarity of ActAdd's effect to prepending p+ (``inject_corr`` of the
    ActAdd rows); ``inj~random``: the same for the equal-norm random control;
    ``emb~actadd``: similarity of the layer-0 embedding difference to ActAdd at the layer;
    ``Δtgt actadd`` / ``Δtgt prepend``: target-word log-prob change; ``S→T``: similarity to
    ActAdd at the largest swept target ``T`` of the transplant from ``S`` (0 and 2).
    """
    bands = bands or BANDS
    rows = []
    for pair, g in summary.groupby("pair", sort=False):
        rec: dict[str, Any] = {"pair": pair}
        for name, (lo, hi) in bands.items():
            band = g[(g.layer >= lo) & (g.layer <= hi)]
            cond = lambda c, b=band: b[b.condition == c]  # noqa: E731
            rec[f"inj~actadd {name}"] = cond("actadd").inject_corr.mean()
            rec[f"inj~random {name}"] = cond("random").inject_corr.mean()
            rec[f"emb~actadd {name}"] = cond("embedding_l0").effect_corr.mean()
            rec[f"Δtgt actadd {name}"] = cond("actadd").target_logprob_delta.mean()
        inj = g[g.condition == "inject_prepend"]
        rec["Δtgt prepend"] = inj.target_logprob_delta.mean() if len(inj) else np.nan
        t = g[g.condition == "transplant"]
        if len(t):
            target = int(t.groupby("layer").size().idxmax())
            for src in (0, 2):
                sel = t[(t.layer == target) & (t.source_layer == src)]
                rec[f"{src}→{target}"] = sel.effect_corr.mean() if len(sel) else np.nan
        rows.append(rec)
    return pd.DataFrame(rows)
