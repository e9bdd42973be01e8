"""Statistics of results tables: confidence intervals and correlations. Pure functions.

Nothing here runs a model. Every function takes numbers, arrays, tensors or tidy tables and
states what it computes and what it assumes.

Intervals (95% by default):

- :func:`wilson_interval` — one binomial proportion (Wilson score interval);
- :func:`newcombe_interval` — a difference of two independent proportions (Newcombe's
  hybrid score interval, method 10 of Newcombe 1998);
- :func:`t95` — the two-sided 95% Student-t quantile, from a table;
- :func:`proportion_summary` — per-cell proportions of a 0/1 metric with Wilson intervals and
  Newcombe intervals of the difference from unsteered;
- :func:`mean_ci` — Student-t intervals of per-cell means (a ``summarize`` table);
- :func:`mean_diffs` — the same, plus the difference from the unsteered mean with a Welch
  interval;
- :func:`range_table` — per-cell mean with the minimum and maximum over texts (no interval).

Correlations:

- :func:`pearson` — Pearson correlation along the last dimension of two tensors;
- :func:`ranks` / :func:`spearman` — average ranks and the Spearman rank correlation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from actadd.errors import ConfigError

CELL_KEYS = ("pair", "pad", "layer", "coeff", "align")

# ---------------------------------------------------------------------- proportions


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n`` (95% by default).

    Assumes ``n`` independent Bernoulli trials. Unlike the Wald interval it stays inside
    [0, 1] (up to rounding: 0 successes can give a lower bound of about -3e-17) and has a
    non-zero width at 0 or ``n`` successes. ``n = 0`` gives ``(nan, nan)``.
    """
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (float(centre - half), float(centre + half))


def newcombe_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = 1.96
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for a difference of proportions ``p_a − p_b``.

    Built from the two Wilson intervals (Newcombe 1998, method 10); 95% by default. Assumes
    the two samples are independent (not paired). It stays inside [-1, 1] and behaves at 0
    or n successes, where the Wald interval collapses. An empty sample gives ``(nan, nan)``.
    """
    if n_a == 0 or n_b == 0:
        return (float("nan"), float("nan"))
    pa, pb = successes_a / n_a, successes_b / n_b
    la, ua = wilson_interval(successes_a, n_a, z)
    lb, ub = wilson_interval(successes_b, n_b, z)
    d = pa - pb
    lo = d - np.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    hi = d + np.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return (float(lo), float(hi))


def proportion_summary(
    df: pd.DataFrame,
    metric: str = "topic_any",
    keys: Sequence[str] = CELL_KEYS,
    z: float = 1.96,
) -> pd.DataFrame:
    """Per-cell proportion of a 0/1 metric from a tidy sweep table, with confidence intervals.

    ``df`` has ``metric`` and ``value`` columns and the cell ``keys`` (those missing are
    skipped); the values are 0 or 1 (they are summed and rounded). Returns one row per cell
    with ``successes, n, frac, lo, hi`` (Wilson) and, when the table has unsteered rows
    (``layer < 0``), ``diff, diff_lo, diff_hi``: the difference from the unsteered
    proportion (all unsteered rows pooled) with Newcombe's interval (95% by default). The
    intervals treat completions as independent trials. Raises ``ConfigError`` when there
    are no rows of ``metric``.
    """
    sel = df[df["metric"] == metric]
    if sel.empty:
        raise ConfigError(f"No rows for metric {metric!r}.")
    keys = [k for k in keys if k in sel.columns]
    g = sel.groupby(keys, dropna=False)["value"]
    out = pd.DataFrame({"successes": g.sum().round().astype(int), "n": g.count()}).reset_index()
    out["frac"] = out["successes"] / out["n"]
    ci = [wilson_interval(int(s), int(n), z) for s, n in zip(out["successes"], out["n"])]
    out["lo"], out["hi"] = [c[0] for c in ci], [c[1] for c in ci]
    base = out[out["layer"] < 0]
    if len(base):
        bs, bn = int(base["successes"].sum()), int(base["n"].sum())
        out["diff"] = out["frac"] - bs / bn
        diff = [newcombe_interval(int(s), int(n), bs, bn, z) for s, n in zip(out.successes, out.n)]
        out["diff_lo"], out["diff_hi"] = [d[0] for d in diff], [d[1] for d in diff]
    return out


# ---------------------------------------------------------------------- means

# two-sided 95% Student-t quantiles by degrees of freedom (above 30: 1.96)
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}


def t95(dof: float) -> float:
    """Two-sided 95% Student-t quantile for ``dof`` degrees of freedom.

    Read from a table to three decimals: ``dof`` between table entries takes the entry below
    it (the larger quantile, so intervals err wide); above 30 it is 1.96 (the normal
    quantile). Non-integer ``dof`` (Welch) is allowed. ``dof < 1`` or non-finite gives NaN.
    """
    if not np.isfinite(dof) or dof < 1:
        return float("nan")
    if dof > 30:
        return 1.96
    return _T95[max(k for k in _T95 if k <= dof)]


def mean_ci(summary: pd.DataFrame) -> pd.DataFrame:
    """Add ``lo``/``hi`` (mean ± t·s.e., a Student-t 95% interval) to a summarize() table.

    ``summary`` has ``mean``, ``sem`` and ``count`` columns
    (:func:`actadd.sweeps.summarize`); ``t`` is :func:`t95` of ``count − 1``. Assumes the
    values of a cell are independent draws, roughly normal for small counts. Cells of one
    value (or a NaN ``sem``) get a zero-width interval. Returns a copy.
    """
    s = summary.copy()
    t = np.array([t95(n - 1) if n > 1 else 0.0 for n in s["count"]])
    half = t * s["sem"].fillna(0.0).to_numpy()
    s["lo"], s["hi"] = s["mean"] - half, s["mean"] + half
    return s


def mean_diffs(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-cell mean of ``metric`` with a 95% t interval, and its difference from the
    unsteered mean with a Welch 95% interval.

    ``summary`` is :func:`actadd.sweeps.summarize` output (``mean, std, sem, count`` per
    cell; unsteered rows have ``layer < 0``, and the first one is the baseline). The cell
    interval is :func:`mean_ci`'s. The difference ``diff = mean − baseline mean`` gets
    ``± t95(ν) · sqrt(sem² + sem_b²)`` with Welch–Satterthwaite degrees of freedom ``ν``
    (each ``count − 1`` clipped at 1): assumes the cell and the baseline are independent
    samples with possibly unequal variances. Where both s.e. are zero the half-width is 0.
    Returns the rows of ``metric`` without ``std``; raises ``ConfigError`` when there are
    none.
    """
    s = summary[summary.metric == metric].copy()
    if s.empty:
        raise ConfigError(f"No rows for metric {metric!r}.")
    sem = s["sem"].fillna(0.0)
    half = sem * [t95(n - 1) if n > 1 else 0.0 for n in s["count"]]
    s["lo"], s["hi"] = s["mean"] - half, s["mean"] + half
    base = s[s.layer < 0]
    if len(base):
        b_mean, b_sem = float(base["mean"].iloc[0]), float(base["sem"].fillna(0).iloc[0])
        b_n = int(base["count"].iloc[0])
        s["diff"] = s["mean"] - b_mean
        var = sem**2 + b_sem**2
        # Welch–Satterthwaite degrees of freedom
        dof = var**2 / (
            sem**4 / (s["count"] - 1).clip(lower=1) + b_sem**4 / max(b_n - 1, 1)
        ).replace(0, np.nan)
        half = np.sqrt(var) * [t95(d) if np.isfinite(d) else 0.0 for d in dof]
        s["diff_lo"], s["diff_hi"] = s["diff"] - half, s["diff"] + half
    return s.drop(columns=["std"]).reset_index(drop=True)


def range_table(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-cell mean of a deterministic (next-token) metric with ``lo``/``hi`` = the minimum
    and maximum over texts: with two or three prompts a spread says more than an interval.

    ``df`` is a tidy sweep table (``metric``, ``value`` and the cell keys). Returns one row
    per cell with ``mean, lo, hi, count`` and ``metric``; no distributional assumption.
    """
    keys = list(CELL_KEYS)
    g = df[df.metric == metric].groupby(keys, dropna=False)["value"]
    out = g.agg(mean="mean", lo="min", hi="max", count="count").reset_index()
    return out.assign(metric=metric)


# ---------------------------------------------------------------------- correlations


def pearson(a: Float[Tensor, "... n"], b: Float[Tensor, "... n"]) -> Float[Tensor, "..."]:
    """Pearson correlation of ``a`` and ``b`` along the last dimension, in float64.

    Broadcasts over the leading dimensions (e.g. one correlation per batch row of two
    ``[batch, d_vocab]`` log-prob shifts). NaN where either side is constant (zero variance).
    """
    a = a.double() - a.double().mean(-1, keepdim=True)
    b = b.double() - b.double().mean(-1, keepdim=True)
    den = a.norm(dim=-1) * b.norm(dim=-1)
    num = (a * b).sum(-1)
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.full_like(num, float("nan")))


def ranks(x: np.ndarray | Sequence[float]) -> Float[Tensor, " n"]:
    """Average ranks of ``x``, from 1 (ties share their mean rank), as a float64 tensor."""
    return torch.tensor(pd.Series(x).rank(method="average").to_numpy(float, copy=True))


def spearman(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Spearman rank correlation of ``x`` and ``y``: :func:`pearson` of their average
    :func:`ranks`. NaN with fewer than two values or when either side is constant."""
    if len(x) <= 1:
        return float("nan")
    return float(pearson(ranks(x), ranks(y)))


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, standard error and count of each metric per sweep cell
    (``pair, pad, layer, coeff, align, metric``) of a tidy sweep table."""
    keys = ["pair", "pad", "layer", "coeff", "align", "metric"]
    g = df.groupby(keys, dropna=False)["value"]
    out = g.agg(["mean", "count", "std"]).reset_index()
    out["sem"] = out["std"] / np.sqrt(out["count"].clip(lower=1))
    return out
