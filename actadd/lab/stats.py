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
- :func:`paired_diffs` — the same for sampled metrics whose arms share seeds: the difference
  from unsteered paired by (prompt, sample), cluster-bootstrap interval over prompts;
- :func:`range_table` — per-cell mean with the minimum and maximum over texts (no interval).

Paired designs and tests:

- :func:`mcnemar_exact` — exact McNemar test for paired binary outcomes;
- :func:`paired_newcombe_interval` — a difference of two paired proportions (Newcombe's
  method 10 for paired data, 1998);
- :func:`paired_t` — the mean of paired differences, its Student-t interval and test;
- :func:`welch_t` — a difference of two independent means, Welch's interval and test;
- :func:`cluster_bootstrap` — a percentile interval of a mean, resampling whole clusters
  (prompts), and its two-sided bootstrap p-value;
- :func:`sign_flip_test` — exact randomization test of cluster-level mean differences;
- :func:`bh_adjust` — Benjamini–Hochberg false-discovery-rate adjusted p-values.

Correlations:

- :func:`pearson` — Pearson correlation along the last dimension of two tensors;
- :func:`ranks` / :func:`spearman` — average ranks and the Spearman rank correlation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from actadd.errors import ConfigError

CELL_KEYS = ("pair", "pad", "layer", "coeff", "align")
# numbers a test takes: a list, a numpy array or a pandas Series
Numbers = Sequence[float] | np.ndarray | pd.Series

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


def paired_diffs(df: pd.DataFrame, metric: str, n_boot: int = 2000) -> pd.DataFrame:
    """Per-cell mean of a sampled ``metric`` with a 95% t interval, and its difference from
    unsteered on the *same* (prompt, sample) seeds with a cluster-bootstrap interval over
    prompts (:func:`cluster_bootstrap`): the arms share seeds and prompts, so neither is an
    independent sample (which Welch's interval would assume).

    ``df`` is a tidy sweep table (cell keys, ``text_index``, ``sample``, ``metric``,
    ``value``; unsteered rows have ``layer < 0``). Returns :func:`mean_ci`'s columns plus
    ``diff, diff_lo, diff_hi`` (NaN where a cell has no unsteered partner rows).
    """
    s = mean_ci(summarize(df))
    s = s[s.metric == metric].drop(columns=["std"]).reset_index(drop=True)
    if s.empty:
        raise ConfigError(f"No rows for metric {metric!r}.")
    rows = df[df.metric == metric]
    base = rows[rows.layer < 0].set_index(["text_index", "sample"])["value"]
    diffs = []
    for cell in s[list(CELL_KEYS)].itertuples(index=False):
        sel = rows
        for k, v in zip(CELL_KEYS, cell):
            sel = sel[sel[k] == v]
        d = sel.set_index(["text_index", "sample"])["value"] - base
        d = d.dropna()
        if len(d) == 0:
            diffs.append((np.nan, np.nan, np.nan))
            continue
        b = cluster_bootstrap(d.to_numpy(), d.index.get_level_values(0).to_numpy(), n_boot=n_boot)
        diffs.append((b["mean"], b["lo"], b["hi"]))
    s["diff"], s["diff_lo"], s["diff_hi"] = (list(x) for x in zip(*diffs))
    return s


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


# ---------------------------------------------------------------------- paired designs


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes.

    ``b`` and ``c`` are the discordant counts (success only under A; success only under B).
    Under the null each discordant pair is equally likely either way, so the p-value is
    ``min(1, 2 · P[X ≤ min(b, c)])`` for ``X ~ Binomial(b + c, 1/2)``. Concordant pairs carry
    no information. ``b + c = 0`` gives 1.0. Assumes the pairs are independent.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def paired_newcombe_interval(
    a: int, b: int, c: int, d: int, z: float = 1.96
) -> tuple[float, float]:
    """Interval for ``p_A − p_B`` from paired binary outcomes (Newcombe 1998b, method 10).

    The 2×2 table of pairs: ``a`` success under both, ``b`` under A only, ``c`` under B only,
    ``d`` under neither. Built from the Wilson intervals of ``p_A = (a+b)/n`` and
    ``p_B = (a+c)/n`` and the phi correlation of the pairs (0 where a margin is empty), so
    it accounts for the pairing that :func:`newcombe_interval` ignores. Empty gives NaN.
    """
    n = a + b + c + d
    if n == 0:
        return (float("nan"), float("nan"))
    pa, pb = (a + b) / n, (a + c) / n
    la, ua = wilson_interval(a + b, n, z)
    lb, ub = wilson_interval(a + c, n, z)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(den) if den > 0 else 0.0
    delta = pa - pb
    lo = delta - math.sqrt(
        max(0.0, (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2)
    )
    hi = delta + math.sqrt(
        max(0.0, (ua - pa) ** 2 - 2 * phi * (ua - pa) * (pb - lb) + (pb - lb) ** 2)
    )
    return (float(lo), float(hi))


def paired_t(x: Numbers, y: Numbers, level: float = 0.95) -> dict[str, float]:
    """Mean of the paired differences ``x − y`` with its Student-t interval and the two-sided
    paired t-test of mean 0: ``{"mean", "lo", "hi", "t", "p", "n"}``.

    Assumes the pairs are independent and their differences roughly normal. All-equal
    differences give a zero-width interval and p = 1 (mean 0) or 0 (mean ≠ 0).
    """
    from scipy import stats as st

    d = np.asarray(x, float) - np.asarray(y, float)
    n = len(d)
    if n < 2:
        raise ValueError(f"paired_t needs at least 2 pairs, got {n}")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0:
        p = 1.0 if mean == 0 else 0.0
        return {"mean": mean, "lo": mean, "hi": mean, "t": float("nan"), "p": p, "n": n}
    q = float(st.t.ppf(0.5 + level / 2, n - 1))
    t = mean / se
    p = float(2 * st.t.sf(abs(t), n - 1))
    return {"mean": mean, "lo": mean - q * se, "hi": mean + q * se, "t": t, "p": p, "n": n}


def welch_t(x: Numbers, y: Numbers, level: float = 0.95) -> dict[str, float]:
    """Difference of means ``mean(x) − mean(y)`` of two *independent* samples with
    Welch's t interval and two-sided test (unequal variances, Welch–Satterthwaite degrees
    of freedom): ``{"mean", "lo", "hi", "t", "p", "dof"}``."""
    from scipy import stats as st

    a, b = np.asarray(x, float), np.asarray(y, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = float(a.mean() - b.mean())
    q = float(st.t.ppf(0.5 + level / 2, dof))
    t = diff / se
    p = float(2 * st.t.sf(abs(t), dof))
    return {"mean": diff, "lo": diff - q * se, "hi": diff + q * se, "t": t, "p": p, "dof": dof}


def cluster_bootstrap(
    values: Numbers,
    clusters: Sequence | np.ndarray | pd.Series,
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Mean of ``values`` with a percentile interval from resampling whole clusters.

    Observations that share a cluster (completions of one prompt) are not independent; this
    draws ``k`` clusters with replacement (``k`` = number of clusters) ``n_boot`` times and
    recomputes the pooled mean (sum over drawn clusters / their count). Returns ``{"mean",
    "lo", "hi", "p", "clusters"}``; ``p`` is the two-sided bootstrap p-value of mean 0,
    ``min(1, 2·min(P*[m ≤ 0], P*[m ≥ 0]))`` with ``P*`` counted with a +1 correction (so
    never 0). With one cluster the interval is degenerate: (nan, nan), p = nan. The
    randomness is ``numpy.random.default_rng(seed)``: reproducible.
    """
    v = np.asarray(values, float)
    keys = pd.factorize(pd.Series(list(clusters)))[0]
    if len(v) != len(keys) or len(v) == 0:
        raise ValueError("values and clusters must be non-empty and of one length")
    k = int(keys.max()) + 1
    sums = np.bincount(keys, weights=v, minlength=k)
    counts = np.bincount(keys, minlength=k).astype(float)
    mean = float(sums.sum() / counts.sum())
    if k < 2:
        return {
            "mean": mean,
            "lo": float("nan"),
            "hi": float("nan"),
            "p": float("nan"),
            "clusters": k,
        }
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n_boot, k))
    boot = sums[draws].sum(1) / counts[draws].sum(1)
    alpha = 1 - level
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    below = (np.sum(boot <= 0) + 1) / (n_boot + 1)
    above = (np.sum(boot >= 0) + 1) / (n_boot + 1)
    p = float(min(1.0, 2 * min(below, above)))
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "p": p, "clusters": k}


def sign_flip_test(cluster_means: Numbers) -> float:
    """Exact two-sided randomization p-value that cluster-level mean differences are
    symmetric about 0 (each cluster's sign flipped in all ``2^k`` ways).

    The unit is the cluster (e.g. the per-prompt mean of steered − unsteered), so shared
    prompts are not counted as independent evidence. With ``k`` clusters the smallest
    possible p-value is ``2 / 2^k`` (k = 8: 0.0078). Needs ``1 ≤ k ≤ 20``.
    """
    m = np.asarray(cluster_means, float)
    k = len(m)
    if not 1 <= k <= 20:
        raise ValueError(f"sign_flip_test needs 1..20 clusters, got {k}")
    observed = abs(m.sum())
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=k)))
    stats = np.abs(signs @ m)
    return float(np.mean(stats >= observed - 1e-12 * max(1.0, observed)))


def bh_adjust(pvalues: Numbers) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (step-up; controls the false discovery rate).

    ``p_(i) · m / i`` for the ``i``-th smallest of ``m`` p-values, made monotone from the
    top and capped at 1. A hypothesis is rejected at FDR ``q`` when its adjusted p ≤ q.
    NaN p-values are left NaN and not counted in ``m``.
    """
    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    order = np.argsort(q)
    adj = q[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(adj[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


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


def rank_against_draws(
    per_prompt: np.ndarray, *, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Does one arm beat *single* random draws, not only their mean?

    ``per_prompt`` is a (prompts × (1 + N)) array: column 0 the arm's per-prompt values,
    columns 1..N those of N random draws on the same prompts. Under the null that the arm
    is one more draw (exchangeable with them), the rank of its mean over prompts among the
    N + 1 means is uniform, so ``p = (1 + #{draws whose mean ≥ the arm's}) / (N + 1)`` is an
    exact one-sided Monte Carlo p-value (at least ``1 / (N + 1)``). ``estimate`` is the
    arm's mean minus the median of the draws' means, with a percentile interval from
    resampling prompts (every column resampled together). ``above`` counts the draws the
    arm's mean exceeds.
    """
    m = np.asarray(per_prompt, float)
    if m.ndim != 2 or m.shape[1] < 2 or m.shape[0] < 1:
        raise ValueError("per_prompt must be prompts × (1 + draws), with at least one draw")
    means = m.mean(0)
    arm, draws = means[0], means[1:]
    n = len(draws)
    estimate = float(arm - np.median(draws))
    lo = hi = float("nan")
    if m.shape[0] >= 2:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, m.shape[0], size=(n_boot, m.shape[0]))
        boot = m[idx].mean(1)  # n_boot × (1 + N)
        stat = boot[:, 0] - np.median(boot[:, 1:], axis=1)
        alpha = 1 - level
        lo, hi = (float(q) for q in np.quantile(stat, [alpha / 2, 1 - alpha / 2]))
    return {
        "estimate": estimate,
        "lo": lo,
        "hi": hi,
        "p": float((1 + np.sum(draws >= arm)) / (n + 1)),
        "above": int(np.sum(draws < arm)),
        "draws": n,
    }
