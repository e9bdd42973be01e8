"""Figures of the paper-reproduction experiments (experiments/README.md).

The building blocks take a table already reduced to one row per cell
(:func:`actadd.lab.stats.proportion_summary` for 0/1 metrics, :func:`actadd.sweeps.summarize`
for means), draw on a given or new axes and return the figure: :func:`proportion_by_layer`,
:func:`mean_by`, :func:`cell_bars`, :func:`ratio_vs_relevance`. The figures of the
sweep-based kinds (:func:`word_count_figures`, :func:`sentiment_figure`,
:func:`failures_figure`, :func:`alignment_figures`) take the kind's tables and the run's
``figures/`` directory and return the paths they wrote.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.lab.stats import mean_ci
from actadd.plots.style import (
    CI_NOTE,
    PAPER_RC,
    baseline_band,
    figure_axes,
    interval_line,
    label,
    panels,
    save_figure,
    yerr,
)
from actadd.plots.sweep import align_sort_key


def proportion_by_layer(
    props: pd.DataFrame,
    *,
    pair: str | None = None,
    align: str | None = "front",
    ax=None,
    title: str | None = None,
    ylabel: str = "Completions with a topic word [fraction]",
):
    """Fraction of completions with a topic word against injection layer.

    One line per coefficient with Wilson 95% intervals; the unsteered fraction is the dashed
    line with its Wilson interval as a grey band. ``props`` is
    :func:`actadd.lab.stats.proportion_summary` output.
    """
    with plt.rc_context(PAPER_RC):
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
            shift = (i - (len(coeffs) - 1) / 2) * 0.18  # keep the error bars apart
            bars = interval_line(
                ax,
                d.layer + shift,
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
        ax.set_ylabel(ylabel)
        ax.set_title(title or (pair or ""))
        ax.legend(frameon=False, ncol=2, loc="upper right")
        ax.text(0.01, 0.99, CI_NOTE + " (Wilson)", transform=ax.transAxes, va="top", fontsize=7)
    return fig


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
):
    """Mean ``metric`` against ``x`` (``"layer"`` or ``"coeff"``), one line per value of
    ``lines``, with Student-t 95% intervals and the unsteered band.

    ``summary`` is :func:`actadd.sweeps.summarize` output (steered rows ``layer >= 0``,
    unsteered ``layer < 0``).
    """
    with plt.rc_context(PAPER_RC):
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
        ax.set_ylabel(label(metric))
        ax.set_title(title or (pair or ""))
        ax.legend(frameon=False, ncol=2, fontsize=6.5, loc="best")
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
):
    """Grouped bars with 95% intervals: one group per value of ``groups`` (x axis), one bar
    per value of ``bars`` inside it. ``table`` has ``value``, ``lo`` and ``hi`` columns.
    ``baseline`` = (centre, lo, hi) of the unsteered value, drawn as a line and band;
    ``colors`` gives one colour per bar value (default: tab10)."""
    with plt.rc_context(PAPER_RC):
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
        ax.legend(frameon=False, fontsize=7)
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
):
    """Per-text ratio against topic relevance (points coloured by text group), with binned
    means ±95% intervals; the line y = 1 is the unsteered model."""
    with plt.rc_context(PAPER_RC):
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
            sem = g[y].std().fillna(0) / np.sqrt(g[y].count())
            interval_line(
                ax,
                m[x],
                m[y],
                err=1.96 * sem,
                color="k",
                marker="s",
                ms=4,
                lw=1.2,
                elinewidth=None,
                capsize=2,
                label="binned mean ± 95% CI",
                zorder=3,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=7)
    return fig


# ---------------------------------------------------------------------- the kinds' figures

# How each metric's error bars are computed (see actadd.lab.stats), for figure titles.
BARS = {
    "topic_any": "bars: Wilson 95% CI",
    "sentiment": "bars: 95% CI",
    "target_logprob_delta": "bars: range over the prompts",
    "kl_neutral": "bars: range over the neutral texts",
}


def cell_label(layer: int, coeff: float) -> str:
    """A (layer, coefficient) cell as an axis label: ``"L2, c=4"``."""
    return f"L{int(layer)}, c={coeff:g}"


def family_colors(n: int) -> np.ndarray:
    """Dark/light colour pairs (tab20), so a working pair and its variant share a hue."""
    return plt.cm.tab20(np.arange(n) % 20)


def _pairs(pairs, present: pd.Series) -> list[str]:
    return list(pairs) if pairs is not None else list(dict.fromkeys(present))


def _main_align(sub: pd.DataFrame) -> str:
    return "front" if "front" in set(sub["align"]) else sub["align"].iloc[0]


def word_count_figures(
    props: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path, pairs=None
) -> list[Path]:
    """``word_count_pair{i}``: per pair, the topic-word fraction of completions against
    layer (:func:`proportion_by_layer`) and, when the table has it, the next-token change in
    target log-probability (:func:`mean_by`). ``props`` is
    :func:`actadd.lab.stats.proportion_summary` of ``topic_any``, ``summary`` is
    :func:`actadd.sweeps.summarize`; ``pairs`` fixes the order (default: as they appear)."""
    steered = props[props.layer >= 0]
    s = summary
    paths: list[Path] = []
    for i, pair in enumerate(_pairs(pairs, steered.pair)):
        sub = steered[steered.pair == pair]
        align = _main_align(sub)
        has_nt = bool(((s.metric == "target_logprob_delta") & (s.pair == pair)).any())
        with plt.rc_context(PAPER_RC):
            fig, axes = panels(
                1,
                2 if has_nt else 1,
                (10.0 if has_nt else 5.5, 3.4),
            )
        proportion_by_layer(
            props,
            pair=pair,
            align=align,
            ax=axes[0, 0],
            title=f"{pair} ({align}): sampled completions",
            ylabel="Completions with a wedding word [fraction]",
        )
        if has_nt:
            mean_by(
                s,
                "target_logprob_delta",
                pair=pair,
                align=align,
                ax=axes[0, 1],
                title=f"{pair} ({align}): next token after the prompt",
            )
        paths += save_figure(fig, Path(out_dir) / f"word_count_pair{i}")
    return paths


def sentiment_figure(summary: pd.DataFrame, out_dir: str | Path, pairs=None) -> list[Path]:
    """``sentiment``: per pair (one row of panels), mean VADER sentiment against layer (one
    line per coefficient) and against coefficient (one line per layer), with :func:`mean_by`'s
    intervals. ``summary`` is :func:`actadd.sweeps.summarize`."""
    s = summary[summary.metric == "sentiment"]
    pairs = _pairs(pairs, s[s.layer >= 0].pair)
    with plt.rc_context(PAPER_RC):
        fig, axes = panels(
            len(pairs),
            2,
            (10.0, 3.3 * len(pairs)),
        )
    for row, pair in enumerate(pairs):
        sub = s[s.pair == pair]
        align = _main_align(sub)
        mean_by(
            s,
            "sentiment",
            x="layer",
            lines="coeff",
            pair=pair,
            align=align,
            ax=axes[row, 0],
            title=f"{pair}: by layer",
        )
        positive = (sub.coeff > 0).all()
        mean_by(
            s,
            "sentiment",
            x="coeff",
            lines="layer",
            pair=pair,
            align=align,
            ax=axes[row, 1],
            title=f"{pair}: by coefficient",
            log_x=bool(positive),
        )
    return save_figure(fig, Path(out_dir) / "sentiment")


FAILURE_YLABELS = {
    "topic_any": "Anger-word completions [fraction]",
    "target_logprob_delta": "Δ log p(anger words) [nats]",
    "sentiment": "VADER sentiment [−1, 1]",
    "kl_neutral": "KL on neutral text [nats/token]",
}
FAILURE_TITLES = {
    "topic_any": "Completions with an anger word",
    "target_logprob_delta": "Next token: log-probability of the anger words vs unsteered",
    "sentiment": "Sentiment of completions",
    "kl_neutral": "Disruption: KL(steered ‖ unsteered) on neutral text",
}


def _baseline_of(t: pd.DataFrame, zero: bool) -> tuple[float, float, float] | None:
    """(mean, lo, hi) of the unsteered row of ``t``; ``(0, 0, 0)`` when ``zero`` and none."""
    base = t[t.layer < 0]
    if len(base):
        b = base.iloc[0]
        return (float(b["mean"]), float(b["lo"]), float(b["hi"]))
    return (0.0, 0.0, 0.0) if zero else None


def failures_figure(table: pd.DataFrame, out_dir: str | Path, pairs=None) -> list[Path]:
    """``failures``: one panel per metric (topic-word fraction, next-token target change,
    sentiment, KL on neutral text), one bar per pair in every (layer, coefficient) cell,
    the unsteered value as a band. ``table`` has one row per (pair, cell, metric) with
    ``mean, lo, hi`` (the failures kind's summary); pairs are coloured dark/light by family."""
    steered = table[table.layer >= 0]
    pairs = _pairs(pairs, steered.pair)
    cells = steered[["layer", "coeff"]].drop_duplicates().sort_values(["layer", "coeff"])
    order = [cell_label(r.layer, r.coeff) for r in cells.itertuples()]
    metrics = [m for m in FAILURE_TITLES if (table.metric == m).any()]
    with plt.rc_context(PAPER_RC):
        fig, axes = panels(
            len(metrics),
            1,
            (8.0, 2.8 * len(metrics)),
        )
    for i, (ax, metric) in enumerate(zip(axes[:, 0], metrics)):
        t = table[table.metric == metric]
        baseline = _baseline_of(t, metric == "target_logprob_delta")
        t = t[t.layer >= 0].assign(
            cell=lambda d: [cell_label(r.layer, r.coeff) for r in d.itertuples()]
        )
        cell_bars(
            t,
            groups="cell",
            bars="pair",
            value="mean",
            ax=ax,
            baseline=baseline,
            ylabel=FAILURE_YLABELS.get(metric, label(metric)),
            order=order,
            bar_order=pairs,
            colors=family_colors(len(pairs)),
            title=f"{FAILURE_TITLES[metric]} ({BARS[metric]})",
        )
        ax.set_xlabel("Injection layer L and coefficient c")
        if i > 0:
            ax.get_legend().remove()
    return save_figure(fig, Path(out_dir) / "failures")


ALIGNMENT_YLABELS = {
    "topic_any": "Topic-word completions [fraction]",
    "target_logprob_delta": "Δ log p(topic tokens) [nats]",
    "kl_neutral": "KL on neutral text [nats/token]",
}
ALIGNMENT_TITLES = {
    "topic_any": "sampled completions with a topic word",
    "target_logprob_delta": "next-token log-probability of the topic words vs unsteered",
    "kl_neutral": "disruption, KL(steered ‖ unsteered) on neutral text",
}


def alignment_figures(table: pd.DataFrame, out_dir: str | Path, pairs=None) -> list[Path]:
    """``alignment_pair{i}``: per pair, one panel per metric (topic-word fraction,
    next-token target change, KL on neutral text) with one bar per (layer, coefficient) cell
    in every alignment, and the unsteered value as a band. ``table`` has one row per
    (alignment, cell, metric) with ``mean, lo, hi`` (the alignment kind's summary)."""
    steered = table[table.layer >= 0]
    aligns = sorted(steered["align"].unique(), key=align_sort_key)
    cells = steered[["layer", "coeff"]].drop_duplicates().sort_values(["layer", "coeff"])
    cell_order = [cell_label(r.layer, r.coeff) for r in cells.itertuples()]
    metrics = [m for m in ALIGNMENT_TITLES if (table.metric == m).any()]
    paths: list[Path] = []
    for i, pair in enumerate(_pairs(pairs, steered.pair)):
        with plt.rc_context(PAPER_RC):
            fig, axes = panels(
                len(metrics),
                1,
                (7.5, 2.7 * len(metrics)),
            )
        for ax, metric in zip(axes[:, 0], metrics):
            t = table[(table.metric == metric) & (table.pair.isin([pair, *table.pair]))]
            zero = metric.endswith("_delta") or metric.startswith("kl")
            baseline = _baseline_of(t, zero)
            t = t[(t.layer >= 0) & (t.pair == pair)]
            t = t.assign(cell=[cell_label(r.layer, r.coeff) for r in t.itertuples()])
            cell_bars(
                t,
                groups="align",
                bars="cell",
                value="mean",
                ax=ax,
                baseline=baseline,
                ylabel=ALIGNMENT_YLABELS[metric],
                order=aligns,
                bar_order=cell_order,
                title=f"{pair}: {ALIGNMENT_TITLES[metric]} ({BARS[metric]})",
            )
            ax.set_xlabel("Injection alignment")
            if metric != metrics[0]:
                ax.get_legend().remove()
        paths += save_figure(fig, Path(out_dir) / f"alignment_pair{i}")
    return paths
