"""Tests of paired and independent samples, and multiple-comparison adjustment. Pure
functions: each states what it assumes.

- :func:`mcnemar_exact` — exact McNemar test for paired binary outcomes;
- :func:`paired_t` — the mean of paired differences, its Student-t interval and test;
- :func:`welch_t` — a difference of two independent means, Welch's interval and test;
- :func:`cluster_interval` — the interval of a mean over clusters (prompts) that the
  number of clusters allows: :func:`cluster_bootstrap` from :data:`MIN_BOOT_CLUSTERS` (5)
  clusters, :func:`cluster_t` below that, none from one cluster;
- :func:`cluster_bootstrap` — a percentile interval of a mean, resampling whole clusters
  (prompts), and its two-sided bootstrap p-value (at least 5 clusters);
- :func:`cluster_t` — a cluster-robust Student-t interval of a mean (k − 1 degrees of
  freedom), for 2 to 4 clusters, where a bootstrap would only restate their range;
- :func:`sign_flip_test` — randomization test of cluster-level mean differences (exact to
  40 clusters, Monte Carlo above);
- :func:`rank_against_draws` — whether one arm beats single random draws (exact rank test);
- :func:`bh_adjust` — Benjamini–Hochberg false-discovery-rate adjusted p-values.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "MIN_BOOT_CLUSTERS",
    "Numbers",
    "SIGN_FLIP_DRAWS",
    "SIGN_FLIP_EXACT_MAX",
    "bh_adjust",
    "cluster_bootstrap",
    "cluster_interval",
    "cluster_t",
    "mcnemar_exact",
    "paired_t",
    "rank_against_draws",
    "sequential_rank_p",
    "sign_flip_method",
    "sign_flip_test",
    "welch_t",
]

# numbers a test takes: a list, a numpy array or a pandas Series
Numbers = Sequence[float] | np.ndarray | pd.Series

#: the fewest clusters a bootstrap interval is drawn from. With k clusters a resample holds
#: at most k distinct values, so with 2 the percentile interval is the range of the two
#: cluster means, far narrower than any honest interval (a t interval on 1 degree of
#: freedom is ±12.7 standard errors); below this :func:`cluster_interval` uses
#: :func:`cluster_t`
MIN_BOOT_CLUSTERS = 5


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


def _cluster_sums(values: Numbers, clusters) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-cluster sums and counts of ``values`` and their pooled mean."""
    v = np.asarray(values, float)
    keys = pd.factorize(pd.Series(list(clusters)))[0]
    if len(v) != len(keys) or len(v) == 0:
        raise ValueError("values and clusters must be non-empty and of one length")
    k = int(keys.max()) + 1
    sums = np.bincount(keys, weights=v, minlength=k)
    counts = np.bincount(keys, minlength=k).astype(float)
    return sums, counts, float(sums.sum() / counts.sum())


def cluster_interval(
    values: Numbers,
    clusters: Sequence | np.ndarray | pd.Series,
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float | str]:
    """Mean of ``values`` with the interval over clusters that their number allows.

    ``k >= MIN_BOOT_CLUSTERS`` clusters: :func:`cluster_bootstrap` (percentile); 2 to 4:
    :func:`cluster_t` (Student t on k − 1 degrees of freedom); one cluster: no interval
    (``lo = hi = p = nan``: nothing varies between clusters). Returns ``{"mean", "lo",
    "hi", "p", "clusters", "interval"}``, ``interval`` naming the method used (``"cluster
    bootstrap"``, ``"t over 3 clusters"`` or ``"none (one cluster)"``).
    """
    sums, counts, mean = _cluster_sums(values, clusters)
    k = len(sums)
    if k >= MIN_BOOT_CLUSTERS:
        out = cluster_bootstrap(values, clusters, n_boot=n_boot, seed=seed, level=level)
        return {**out, "interval": "cluster bootstrap"}
    if k >= 2:
        return {**cluster_t(values, clusters, level=level), "interval": f"t over {k} clusters"}
    nan = float("nan")
    return {"mean": mean, "lo": nan, "hi": nan, "p": nan, "clusters": k,
            "interval": "none (one cluster)"}  # fmt: skip


def cluster_t(
    values: Numbers, clusters: Sequence | np.ndarray | pd.Series, *, level: float = 0.95
) -> dict[str, float]:
    """Pooled mean of ``values`` with a cluster-robust Student-t interval and test of mean 0.

    The pooled mean ``m = Σ s_j / Σ n_j`` (cluster sums ``s_j``, sizes ``n_j``) has the
    cluster-robust standard error ``sqrt(k/(k−1) · Σ (s_j − m n_j)²) / Σ n_j``; the interval
    is ``m ± t_{k−1} · se`` and ``p`` the two-sided t-test on ``k − 1`` degrees of freedom.
    With equal cluster sizes this is exactly the one-sample t interval of the ``k`` cluster
    means. Assumes the cluster means are independent and roughly normal: with 2–4 clusters
    it is wide, as it should be. Needs ``k >= 2``; all-equal cluster means give a zero-width
    interval and p = 1 (mean 0) or 0. Returns ``{"mean", "lo", "hi", "p", "clusters"}``.
    """
    from scipy import stats as st

    sums, counts, mean = _cluster_sums(values, clusters)
    k = len(sums)
    if k < 2:
        raise ValueError(f"cluster_t needs at least 2 clusters, got {k}")
    resid = sums - mean * counts
    se = math.sqrt(k / (k - 1) * float((resid**2).sum())) / float(counts.sum())
    if se <= 1e-15 * max(1.0, abs(mean)):
        p = 1.0 if mean == 0 else 0.0
        return {"mean": mean, "lo": mean, "hi": mean, "p": p, "clusters": k}
    q = float(st.t.ppf(0.5 + level / 2, k - 1))
    p = float(2 * st.t.sf(abs(mean / se), k - 1))
    return {"mean": mean, "lo": mean - q * se, "hi": mean + q * se, "p": p, "clusters": k}


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
    never 0). Needs at least :data:`MIN_BOOT_CLUSTERS` clusters (ValueError otherwise; use
    :func:`cluster_interval`, which falls back to :func:`cluster_t`). The randomness is
    ``numpy.random.default_rng(seed)``: reproducible.
    """
    sums, counts, mean = _cluster_sums(values, clusters)
    k = len(sums)
    if k < MIN_BOOT_CLUSTERS:
        raise ValueError(
            f"cluster_bootstrap needs at least {MIN_BOOT_CLUSTERS} clusters, got {k}: with so "
            "few a resample only restates their range (use cluster_interval: a t interval)"
        )
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n_boot, k))
    boot = sums[draws].sum(1) / counts[draws].sum(1)
    alpha = 1 - level
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    below = (np.sum(boot <= 0) + 1) / (n_boot + 1)
    above = (np.sum(boot >= 0) + 1) / (n_boot + 1)
    p = float(min(1.0, 2 * min(below, above)))
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "p": p, "clusters": k}


#: the most clusters :func:`sign_flip_test` enumerates exactly (``2^k`` sign vectors, by
#: meeting in the middle); above it the test draws :data:`SIGN_FLIP_DRAWS` of them
SIGN_FLIP_EXACT_MAX = 40
#: random sign vectors of the Monte Carlo sign-flip test (more than 40 clusters)
SIGN_FLIP_DRAWS = 100_000


def sign_flip_test(
    cluster_means: Numbers,
    alternative: str = "two-sided",
    *,
    draws: int = SIGN_FLIP_DRAWS,
    seed: int = 0,
) -> float:
    """Randomization p-value that cluster-level mean differences are symmetric about 0 (each
    cluster's sign flipped, every assignment equally likely).

    ``alternative``: ``"two-sided"`` (``|Σ s·m| ≥ |Σ m|``), ``"greater"`` (``Σ s·m ≥ Σ m``: the
    hypothesis "raises") or ``"less"`` (``Σ s·m ≤ Σ m``: "lowers"). The unit is the cluster
    (e.g. the per-prompt mean of steered − unsteered), so shared prompts are not counted as
    independent evidence. With ``k`` clusters the smallest possible p-value is ``2 / 2^k``
    two-sided and ``1 / 2^k`` one-sided (k = 8: 0.0078 and 0.0039).

    Exact for ``1 ≤ k ≤ 40`` (:data:`SIGN_FLIP_EXACT_MAX`): the ``2^k`` sums are counted by
    meeting in the middle (the sums of each half, one half sorted), so k = 32 costs two sets
    of 65,536 sums, not 4·10⁹. Above 40 clusters (2^20 sums per half would be too many) it is
    a Monte Carlo test: ``draws`` sign vectors drawn uniformly (``default_rng(seed)``:
    reproducible), ``p = (1 + g) / (1 + draws)`` with ``g`` of them reaching the observed sum.
    That p-value is valid at every level (the observed assignment counts as one of the
    draws; Phipson & Smyth 2010) and never below ``1 / (1 + draws)``; its Monte Carlo
    standard error is ``√(p(1 − p) / draws)`` (0.0007 at p = 0.05 with 100,000 draws).
    :func:`sign_flip_method` names which one a ``k`` gets.
    """
    m = np.asarray(cluster_means, float)
    k = len(m)
    if k < 1:
        raise ValueError("sign_flip_test needs at least one cluster, got 0")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(
            f"sign_flip_test: alternative {alternative!r} unknown; allowed: "
            "'two-sided', 'greater', 'less'"
        )
    observed = float(m.sum())
    if alternative == "less":
        m, observed = -m, -observed
    if alternative == "two-sided":
        observed = abs(observed)
        if observed == 0.0:
            return 1.0
    tol = 1e-12 * max(1.0, abs(observed), float(np.abs(m).sum()))
    if k > SIGN_FLIP_EXACT_MAX:
        return _sign_flip_monte_carlo(m, observed - tol, alternative == "two-sided", draws, seed)
    left, right = _signed_sums(m[: k // 2]), np.sort(_signed_sums(m[k // 2 :]))
    # pairs (i, j) with left[i] + right[j] >= observed - tol
    at_least = len(right) - np.searchsorted(right, observed - tol - left, side="left")
    p = float(at_least.sum()) / 2.0**k
    # two-sided: {S >= x} and {S <= -x} are disjoint for x > 0 and equally likely (symmetry)
    return min(1.0, 2.0 * p) if alternative == "two-sided" else p


def sign_flip_method(k: int, draws: int = SIGN_FLIP_DRAWS) -> str:
    """How :func:`sign_flip_test` computes its p-value over ``k`` clusters, for a claim's
    test text: ``"exact"``, or ``"Monte Carlo, 100,000 sign vectors"``."""
    return "exact" if k <= SIGN_FLIP_EXACT_MAX else f"Monte Carlo, {draws:,} sign vectors"


def _sign_flip_monte_carlo(
    m: np.ndarray, threshold: float, absolute: bool, draws: int, seed: int
) -> float:
    """``(1 + #{b : Σ s_b·m ≥ threshold}) / (1 + draws)`` over ``draws`` uniform sign vectors
    ``s_b`` (``|Σ s_b·m|`` with ``absolute``), drawn in chunks of 10,000 rows. A sign vector
    is ``2·bits − 1`` for uniform random bits, so its sum is ``2·(bits·m) − Σm``."""
    if draws < 1:
        raise ValueError(f"sign_flip_test: draws must be >= 1, got {draws}")
    rng = np.random.default_rng(seed)
    k, width = len(m), -(-len(m) // 8)  # bytes per sign vector
    reached, left = 0, draws
    while left:
        n = min(left, 10_000)
        raw = np.frombuffer(rng.bytes(n * width), np.uint8)
        bits = np.unpackbits(raw).reshape(n, 8 * width)[:, :k]
        sums = 2.0 * (bits @ m) - m.sum()
        reached += int(np.count_nonzero((np.abs(sums) if absolute else sums) >= threshold))
        left -= n
    return (1.0 + reached) / (1.0 + draws)


def _signed_sums(m: np.ndarray) -> np.ndarray:
    """``Σ s·m`` for every sign vector ``s ∈ {±1}^len(m)`` (one value for an empty ``m``)."""
    return _sign_matrix(len(m)) @ m


@functools.lru_cache(maxsize=8)
def _sign_matrix(k: int) -> np.ndarray:
    """All ``2^k`` sign vectors of length ``k`` as rows (read-only; cached: power
    simulations call the test thousands of times)."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=k))).reshape(2**k, k)
    signs.setflags(write=False)
    return signs


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
    resampling prompts (every column resampled together) when there are at least
    :data:`MIN_BOOT_CLUSTERS` prompts, and none (NaN) below that: the rank p-value is exact
    and needs no interval. ``above`` counts the draws the arm's mean exceeds.
    """
    m = np.asarray(per_prompt, float)
    if m.ndim != 2 or m.shape[1] < 2 or m.shape[0] < 1:
        raise ValueError("per_prompt must be prompts × (1 + draws), with at least one draw")
    means = m.mean(0)
    arm, draws = means[0], means[1:]
    n = len(draws)
    estimate = float(arm - np.median(draws))
    lo = hi = float("nan")
    if m.shape[0] >= MIN_BOOT_CLUSTERS:
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


def sequential_rank_p(arm: float, draws: Numbers, *, stop_after: int, max_draws: int) -> dict:
    """The one-sided Monte Carlo p-value of ``arm`` against random ``draws`` taken in order,
    stopped early once ``stop_after`` of them reach it (Besag & Clifford 1991, "Sequential
    Monte Carlo p-values", Biometrika 78: 301-304).

    With ``h = stop_after`` and ``N = max_draws``: if the h-th draw ``>= arm`` is draw
    ``n <= N``, sampling stops there and ``p = h / n``; otherwise, after all N draws with
    ``g < h`` of them ``>= arm``, ``p = (g + 1) / (N + 1)``, the fixed-N rank p-value. Both
    are valid (``P(p <= a) <= a`` when the arm is exchangeable with the draws); the smallest
    p is ``1 / (N + 1)``, as with N draws, while an arm that sits among the draws stops
    after about ``h / (fraction of draws above it)`` of them. ``stop_after = 0`` is the
    fixed-N test. Draws past the stopping point are ignored (pass more than needed freely).

    Returns ``p``, ``used`` (draws consumed), ``exceed`` (how many of them ``>= arm``),
    ``stopped`` (early) and ``complete`` (the decision is made: stopped, or N draws seen).
    """
    x = np.asarray(draws, float)
    if stop_after < 0 or max_draws < 1:
        raise ValueError("stop_after must be >= 0 and max_draws >= 1")
    x = x[:max_draws]
    hits = np.cumsum(x >= arm)
    if stop_after > 0 and len(hits) and hits[-1] >= stop_after:
        n = int(np.argmax(hits >= stop_after)) + 1
        return dict(p=stop_after / n, used=n, exceed=stop_after, stopped=True, complete=True)
    g = int(hits[-1]) if len(hits) else 0
    return dict(
        p=(g + 1) / (max_draws + 1), used=len(x), exceed=g, stopped=False,
        complete=len(x) >= max_draws,
    )  # fmt: skip
