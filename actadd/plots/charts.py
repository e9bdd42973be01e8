"""Generic charts of a sweep's cell tables: proportions and means by layer, grouped bars, ratios.

Each takes a table already reduced to one row per cell
(:func:`actadd.lab.stats.proportion_summary` for 0/1 metrics, :func:`actadd.sweeps.summarize`
for means), draws on a given or new axes in the house style and returns the figure:
:func:`proportion_by_layer`, :func:`mean_by`, :func:`cell_bars`, :func:`ratio_vs_relevance`.
The studies compose them into their figures (``actadd/studies/paper/figures.py``,
``actadd/studies/perplexity/figures.py``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from actadd.lab.stats import mean_ci, t95
from actadd.plots.style import (
    baseline_band,
    dodge,
    figure_axes,
    interval_line,
    label,
    paper_style,
    yerr,
)
from actadd.plots.text import WordLists, align_words, ci_note, pair_title

__all__ = ["cell_bars", "mean_by", "proportion_by_layer", "ratio_vs_relevance"]


def proportion_by_layer(
    props: pd.DataFrame,
    *,
    pair: str | None = None,
    align: str | None = "front",
    ax=None,
    title: str | None = None,
    ylabel: str = "Completions with a topic word [fraction]",
    words: WordLists | None = None,
):
    """Fraction of completions with a topic word against injection layer.

    One line per coefficient (dodged along x) with Wilson 95% intervals; the unsteered
    fraction is the dashed line with its Wilson interval as a grey band. ``props`` is
    :func:`actadd.lab.stats.proportion_summary` output; ``words`` names the topic word list
    under ``ylabel``.
    """
    with paper_style():
        fig, ax = figure_axes(ax)
        sel = props[props.layer >= 0]
        for col, val in (("pair", pair), ("align", align)):
            if val is not None and col in sel.columns:
                sel = sel[sel[col] == val]
        if sel.empty:
            raise ValueError(f"No steered rows for pair={pair!r}, align={align!r}.")
        base = props[props.layer < 0]
        if len(base):
            b = base.iloc[0]
            baseline_band(ax, b.frac, b.lo, b.hi, f"unsteered (n = {int(b.n)})")
        coeffs = sorted(sel.coeff.unique())
        colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(coeffs)))
        for i, (c, color) in enumerate(zip(coeffs, colors)):
            d = sel[sel.coeff == c].sort_values("layer")
            bars = interval_line(
                ax,
                dodge(d.layer, i, len(coeffs), 0.18),
                d.frac,
                d.lo,
                d.hi,
                color=color,
                elinewidth=0.7,
                capsize=1.2,
                label=f"c = {c:g} (n = {int(d.n.iloc[0])})",
            )
            for part in (*bars[1], *bars[2]):  # caps and bars lighter than the line
                part.set_alpha(0.5)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("Injection layer L (resid_pre)")
        ax.set_ylabel(ylabel if words is None else f"{ylabel}\n({words.describe('topic')})")
        ax.set_title(title or _title(pair, align))
        ax.legend(
            frameon=False,
            ncol=2,
            loc="best",
            fontsize=6.5,
            title=ci_note("Wilson"),
            title_fontsize=6.5,
        )
    return fig


def _title(pair: str | None, align: str | None) -> str:
    return ", ".join(t for t in (pair_title(pair) if pair else "", align_words(align)) if t)


def mean_by(
    summary: pd.DataFrame,
    metric: str,
    *,
    x: str = "layer",
    lines: str = "coeff",
    pair: str | None = None,
    align: str | None = "front",
    ax=None,
    title: str | None = None,
    xlabel: str | None = None,
    log_x: bool = False,
    words: WordLists | None = None,
):
    """Mean ``metric`` against ``x`` (``"layer"`` or ``"coeff"``), one line per value of
    ``lines`` (dodged along x), with Student-t 95% intervals and the unsteered band.

    ``summary`` is :func:`actadd.sweeps.summarize` output (steered rows ``layer >= 0``,
    unsteered ``layer < 0``); ``words`` names the word list of a word-based metric.
    """
    with paper_style():
        fig, ax = figure_axes(ax)
        s = mean_ci(summary[summary.metric == metric])
        sel = s[s.layer >= 0]
        for col, val in (("pair", pair), ("align", align)):
            if val is not None:
                sel = sel[sel[col] == val]
        if sel.empty:
            raise ValueError(f"No steered rows for metric={metric!r}, pair={pair!r}.")
        base = s[s.layer < 0]
        if len(base):
            b = base.groupby("metric")[["mean", "lo", "hi", "count"]].mean().iloc[0]
            baseline_band(ax, b["mean"], b["lo"], b["hi"], f"unsteered (n = {int(b['count'])})")
        elif metric.endswith("_delta") or metric.startswith("kl"):
            ax.axhline(0, color="0.25", ls="--", lw=1, label="unsteered")
        values = sorted(sel[lines].unique())
        colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(values)))
        for i, (v, color) in enumerate(zip(values, colors)):
            d = sel[sel[lines] == v].groupby(x)[["mean", "lo", "hi"]].mean().reset_index()
            # spread the lines a little along x so that their error bars stay apart
            step = (i - (len(values) - 1) / 2) / max(len(values), 1)
            xs = d[x] * 2 ** (0.25 * step) if log_x else d[x] + 0.6 * step
            interval_line(
                ax,
                xs,
                d["mean"],
                d["lo"],
                d["hi"],
                color=color,
                label=f"{'c' if lines == 'coeff' else 'L'} = {v:g}",
            )
        if log_x:
            ax.set_xscale("log", base=2)
            ticks = sorted(sel[x].unique())
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(
            xlabel or {"layer": "Injection layer L (resid_pre)", "coeff": "Coefficient c"}.get(x, x)
        )
        ax.set_ylabel(label(metric, words))
        ax.set_title(title or _title(pair, align))
        ax.legend(
            frameon=False,
            ncol=2,
            fontsize=6.5,
            loc="best",
            title=ci_note("Student t"),
            title_fontsize=6.5,
        )
    return fig


def cell_bars(
    table: pd.DataFrame,
    *,
    groups: str,
    bars: str,
    value: str = "frac",
    ax=None,
    baseline: tuple[float, float, float] | None = None,
    ylabel: str = "",
    title: str = "",
    order: list | None = None,
    bar_order: list | None = None,
    colors=None,
    interval: str | None = None,
):
    """Grouped bars with intervals: one group per value of ``groups`` (x axis), one bar
    per value of ``bars`` inside it, side by side. ``table`` has ``value``, ``lo`` and
    ``hi`` columns. ``baseline`` = (centre, lo, hi) of the unsteered value, drawn as a line
    and band; ``colors`` gives one colour per bar value (default: tab10); ``interval`` says
    what the bars are (the legend's title, e.g. ``ci_note("Wilson")``)."""
    with paper_style():
        fig, ax = figure_axes(ax, size=(6.0, 3.0))
        gvals = order or list(dict.fromkeys(table[groups]))
        bvals = bar_order or list(dict.fromkeys(table[bars]))
        width = 0.8 / max(len(bvals), 1)
        colors = plt.cm.tab10(np.arange(len(bvals)) % 10) if colors is None else colors
        if baseline is not None:
            baseline_band(ax, *baseline)
        for j, (bv, color) in enumerate(zip(bvals, colors)):
            d = table[table[bars] == bv].set_index(groups).reindex(gvals)
            xs = np.arange(len(gvals)) + (j - (len(bvals) - 1) / 2) * width
            ax.bar(xs, d[value], width * 0.9, color=color, label=str(bv), zorder=2)
            ax.errorbar(
                xs,
                d[value],
                yerr=yerr(d[value], d["lo"], d["hi"]),
                fmt="none",
                ecolor="0.15",
                elinewidth=0.8,
                capsize=1.5,
                zorder=3,
            )
        ax.set_xticks(np.arange(len(gvals)), [str(g) for g in gvals])
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=6.5, title=interval, title_fontsize=6.5)
    return fig


def ratio_vs_relevance(
    table: pd.DataFrame,
    *,
    x: str = "topic_density",
    y: str = "ratio",
    ax=None,
    title: str = "",
    xlabel: str = "Wedding words per 100 words of the text",
    ylabel: str = "Perplexity ratio, steered / unsteered",
    bins: int = 4,
    log_y: bool = True,
):
    """Per-text ratio against topic relevance (points coloured by text group), with binned
    means and their Student-t 95% intervals; the line y = 1 is the unsteered model. The
    ratio is on a log axis (``log_y``): ratios of 0.9 and 14 in one panel stay readable."""
    with paper_style():
        fig, ax = figure_axes(ax)
        ax.axhline(1.0, color="0.25", ls="--", lw=1, label="unsteered (ratio 1)")
        groups = list(dict.fromkeys(table["group"])) if "group" in table else [None]
        colors = plt.cm.Set2(np.arange(len(groups)) % 8)
        for g, color in zip(groups, colors):
            d = table if g is None else table[table["group"] == g]
            ax.scatter(d[x], d[y], s=10, color=color, alpha=0.8, lw=0, label=g, zorder=2)
        edges = np.unique(np.quantile(table[x], np.linspace(0, 1, bins + 1)))
        if len(edges) > 2:
            which = np.clip(np.searchsorted(edges, table[x], side="right") - 1, 0, len(edges) - 2)
            g = table.assign(_bin=which).groupby("_bin")
            m = g[[x, y]].mean()
            count = g[y].count()
            sem = g[y].std().fillna(0) / np.sqrt(count)
            t = np.array([t95(n - 1) if n > 1 else 0.0 for n in count])
            interval_line(
                ax,
                m[x],
                m[y],
                err=t * sem.to_numpy(),
                color="k",
                marker="s",
                ms=4,
                lw=1.2,
                elinewidth=None,
                capsize=2,
                label=f"binned mean ({ci_note('Student t')})",
                zorder=3,
            )
        if log_y:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=7)
    return fig
