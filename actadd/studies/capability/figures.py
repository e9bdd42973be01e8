"""Figure of the ``capability`` kind: factual cloze accuracy under off-topic steering."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.lab.stats import t95
from actadd.plots.style import (
    baseline_band,
    dodge,
    interval_line,
    paper_style,
    save_figure,
)
from actadd.plots.text import ci_note, pair_title

__all__ = ["capability_figure"]


def capability_figure(summary: pd.DataFrame, topk: list[int], out_dir: str | Path) -> list[Path]:
    """``capability``: per pair (one row of panels, titled with the pair), top-k accuracy
    for each ``k`` in ``topk`` (Wilson 95% intervals, the unsteered accuracy as a band) and
    the next-token KL (mean with a Student-t 95% interval over the items) against the
    coefficient, one line per layer, dodged along the coefficient axis; one legend below.

    ``summary`` is the capability kind's per-cell table: ``pair, layer, coeff, n``,
    ``top{k}, top{k}_lo, top{k}_hi`` and ``kl, kl_sem``; its first unsteered row
    (``layer < 0``) is the baseline."""
    s = summary
    base = s[s.layer < 0].iloc[0]
    steered = s[s.layer >= 0]
    pairs = list(dict.fromkeys(steered.pair))
    ncol = len(topk) + 1
    with paper_style():
        fig = plt.figure(figsize=(3.3 * ncol, 2.9 * len(pairs) + 0.6), layout="constrained")
        rows = np.atleast_1d(fig.subfigures(len(pairs), 1))
        for sub, pair in zip(rows, pairs):
            axes = sub.subplots(1, ncol, squeeze=False)[0]
            sub.suptitle(pair_title(pair), fontsize=9, fontweight="bold")
            d = steered[steered.pair == pair]
            layers = sorted(d.layer.unique())
            colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(layers)))
            log_x = bool((d.coeff > 0).all())
            for col, ax in enumerate(axes):
                if col < len(topk):
                    k = topk[col]
                    baseline_band(
                        ax,
                        base[f"top{k}"],
                        base[f"top{k}_lo"],
                        base[f"top{k}_hi"],
                        f"unsteered (n = {int(base.n)} items)",
                    )
                    ax.set_ylabel(f"Top-{k} accuracy [fraction]")
                    ax.set_ylim(-0.02, 1.02)
                    ax.set_title(f"top-{k} accuracy ({ci_note('Wilson')})")
                else:
                    ax.axhline(0, color="0.25", ls="--", lw=1)
                    ax.set_ylabel("KL(steered ‖ unsteered),\nnext token [nats]")
                    ax.set_title(f"disruption ({ci_note('Student t')})")
                for i, (layer, color) in enumerate(zip(layers, colors)):
                    e = d[d.layer == layer].sort_values("coeff")
                    if col < len(topk):
                        y, lo, hi = e[f"top{k}"], e[f"top{k}_lo"], e[f"top{k}_hi"]
                    else:
                        y = e["kl"]
                        half = e["kl_sem"] * [t95(n - 1) if n > 1 else 0.0 for n in e["n"]]
                        lo, hi = y - half, y + half
                    # spread the layers along c so that their bars stay apart
                    shift = dodge(0.0, i, len(layers), 0.06 if log_x else 0.08)
                    xs = e.coeff * 2**shift if log_x else e.coeff + shift * e.coeff.abs().max()
                    interval_line(ax, xs, y, lo, hi, color=color, label=f"L = {layer}")
                if log_x:
                    ax.set_xscale("log", base=2)
                    ticks = sorted(d.coeff.unique())
                    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
                    ax.minorticks_off()
                ax.set_xlabel("Coefficient c")
        handles, labels = rows[0].axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return save_figure(fig, Path(out_dir) / "capability")
