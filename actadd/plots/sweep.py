"""Figures of a sweep from its tidy table: layer curves, heatmaps and the default set.

Every function takes a tidy table (as written by the sweep runner, or its
:func:`actadd.sweeps.summarize`), draws on a given or new axes, and returns the figure;
:func:`sweep_figures` writes the default figures of a run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize

from actadd.lab.stats import mean_ci, summarize
from actadd.plots.style import (
    baseline_band,
    dodge,
    figure_axes,
    interval_line,
    label,
    paper_style,
    save_figure,
)
from actadd.plots.text import WordLists, align_words, ci_note, pair_title

__all__ = [
    "ALIGN_ORDER",
    "align_offset",
    "align_sort_key",
    "baseline_value",
    "heatmap",
    "layer_curve",
    "sweep_figures",
]

ALIGN_ORDER = ("front", "offset", "back", "all", "positions")


def _summary(df: pd.DataFrame) -> pd.DataFrame:
    if "mean" in df.columns:
        return df
    return summarize(df)


def _select(s: pd.DataFrame, metric: str, pair: str | None, align: str | None, pad: str | None):
    sel = s[(s.metric == metric) & (s.layer >= 0)]
    for col, val in (("pair", pair), ("align", align), ("pad", pad)):
        if val is not None:
            sel = sel[sel[col] == val]
    if sel.empty:
        raise ValueError(f"No rows for metric={metric!r}, pair={pair!r}, align={align!r}.")
    return sel


def baseline_value(df: pd.DataFrame, metric: str) -> tuple[float, float] | None:
    """Mean and standard error of the unsteered rows of ``metric``, if present."""
    s = _summary(df)
    b = s[(s.metric == metric) & (s.layer < 0)]
    if b.empty:
        return None
    return float(b["mean"].iloc[0]), float(b["sem"].fillna(0).iloc[0])


def _baseline_ci(s: pd.DataFrame, metric: str) -> tuple[float, float, float, int] | None:
    """(mean, lo, hi, n) of the first unsteered row of ``metric``: Student-t 95% interval."""
    b = mean_ci(s[(s.metric == metric) & (s.layer < 0)])
    if b.empty:
        return None
    r = b.iloc[0]
    return float(r["mean"]), float(r["lo"]), float(r["hi"]), int(r["count"])


def _title(pair: str | None, align: str | None, extra: str = "") -> str:
    parts = [p for p in (pair_title(pair) if pair else "", align_words(align)) if p]
    return ", ".join(parts) + (f"\n{extra}" if extra else "")


def layer_curve(
    df: pd.DataFrame,
    metric: str,
    *,
    pair: str | None = None,
    align: str | None = "front",
    pad: str | None = None,
    ax=None,
    title: str | None = None,
    words: WordLists | None = None,
):
    """``metric`` against layer, one line per coefficient (dodged so their bars stay
    apart) with Student-t 95% intervals; the unsteered mean dashed, its interval a band.
    ``words`` names the word list of a word-based metric on the y axis."""
    with paper_style():
        s = _summary(df)
        sel = mean_ci(_select(s, metric, pair, align, pad))
        fig, ax = figure_axes(ax)
        base = _baseline_ci(s, metric)
        if base is not None:
            baseline_band(ax, *base[:3], f"unsteered (n = {base[3]})")
        elif metric.endswith("_delta") or metric.startswith("kl"):
            ax.axhline(0, color="0.3", ls="--", lw=1, label="unsteered")
        coeffs = sorted(sel.coeff.unique())
        colors = plt.cm.viridis(np.linspace(0.1, 0.9, len(coeffs)))
        for i, (c, color) in enumerate(zip(coeffs, colors)):
            d = sel[sel.coeff == c].groupby("layer")[["mean", "lo", "hi", "count"]].mean()
            d = d.reset_index()
            interval_line(
                ax,
                dodge(d.layer, i, len(coeffs), 0.6 / max(len(coeffs), 1)),
                d["mean"],
                d["lo"],
                d["hi"],
                color=color,
                lw=1.2,
                elinewidth=0.7,
                capsize=1.5,
                label=f"c = {c:g} (n = {int(d['count'].min())})",
            )
        ax.set_xlabel("Injection layer L (resid_pre)")
        ax.set_ylabel(label(metric, words))
        ax.set_title(title or _title(pair, align))
        ax.legend(
            frameon=False,
            ncol=2,
            fontsize=6.5,
            title=ci_note("Student t"),
            title_fontsize=6.5,
            loc="best",
        )
    return fig


def _heatmap_size(ncols: int, nrows: int) -> tuple[float, float]:
    """Inches: room for a two-line value in every cell."""
    return (max(6.0, 0.36 * ncols + 2.4), max(3.0, 0.32 * nrows + 1.9))


def heatmap(
    df: pd.DataFrame,
    metric: str,
    *,
    x: str = "layer",
    y: str = "coeff",
    pair: str | None = None,
    align: str | None = "front",
    pad: str | None = None,
    ax=None,
    title: str | None = None,
    center: float | None = None,
    words: WordLists | None = None,
):
    """Mean ``metric`` over a ``y × x`` grid (default coefficient × layer), every cell's
    value written in it (and its n where the cells differ in n; else n in the title).

    The colour scale is diverging and centred on the unsteered value (the unsteered rows'
    mean, or ``center`` where given: 0 for a difference from unsteered), so a cell at the
    unsteered value is white and the floor of the scale is not the unsteered value; the
    unsteered value and its n are in the title and marked on the colour bar. Without an
    unsteered value or ``center`` the scale is sequential (viridis)."""
    with paper_style():
        s = _summary(df)
        sel = _select(s, metric, pair, align, pad)
        if x == "offset" or y == "offset":
            sel = sel.assign(offset=sel["align"].map(align_offset))
        grid = sel.pivot_table(index=y, columns=x, values="mean", aggfunc="mean").sort_index()
        counts = sel.pivot_table(index=y, columns=x, values="count", aggfunc="min")
        counts = counts.reindex(index=grid.index, columns=grid.columns)
        fig, ax = figure_axes(ax, size=_heatmap_size(len(grid.columns), len(grid.index)))
        values = grid.values
        base = _baseline_ci(s, metric)
        mid = base[0] if base is not None and center is None else center
        if mid is not None:
            span = float(np.nanmax(np.abs(values - mid))) or 1.0
            norm = Normalize(mid - span, mid + span)
            cmap = plt.get_cmap("RdBu_r")
        else:
            norm = Normalize(float(np.nanmin(values)), float(np.nanmax(values)))
            cmap = plt.get_cmap("viridis")
        im = ax.imshow(
            values, aspect="auto", origin="lower", interpolation="nearest", cmap=cmap, norm=norm
        )
        n = counts.values
        ns = sorted({int(v) for v in n[np.isfinite(n)]})
        for (r, c), v in np.ndenumerate(values):
            if not np.isfinite(v):
                continue
            text = f"{v:.2g}" if abs(v) < 10 else f"{v:.0f}"
            if len(ns) > 1 and np.isfinite(n[r, c]):
                text += f"\nn={int(n[r, c])}"
            lum = np.dot(cmap(norm(v))[:3], (0.299, 0.587, 0.114))
            ax.text(
                c, r, text, ha="center", va="center", fontsize=5,
                color="white" if lum < 0.5 else "black",
            )  # fmt: skip
        ax.set_xticks(range(len(grid.columns)), [f"{v:g}" for v in grid.columns])
        ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
        names = {
            "layer": "Injection layer L",
            "offset": "Injection offset s [tokens]",
            "coeff": "Coefficient c",
        }
        ax.set_xlabel(names.get(x, x))
        ax.set_ylabel(names.get(y, y))
        cbar = fig.colorbar(im, ax=ax, label=label(metric, words), shrink=0.9)
        notes = []
        if base is not None:
            cbar.ax.axhline(base[0], color="k", lw=1.2)
            notes.append(f"unsteered {base[0]:.2g} (n = {base[3]}; black line on the scale)")
        elif center is not None:
            notes.append(f"unsteered = {center:g} (white)")
        elif metric.startswith("kl"):
            notes.append("unsteered = 0 by definition")
        if len(ns) == 1:
            notes.append(f"n = {ns[0]} per cell")
        head = title or _title(pair, align)
        ax.set_title(head + ("\n" + "; ".join(notes) if notes else ""))
    return fig


def align_offset(align: str) -> float:
    """Numeric offset of an alignment label ("front" → 0, "offset:3" → 3), else NaN."""
    if align == "front":
        return 0.0
    if align.startswith("offset:"):
        return float(align.split(":")[1])
    return float("nan")


def sweep_figures(
    df: pd.DataFrame, out_dir: str | Path, words: WordLists | None = None
) -> list[Path]:
    """The default figures of a sweep: per pair, a layer curve and a coefficient × layer
    heatmap of each metric (front alignment), and an offset heatmap when offsets vary.
    ``words`` (default: the table's ``target_words`` / ``topic_words`` columns, if any)
    names the word lists of the word-based metrics."""
    out_dir = Path(out_dir)
    words = words if words is not None else WordLists.of(None, df)
    s = _summary(df)
    written: list[Path] = []
    steered = s[s.layer >= 0]
    for pi, pair in enumerate(sorted(steered.pair.unique())):
        for metric in sorted(steered[steered.pair == pair].metric.unique()):
            sub = steered[(steered.pair == pair) & (steered.metric == metric)]
            align = "front" if "front" in set(sub["align"]) else sub["align"].iloc[0]
            center = 0.0 if metric.endswith("_delta") else None
            stem = out_dir / f"pair{pi}_{metric}"
            kw = dict(pair=pair, words=words)
            if sub.layer.nunique() > 1:
                fig = layer_curve(df, metric, align=align, **kw)
                written += save_figure(fig, f"{stem}_by_layer")
                if sub.coeff.nunique() > 1:
                    fig = heatmap(s, metric, align=align, center=center, **kw)
                    written += save_figure(fig, f"{stem}_heatmap")
            offsets = sub["align"].map(align_offset).dropna()
            if offsets.nunique() > 1:
                fig = heatmap(
                    s,
                    metric,
                    x="offset",
                    y="layer",
                    align=None,
                    center=center,
                    title=f"{pair_title(pair)}: offset × layer",
                    **kw,
                )
                written += save_figure(fig, f"{stem}_offsets")
    return written


def align_sort_key(align: str) -> tuple[int, float]:
    """Order alignments front, offset:1, offset:2, ..., back, all."""
    kind = align.split(":")[0]
    rank = ALIGN_ORDER.index(kind) if kind in ALIGN_ORDER else len(ALIGN_ORDER)
    off = align_offset(align)
    return (rank, 0.0 if np.isnan(off) else off)
