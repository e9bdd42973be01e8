"""Figures of the ``perplexity`` kind: a topic vector's perplexity ratio by topic relevance."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.plots.charts import ratio_vs_relevance
from actadd.plots.style import dodge, interval_line, panels, paper_style, save_figure
from actadd.plots.text import WordLists, ci_note

__all__ = ["perplexity_by_layer_figure", "perplexity_ratio_figure"]


def perplexity_ratio_figure(
    table: pd.DataFrame, vector: str, out_dir: str | Path, words: WordLists | None = None
) -> list[Path]:
    """``perplexity_ratio``: one panel per (layer, coefficient) setting, each text's
    perplexity ratio (log axis) against its topic density
    (:func:`actadd.plots.charts.ratio_vs_relevance`).

    ``table`` has one row per text × setting (``layer, coeff, group, topic_density,
    ratio``); ``vector`` names the steering vector in the panel titles; ``words`` names the
    topic word list of the density axis."""
    settings = table[["layer", "coeff"]].drop_duplicates().sort_values(["coeff", "layer"])
    n = len(settings)
    ncol = min(n, 4)
    nrow = int(np.ceil(n / ncol))
    with paper_style():
        fig, axes = panels(
            nrow,
            ncol,
            (3.3 * ncol, 2.9 * nrow),
            sharey=True,
        )
    for ax, (layer, coeff) in zip(axes.flat, settings.itertuples(index=False)):
        d = table[(table.layer == layer) & (table.coeff == coeff)]
        topic = (words or WordLists()).describe("topic")
        ratio_vs_relevance(
            d,
            ax=ax,
            title=f"{vector}, c = {coeff:g}, layer {layer}",
            xlabel=f"Topic words per 100 words\n({topic})",
        )
        if ax is not axes[0, 0]:
            ax.get_legend().remove()
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return save_figure(fig, Path(out_dir) / "perplexity_ratio")


def perplexity_by_layer_figure(
    summary: pd.DataFrame, vector: str, out_dir: str | Path, words: WordLists | None = None
) -> list[Path]:
    """``perplexity_by_layer``: one panel per coefficient, the geometric-mean perplexity
    ratio of each text group against layer with its 95% interval.

    ``summary`` has one row per (layer, coeff, group) with ``ratio_gmean, ratio_lo,
    ratio_hi, mean_density`` (the perplexity kind's summary; group ``"all"`` is skipped).
    Rows of ``arm == "prompt"`` (prepending the positive text) are drawn as dotted lines
    in each group's colour, with one legend entry for them all. ``words`` names the topic
    word list behind each group's density."""
    prompt = summary[summary.arm == "prompt"] if "arm" in summary else summary.iloc[:0]
    s = summary[summary.arm == "actadd"] if "arm" in summary else summary
    groups = [g for g in dict.fromkeys(s.group) if g != "all"]
    coeffs = sorted(s.coeff.unique())
    with paper_style():
        fig, axes = panels(
            1,
            len(coeffs),
            (4.2 * len(coeffs), 3.2),
            sharey=True,
        )
        for ax, coeff in zip(axes[0], coeffs):
            ax.axhline(1.0, color="0.25", ls="--", lw=1, label="unsteered (ratio 1)")
            colors = plt.cm.Set2(np.arange(len(groups)) % 8)
            for i, (group, color) in enumerate(zip(groups, colors)):
                d = s[(s.coeff == coeff) & (s.group == group)].sort_values("layer")
                dens = d.mean_density.mean()
                interval_line(
                    ax,
                    dodge(d.layer, i, len(groups), 0.25),
                    d.ratio_gmean,
                    d.ratio_lo,
                    d.ratio_hi,
                    color=color,
                    ms=3.5,
                    lw=1.2,
                    elinewidth=None,
                    capsize=2,
                    label=f"{group} ({dens:.1f} topic words/100)",
                )
                p = prompt[prompt.group == group]
                if len(p):
                    ax.axhline(float(p.ratio_gmean.iloc[0]), color=color, ls=":", lw=1.2)
            if len(prompt):
                ax.plot([], [], color="0.4", ls=":", lw=1.2, label="text prepended (prompting)")
            ax.set_xlabel("Injection layer L (resid_pre)")
            ax.set_ylabel("Perplexity ratio, steered / unsteered\n(geometric mean)")
            ax.set_title(f"{vector}, c = {coeff:g}, by text group")
            ax.legend(
                frameon=False,
                fontsize=6.5,
                title=f"{ci_note('normal on the log ratio')}\n"
                f"density: {(words or WordLists()).describe('topic')}",
                title_fontsize=6.5,
            )
    return save_figure(fig, Path(out_dir) / "perplexity_by_layer")
