"""The contextual difference's figure (:mod:`actadd.studies.token_injection.contextual`):
ActAdd, the contextual difference (raw and at ActAdd's row norms), p+'s tokens at the same
positions and the residual-distribution null, by layer; and, where the generation arm
sampled it, the topic-word rates of sampled text per pair.

:func:`plot_contextual` reads the ``summary`` table (means over prompts per pair, layer and
condition) and the ``topic_rate`` table; no model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from actadd.lab.stats import t95
from actadd.plots.style import panels, paper_style
from actadd.plots.text import ci_note

__all__ = ["CONTEXT_STYLE", "plot_contextual"]

FIGURE_WIDTH = 7.0  # inches, as the study's other figures

# condition -> line style; one legend entry per meaning
CONTEXT_STYLE = {
    "actadd": dict(marker="o", ms=3, color="C0", label="ActAdd (context-free difference)"),
    "ctxdiff": dict(marker="D", ms=3, color="C3", label="contextual difference"),
    "ctxdiff_normed": dict(
        marker="d", ms=3, color="C4", ls="--", label="contextual difference, ActAdd's row norms"
    ),
    "inject_replace": dict(marker="s", ms=3, color="C1", label="p+ tokens at the same positions"),
    "null_residual": dict(color="0.5", ls=":", label="residual null (ActAdd's row norms)"),
}
ARM_COLORS = {
    "unsteered": "0.6",
    "actadd": "C0",
    "ctxdiff": "C3",
    "ctxdiff_normed": "C4",
    "inject_replace": "C1",
}
# (column, y label, conditions drawn)
PANELS = (
    (
        "js_replace",
        "JS divergence to p+ tokens at\nthe same positions (nats)",
        ("actadd", "ctxdiff", "ctxdiff_normed", "null_residual"),
    ),
    (
        "target_vs_control",
        "Δ log p(target) −\nΔ log p(control) (nats)",
        ("actadd", "ctxdiff", "ctxdiff_normed", "inject_replace", "null_residual"),
    ),
    (
        "replace_corr",
        "similarity to p+ tokens\n(Pearson r of Δ log p)",
        ("actadd", "ctxdiff", "ctxdiff_normed", "null_residual"),
    ),
)


def _over_pairs(summary: pd.DataFrame, condition: str, column: str) -> pd.DataFrame:
    """Per layer: the mean over pairs of the per-pair means, its 95% t half-width over
    pairs, and the number of pairs."""
    sel = summary[summary.condition == condition]
    g = sel.groupby("layer")[column]
    out = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.count()})
    out["half"] = [
        t95(int(n) - 1) * sd / np.sqrt(n) if n > 1 and np.isfinite(sd) else 0.0
        for n, sd in zip(out.n, out.sd)
    ]
    return out


def plot_contextual(summary: pd.DataFrame, topic_rate: pd.DataFrame | None = None):
    """Three panels by layer — JS divergence to p+'s tokens at the same positions (lower is
    closer), target vs control, similarity to the tokens — each the mean over pairs with a
    95% t band over pairs (the unsteered model's JS to the tokens dashed in black); and, when
    ``topic_rate`` holds a ``ctxdiff`` arm, the share of sampled completions with a topic
    word per pair and arm (a 2 × 2 grid). At L0 the contextual difference is ActAdd's vector
    (``resid_pre`` of layer 0 is the embedding, which has no context)."""
    gen = topic_rate is not None and topic_rate.arm.str.startswith("ctxdiff").any()
    n_pairs = summary[summary.condition == "ctxdiff"].pair.nunique()
    with paper_style():
        fig, grid = panels(2, 2, (FIGURE_WIDTH, 5.4))
        axes = grid.ravel()
        for ax, (col, ylabel, conds) in zip(axes, PANELS):
            if col not in summary:
                ax.set_visible(False)
                continue
            for cond in conds:
                d = _over_pairs(summary, cond, col)
                if d.empty or not np.isfinite(d["mean"]).any():
                    continue
                line = ax.plot(d.index, d["mean"], lw=1, **CONTEXT_STYLE[cond])[0]
                ax.fill_between(
                    d.index,
                    d["mean"] - d.half,
                    d["mean"] + d.half,
                    color=line.get_color(),
                    alpha=0.12,
                    lw=0,
                )
            if col == "js_replace" and "js_replace_base" in summary:
                base = _over_pairs(summary, "actadd", "js_replace_base")["mean"]
                ax.plot(base.index, base, color="k", lw=0.8, ls="--", label="unsteered")
            if col != "js_replace":
                ax.axhline(0, color="k", lw=0.5)
            ax.set_xlabel("layer L (where the vector is added)")
            ax.set_ylabel(ylabel, fontsize=7)
        if gen:
            _topic_panel(axes[-1], topic_rate)
        else:
            axes[-1].set_visible(False)
        seen: dict = {}
        for ax in axes:
            for h, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, h)
        fig.legend(
            seen.values(),
            seen.keys(),
            loc="outside lower center",
            ncol=3,
            frameon=False,
            title=f"mean over {n_pairs} pairs; bands: {ci_note('Student t over pairs')}",
            title_fontsize=6.5,
        )
    return fig


def _topic_panel(ax, topic_rate: pd.DataFrame) -> None:
    """Grouped bars: per pair, the share of completions with a topic word under each arm."""
    rates = topic_rate.groupby(["pair", "arm"]).topic_any.agg(["mean", "count"]).reset_index()
    pairs = list(dict.fromkeys(topic_rate.pair))
    arms = [a for a in ARM_COLORS if a in set(rates.arm)]
    width = 0.8 / len(arms)
    for j, arm in enumerate(arms):
        r = rates[rates.arm == arm].set_index("pair").reindex(pairs)
        x = np.arange(len(pairs)) + (j - (len(arms) - 1) / 2) * width
        ax.bar(x, r["mean"], width, color=ARM_COLORS[arm], label=f"{arm} (sampled)")
    layer = int(topic_rate.layer.iloc[0])
    n = int(rates["count"].max())
    ax.set_xticks(range(len(pairs)), pairs, rotation=45, ha="right", fontsize=6)
    ax.set_ylabel(f"completions with a topic word\n(share of {n}, L{layer})", fontsize=7)
    ax.set_ylim(0, 1)
