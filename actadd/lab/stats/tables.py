"""Per-cell summaries of tidy sweep tables, with their intervals. Pure functions.

A tidy sweep table has one row per (cell, text, sample, metric) with a ``value``; the cell
keys are :data:`CELL_KEYS`, and unsteered rows have ``layer < 0``.

- :func:`summarize` — mean, standard deviation, standard error and count per cell;
- :func:`proportion_summary` — per-cell proportions of a 0/1 metric with Wilson intervals and
  Newcombe intervals of the difference from unsteered;
- :func:`mean_ci` — Student-t intervals of per-cell means (a ``summarize`` table);
- :func:`mean_diffs` — the same, plus the difference from the unsteered mean with a Welch
  interval;
- :func:`paired_diffs` — the same for sampled metrics whose arms share seeds: the difference
  from unsteered paired by (prompt, sample), interval over prompts (cluster bootstrap, or t
  below 5 prompts);
- :func:`range_table` — per-cell mean with the minimum and maximum over texts (no interval).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from actadd.errors import ConfigError
from actadd.lab.stats.hypothesis_tests import cluster_interval
from actadd.lab.stats.intervals import newcombe_interval, t95, wilson_interval

__all__ = [
    "CELL_KEYS",
    "mean_ci",
    "mean_diffs",
    "paired_diffs",
    "proportion_summary",
    "range_table",
    "summarize",
]

CELL_KEYS = ("pair", "pad", "layer", "coeff", "align")


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
    unsteered on the *same* (prompt, sample) seeds with an interval over prompts
    (:func:`cluster_interval`: a cluster bootstrap from 5 prompts, a t interval over 2–4,
    none from one): the arms share seeds and prompts, so neither is an independent sample
    (which Welch's interval would assume).

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
        b = cluster_interval(d.to_numpy(), d.index.get_level_values(0).to_numpy(), n_boot=n_boot)
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


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, standard error and count of each metric per sweep cell
    (``pair, pad, layer, coeff, align, metric``) of a tidy sweep table."""
    keys = ["pair", "pad", "layer", "coeff", "align", "metric"]
    g = df.groupby(keys, dropna=False)["value"]
    out = g.agg(["mean", "count", "std"]).reset_index()
    out["sem"] = out["std"] / np.sqrt(out["count"].clip(lower=1))
    return out
