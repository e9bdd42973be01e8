"""Figure of the ``capability`` kind: factual cloze accuracy under off-topic steering."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.plots.style import PAPER_RC, baseline_band, interval_line, panels, save_figure

__all__ = ["capability_figure"]


def capability_figure(summary: pd.DataFrame, topk: list[int], out_dir: str | Path) -> list[Path]:
    """``capability``: per pair (one row of panels), top-k accuracy for each ``k`` in
    ``topk`` (Wilson 95% intervals, the unsteered accuracy as a band) and the next-token
    KL (mean ± 1.96 s.e.) against the coefficient, one line per layer.

    ``summary`` is the capability kind's per-cell table: ``pair, layer, coeff, n``,
    ``top{k}, top{k}_lo, top{k}_hi`` and ``kl, kl_sem``; its first unsteered row
    (``layer < 0``) is the baseline."""
    s = summary
    base = s[s.layer < 0].iloc[0]
    steered = s[s.layer >= 0]
    pairs = list(dict.fromkeys(steered.pair))
    ncol = len(topk) + 1
    with plt.rc_context(PAPER_RC):
        fig, axes = panels(
            len(pairs),
            ncol,
            (3.4 * ncol, 2.9 * len(pairs)),
        )
        for r, pair in enumerate(pairs):
            d = steered[steered.pair == pair]
            layers = sorted(d.layer.unique())
            colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(layers)))
            for col in range(ncol):
                ax = axes[r, col]
                if col < len(topk):
                    k = topk[col]
                    baseline_band(
                        ax,
                        base[f"top{k}"],
                        base[f"top{k}_lo"],
                        base[f"top{k}_hi"],
                        f"unsteered (n = {int(base.n)})",
                    )
                    ax.set_ylabel(f"Top-{k} accuracy [fraction of items]")
                    ax.set_ylim(-0.02, 1.02)
                else:
                    ax.axhline(0, color="0.25", ls="--", lw=1, label="unsteered")
                    ax.set_ylabel("KL(steered ‖ unsteered), next token [nats]")
                for layer, color in zip(layers, colors):
                    e = d[d.layer == layer].sort_values("coeff")
                    if col < len(topk):
                        y, lo, hi = e[f"top{k}"], e[f"top{k}_lo"], e[f"top{k}_hi"]
                    else:
                        y = e["kl"]
                        lo, hi = y - 1.96 * e["kl_sem"], y + 1.96 * e["kl_sem"]
                    interval_line(ax, e.coeff, y, lo, hi, color=color, label=f"L = {layer}")
                if (d.coeff > 0).all():
                    ax.set_xscale("log", base=2)
                    ticks = sorted(d.coeff.unique())
                    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
                ax.set_xlabel("Coefficient c")
                what = f"top-{topk[col]} accuracy" if col < len(topk) else "disruption"
                ax.set_title(f"{pair}: {what} (bars: 95% CI)")
                if col == 0:
                    ax.legend(frameon=False, fontsize=6.5, ncol=2, loc="best")
    return save_figure(fig, Path(out_dir) / "capability")
