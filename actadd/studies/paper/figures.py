"""Figures of the paper-reproduction experiments (experiments/README.md).

The figures of the sweep-based kinds (:func:`word_count_figures`, :func:`sentiment_figure`,
:func:`failures_figure`, :func:`alignment_figures`) take the kind's tables and the run's
``figures/`` directory and return the paths they wrote. They are built from the generic
charts of :mod:`actadd.plots.charts` (:func:`proportion_by_layer`, :func:`mean_by`,
:func:`cell_bars`, :func:`ratio_vs_relevance`), which are re-exported here, where they used to
live.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.plots.charts import cell_bars, mean_by, proportion_by_layer, ratio_vs_relevance
from actadd.plots.style import label, panels, paper_style, save_figure
from actadd.plots.sweep import align_sort_key
from actadd.plots.text import WordLists, align_words, ci_note, pair_title

__all__ = [
    "ALIGNMENT_TITLES",
    "ALIGNMENT_YLABELS",
    "BARS",
    "FAILURE_TITLES",
    "FAILURE_YLABELS",
    "alignment_figures",
    "cell_bars",
    "cell_label",
    "failures_figure",
    "family_colors",
    "mean_by",
    "proportion_by_layer",
    "ratio_vs_relevance",
    "sentiment_figure",
    "word_count_figures",
]


# What each metric's error bars are (see actadd.lab.stats and cell_summary), for legends:
# 95% intervals for the sampled metrics; the deterministic next-token metrics of two or
# three texts show their range instead (no interval is claimed).
BARS = {
    "topic_any": ci_note("Wilson"),
    "sentiment": ci_note("Student t"),
    "target_logprob_delta": "bars: min–max over the prompts",
    "kl_neutral": "bars: min–max over the neutral texts",
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
    props: pd.DataFrame,
    summary: pd.DataFrame,
    out_dir: str | Path,
    pairs=None,
    words: WordLists | None = None,
) -> list[Path]:
    """``word_count_pair{i}``: per pair, the topic-word fraction of completions against
    layer (:func:`proportion_by_layer`) and, when the table has it, the next-token change in
    target log-probability (:func:`mean_by`). ``props`` is
    :func:`actadd.lab.stats.proportion_summary` of ``topic_any``, ``summary`` is
    :func:`actadd.sweeps.summarize`; ``pairs`` fixes the order (default: as they appear);
    ``words`` names the topic and target word lists on the axes."""
    steered = props[props.layer >= 0]
    s = summary
    paths: list[Path] = []
    for i, pair in enumerate(_pairs(pairs, steered.pair)):
        sub = steered[steered.pair == pair]
        align = _main_align(sub)
        has_nt = bool(((s.metric == "target_logprob_delta") & (s.pair == pair)).any())
        with paper_style():
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
            title=f"{pair_title(pair)}, {align_words(align)}:\nsampled completions",
            ylabel="Completions with a topic word [fraction]",
            words=words,
        )
        if has_nt:
            mean_by(
                s,
                "target_logprob_delta",
                pair=pair,
                align=align,
                ax=axes[0, 1],
                title=f"{pair_title(pair)}, {align_words(align)}:\nnext token after the prompt",
                words=words,
            )
        paths += save_figure(fig, Path(out_dir) / f"word_count_pair{i}")
    return paths


def sentiment_figure(
    summary: pd.DataFrame, out_dir: str | Path, pairs=None, words: WordLists | None = None
) -> list[Path]:
    """``sentiment``: per pair (one row of panels), mean VADER sentiment against layer (one
    line per coefficient) and against coefficient (one line per layer), with :func:`mean_by`'s
    intervals. ``summary`` is :func:`actadd.sweeps.summarize`; sentiment uses no word list
    (``words`` is accepted for a uniform signature)."""
    s = summary[summary.metric == "sentiment"]
    pairs = _pairs(pairs, s[s.layer >= 0].pair)
    with paper_style():
        fig, axes = panels(
            len(pairs),
            2,
            (10.0, 3.3 * len(pairs)),
        )
    for row, pair in enumerate(pairs):
        sub = s[s.pair == pair]
        align = _main_align(sub)
        positive = bool((sub.coeff > 0).all())
        # (x, one line per, panel title, log x axis): coefficients on a log axis when all > 0
        panels_of_row = (
            ("layer", "coeff", "by layer", False),
            ("coeff", "layer", "by coefficient", positive),
        )
        for ax, (x, lines, by, log_x) in zip(axes[row], panels_of_row):
            mean_by(
                s,
                "sentiment",
                x=x,
                lines=lines,
                pair=pair,
                align=align,
                ax=ax,
                title=f"{pair_title(pair)}, {align_words(align)}: {by}",
                log_x=log_x,
            )
    return save_figure(fig, Path(out_dir) / "sentiment")


FAILURE_YLABELS = {
    "topic_any": "Topic-word completions [fraction]",
    "target_logprob_delta": "Δ log p(target words) [nats]",
    "sentiment": "VADER sentiment [−1, 1]",
    "kl_neutral": "KL on neutral text [nats/token]",
}
FAILURE_TITLES = {
    "topic_any": "Completions with a topic word",
    "target_logprob_delta": "Next token: log-probability of the target words vs unsteered",
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


def _ylabel(texts: dict[str, str], metric: str, words: WordLists | None) -> str:
    """The y label of ``metric`` from ``texts``, with its word list on a second line."""
    text = texts.get(metric, label(metric))
    if words is None or metric not in ("topic_any", "target_logprob_delta"):
        return text
    return f"{text}\n({words.describe('topic' if metric == 'topic_any' else 'target')})"


def failures_figure(
    table: pd.DataFrame, out_dir: str | Path, pairs=None, words: WordLists | None = None
) -> list[Path]:
    """``failures``: one panel per metric (topic-word fraction, next-token target change,
    sentiment, KL on neutral text), one bar per pair in every (layer, coefficient) cell,
    the unsteered value as a band. ``table`` has one row per (pair, cell, metric) with
    ``mean, lo, hi`` (the failures kind's summary); pairs are coloured dark/light by family;
    ``words`` names the word lists. Each panel's legend title says what its bars are."""
    steered = table[table.layer >= 0]
    pairs = _pairs(pairs, steered.pair)
    cells = steered[["layer", "coeff"]].drop_duplicates().sort_values(["layer", "coeff"])
    order = [cell_label(r.layer, r.coeff) for r in cells.itertuples()]
    metrics = [m for m in FAILURE_TITLES if (table.metric == m).any()]
    with paper_style():
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
            t.assign(pair=t.pair.map(pair_title)),
            groups="cell",
            bars="pair",
            value="mean",
            ax=ax,
            baseline=baseline,
            ylabel=_ylabel(FAILURE_YLABELS, metric, words),
            order=order,
            bar_order=[pair_title(p) for p in pairs],
            colors=family_colors(len(pairs)),
            title=FAILURE_TITLES[metric],
            interval=BARS[metric],
        )
        ax.set_xlabel("Injection layer L and coefficient c")
        if i > 0:  # the pairs once; every panel keeps what its bars are
            ax.legend([], [], title=BARS[metric], title_fontsize=6.5, frameon=False)
    return save_figure(fig, Path(out_dir) / "failures")


ALIGNMENT_YLABELS = {
    "topic_any": "Topic-word completions [fraction]",
    "target_logprob_delta": "Δ log p(target words) [nats]",
    "kl_neutral": "KL on neutral text [nats/token]",
}
ALIGNMENT_TITLES = {
    "topic_any": "sampled completions with a topic word",
    "target_logprob_delta": "next-token log-probability of the target words vs unsteered",
    "kl_neutral": "disruption, KL(steered ‖ unsteered) on neutral text",
}


def alignment_figures(
    table: pd.DataFrame, out_dir: str | Path, pairs=None, words: WordLists | None = None
) -> list[Path]:
    """``alignment_pair{i}``: per pair, one panel per metric (topic-word fraction,
    next-token target change, KL on neutral text) with one bar per (layer, coefficient) cell
    in every alignment, and the unsteered value as a band. ``table`` has one row per
    (alignment, cell, metric) with ``mean, lo, hi`` (the alignment kind's summary);
    ``words`` names the word lists."""
    steered = table[table.layer >= 0]
    aligns = sorted(steered["align"].unique(), key=align_sort_key)
    cells = steered[["layer", "coeff"]].drop_duplicates().sort_values(["layer", "coeff"])
    cell_order = [cell_label(r.layer, r.coeff) for r in cells.itertuples()]
    metrics = [m for m in ALIGNMENT_TITLES if (table.metric == m).any()]
    paths: list[Path] = []
    for i, pair in enumerate(_pairs(pairs, steered.pair)):
        with paper_style():
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
                ylabel=_ylabel(ALIGNMENT_YLABELS, metric, words),
                order=aligns,
                bar_order=cell_order,
                title=f"{pair_title(pair)}: {ALIGNMENT_TITLES[metric]}",
                interval=BARS[metric],
            )
            ax.set_xticks(ax.get_xticks(), [align_words(a) for a in aligns])
            ax.set_xlabel("Injection alignment")
            if metric != metrics[0]:  # the cells once; every panel keeps what its bars are
                ax.legend([], [], title=BARS[metric], title_fontsize=6.5, frameon=False)
        paths += save_figure(fig, Path(out_dir) / f"alignment_pair{i}")
    return paths
