"""The ``behaviours`` kind's figures, drawn from the saved tables alone:

- ``multiplier``: matching-letter probability against the multiplier at the chosen layer,
  one panel per behaviour, methods as lines, the random directions' 5–95% band shaded;
- ``layers``: ``p(+1) − p(−1)`` against the layer (coarse scan), same layout;
- ``steerability``: per-question steerability (slope of the logit difference on the
  multiplier) at the chosen layer, one panel per behaviour, a box per method;
- ``verdicts``: the behaviour × method table of ``p(+1) − p(−1)`` and claim verdicts.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.plots.style import panels, paper_style, save_figure
from actadd.studies.behaviours.run import RANDOM

__all__ = ["behaviour_figures"]


def _grid(n: int):
    cols = min(4, n)
    return panels(math.ceil(n / cols), cols, (3.2 * cols, 2.6 * math.ceil(n / cols)), sharey=True)


def _lines(ax, d: pd.DataFrame, x: str, y: str) -> None:
    for m, g in d[d.method != RANDOM].groupby("method"):
        g = g.sort_values(x)
        ax.plot(g[x], g[y], marker="o", ms=3, lw=1.2, label=m)
    r = d[d.method == RANDOM].sort_values(x)
    if len(r):
        ax.fill_between(r[x], r["lo"], r["hi"], color="0.8", label="random (5–95%)", zorder=0)


def behaviour_figures(tables: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Every figure of the module docstring into ``out``; returns the files."""
    res, data = tables["results"], tables["data"]
    behaviours = list(data.behaviour)
    chosen = dict(zip(data.behaviour, data.chosen_layer))
    paths: list[Path] = []
    with paper_style():
        fig, axes = _grid(len(behaviours))
        for ax, b in zip(axes.flat, behaviours):
            d = res[(res.behaviour == b) & (res.scan == "fine") & (res.layer == chosen[b])]
            _lines(ax, d.assign(lo=d.p_lo, hi=d.p_hi), "multiplier", "p_match")
            ax.axhline(0.5, color="0.5", lw=0.6, ls=":")
            ax.set_title(f"{b} (L{chosen[b]})", fontsize=8)
            ax.set_xlabel("multiplier")
        axes.flat[0].set_ylabel("P(matching letter)")
        axes.flat[0].legend(fontsize=6)
        for ax in list(axes.flat)[len(behaviours) :]:
            ax.set_visible(False)
        paths += save_figure(fig, out / "multiplier")
        plt.close(fig)

        fig, axes = _grid(len(behaviours))
        coarse = res[res.scan == "coarse"]
        for ax, b in zip(axes.flat, behaviours):
            d = coarse[coarse.behaviour == b]
            w = d.pivot_table(
                index=["layer", "method"], columns="multiplier", values=["p_match", "p_lo", "p_hi"]
            ).reset_index()
            eff = pd.DataFrame(
                {
                    "layer": w.layer,
                    "method": w.method,
                    "e": w[("p_match", 1.0)] - w[("p_match", -1.0)],
                    "lo": w[("p_lo", 1.0)] - w[("p_hi", -1.0)],
                    "hi": w[("p_hi", 1.0)] - w[("p_lo", -1.0)],
                }
            )
            _lines(ax, eff, "layer", "e")
            ax.axhline(0, color="0.5", lw=0.6)
            ax.axvline(chosen[b], color="0.6", lw=0.6, ls="--")
            ax.set_title(b, fontsize=8)
            ax.set_xlabel("layer")
        axes.flat[0].set_ylabel("p(+1) − p(−1)")
        axes.flat[0].legend(fontsize=6)
        for ax in list(axes.flat)[len(behaviours) :]:
            ax.set_visible(False)
        paths += save_figure(fig, out / "layers")
        plt.close(fig)

        steer = tables["steerability"]
        fig, axes = _grid(len(behaviours))
        for ax, b in zip(axes.flat, behaviours):
            d = steer[(steer.behaviour == b) & (steer.layer == chosen[b])]
            names = sorted(d.method.unique(), key=lambda m: (m == RANDOM, m))
            ax.boxplot(
                [d[d.method == m].steerability for m in names], tick_labels=names, showfliers=False
            )
            ax.axhline(0, color="0.5", lw=0.6)
            ax.tick_params(axis="x", labelrotation=60, labelsize=6)
            ax.set_title(f"{b} (L{chosen[b]})", fontsize=8)
        axes.flat[0].set_ylabel("steerability (logit diff / multiplier)")
        for ax in list(axes.flat)[len(behaviours) :]:
            ax.set_visible(False)
        paths += save_figure(fig, out / "steerability")
        plt.close(fig)

        if "verdicts" in tables:
            v = tables["verdicts"]
            grid = v.pivot(index="behaviour", columns="method", values="effect_pm1")
            text = v.pivot(index="behaviour", columns="method", values="verdict")
            fig, axes = panels(1, 1, (2.4 + 1.3 * grid.shape[1], 1.4 + 0.45 * grid.shape[0]))
            ax = axes[0, 0]
            lim = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
            ax.imshow(grid.to_numpy(), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
            ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right", fontsize=7)
            ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
            for i in range(grid.shape[0]):
                for j in range(grid.shape[1]):
                    t = (
                        str(text.iloc[i, j])
                        .replace("NOT SUPPORTED", "no")
                        .replace("SUPPORTED", "yes")
                    )
                    ax.text(
                        j, i, f"{grid.iloc[i, j]:+.3f}\n{t}", ha="center", va="center", fontsize=5
                    )
            ax.set_title("p(+1) − p(−1) at the chosen layer; claim verdicts", fontsize=8)
            paths += save_figure(fig, out / "verdicts")
            plt.close(fig)
    return paths
