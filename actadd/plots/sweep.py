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

from actadd.lab.stats import summarize
from actadd.plots.style import PAPER_RC, figure_axes, interval_line, label, save_figure

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


def layer_curve(
    df: pd.DataFrame,
    metric: str,
    *,
    pair: str | None = None,
    align: str | None = "front",
    pad: str | None = None,
    ax=None,
    title: str | None = None,
):
    """``metric`` against layer, one line per coefficient, ±1 s.e. bars, baseline dashed."""
    with plt.rc_context(PAPER_RC):
        s = _summary(df)
        sel = _select(s, metric, pair, align, pad)
        fig, ax = figure_axes(ax)
        coeffs = sorted(sel.coeff.unique())
        colors = plt.cm.viridis(np.linspace(0.1, 0.9, len(coeffs)))
        for c, color in zip(coeffs, colors):
            d = sel[sel.coeff == c].groupby("layer")[["mean", "sem"]].mean().reset_index()
            interval_line(
                ax,
                d.layer,
                d["mean"],
                err=d["sem"].fillna(0),
                color=color,
                lw=1.2,
                elinewidth=None,
                capsize=2,
                label=f"c = {c:g}",
            )
        base = baseline_value(df, metric)
        if base is not None:
            ax.axhline(base[0], color="0.3", ls="--", lw=1, label="unsteered")
            if base[1] > 0:
                ax.axhspan(base[0] - base[1], base[0] + base[1], color="0.8", alpha=0.5, lw=0)
        elif metric.endswith("_delta") or metric.startswith("kl"):
            ax.axhline(0, color="0.3", ls="--", lw=1, label="unsteered")
        ax.set_xlabel("Injection layer L (resid_pre)")
        ax.set_ylabel(label(metric))
        ax.set_title(title or f"{pair or ''} {align or ''}".strip())
        ax.legend(frameon=False, ncol=2)
    return fig


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
):
    """Mean ``metric`` over a ``y × x`` grid (default coefficient × layer)."""
    with plt.rc_context(PAPER_RC):
        s = _summary(df)
        sel = _select(s, metric, pair, align, pad)
        if x == "offset" or y == "offset":
            sel = sel.assign(offset=sel["align"].map(align_offset))
        grid = sel.pivot_table(index=y, columns=x, values="mean", aggfunc="mean").sort_index()
        fig, ax = figure_axes(ax, size=(6.0, 3.0))
        values = grid.values
        if center is not None:
            span = np.nanmax(np.abs(values - center)) or 1.0
            kw = dict(cmap="RdBu_r", vmin=center - span, vmax=center + span)
        else:
            kw = dict(cmap="viridis")
        im = ax.imshow(values, aspect="auto", origin="lower", interpolation="nearest", **kw)
        ax.set_xticks(range(len(grid.columns)), [f"{v:g}" for v in grid.columns])
        ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
        ax.set_xlabel(
            {
                "layer": "Injection layer L",
                "offset": "Injection offset s [tokens]",
                "coeff": "Coefficient c",
            }.get(x, x)
        )
        ax.set_ylabel(
            {
                "coeff": "Coefficient c",
                "layer": "Injection layer L",
                "offset": "Injection offset s [tokens]",
            }.get(y, y)
        )
        fig.colorbar(im, ax=ax, label=label(metric), shrink=0.9)
        ax.set_title(title or f"{pair or ''} {align or ''}".strip())
    return fig


def align_offset(align: str) -> float:
    """Numeric offset of an alignment label ("front" → 0, "offset:3" → 3), else NaN."""
    if align == "front":
        return 0.0
    if align.startswith("offset:"):
        return float(align.split(":")[1])
    return float("nan")


def sweep_figures(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """The default figures of a sweep: per pair, a layer curve and a coefficient × layer
    heatmap of each metric (front alignment), and an offset heatmap when offsets vary."""
    out_dir = Path(out_dir)
    s = _summary(df)
    written: list[Path] = []
    steered = s[s.layer >= 0]
    for pi, pair in enumerate(sorted(steered.pair.unique())):
        for metric in sorted(steered[steered.pair == pair].metric.unique()):
            sub = steered[(steered.pair == pair) & (steered.metric == metric)]
            align = "front" if "front" in set(sub["align"]) else sub["align"].iloc[0]
            center = 0.0 if metric.endswith("_delta") else None
            stem = out_dir / f"pair{pi}_{metric}"
            if sub.layer.nunique() > 1:
                written += save_figure(
                    layer_curve(df, metric, pair=pair, align=align, title=f"{pair} ({align})"),
                    f"{stem}_by_layer",
                )
                if sub.coeff.nunique() > 1:
                    written += save_figure(
                        heatmap(
                            s,
                            metric,
                            pair=pair,
                            align=align,
                            center=center,
                            title=f"{pair} ({align})",
                        ),
                        f"{stem}_heatmap",
                    )
            offsets = sub["align"].map(align_offset).dropna()
            if offsets.nunique() > 1:
                written += save_figure(
                    heatmap(
                        s,
                        metric,
                        x="offset",
                        y="layer",
                        pair=pair,
                        align=None,
                        center=center,
                        title=f"{pair}: offset × layer",
                    ),
                    f"{stem}_offsets",
                )
    return written


def align_sort_key(align: str) -> tuple[int, float]:
    """Order alignments front, offset:1, offset:2, ..., back, all."""
    kind = align.split(":")[0]
    rank = ALIGN_ORDER.index(kind) if kind in ALIGN_ORDER else len(ALIGN_ORDER)
    off = align_offset(align)
    return (rank, 0.0 if np.isnan(off) else off)
