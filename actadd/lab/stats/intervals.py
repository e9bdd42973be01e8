"""Confidence intervals of proportions and the Student-t quantile. Pure functions.

- :func:`wilson_interval` — one binomial proportion (Wilson score interval);
- :func:`newcombe_interval` — a difference of two independent proportions (Newcombe's
  hybrid score interval, method 10 of Newcombe 1998);
- :func:`paired_newcombe_interval` — a difference of two paired proportions (Newcombe's
  method 10 for paired data, 1998);
- :func:`t95` — the two-sided 95% Student-t quantile, exact for any degrees of freedom.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["newcombe_interval", "paired_newcombe_interval", "t95", "wilson_interval"]


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


def t95(dof: float) -> float:
    """Two-sided 95% Student-t quantile (the 0.975 quantile) for ``dof`` degrees of freedom.

    Exact for every ``dof > 0``, integer or not (Welch–Satterthwaite degrees of freedom are
    not): ``scipy.stats.t.ppf(0.975, dof)``, e.g. 12.706 at 1, 2.042 at 30, 2.000 at 60 and
    1.960 only in the limit. ``dof <= 0`` or non-finite gives NaN.
    """
    if not np.isfinite(dof) or dof <= 0:
        return float("nan")
    from scipy import stats as st

    return float(st.t.ppf(0.975, dof))
