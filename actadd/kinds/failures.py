"""Experiment kind ``failures``: the paper's known failure cases against working pairs.

A sweep whose pairs come in families, a working pair followed by its failing variant
(e.g. ``"Anger" − "Calm"`` then lowercase ``" anger" − " calm"``; ``"Love" − "Hate"`` then
``"Love" − ""``), each evaluated at the same layers and coefficients. The figure has one
panel per metric — topic-word fraction of completions (Wilson 95% CIs), the next-token
change in topic-word log-probability, VADER sentiment (95% CIs), and KL on neutral text
(disruption) — with one bar per pair in every
(layer, coefficient) cell and the unsteered value as a band. Pairs are coloured by family:
the working pair dark, its variant light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from actadd.experiments import register
from actadd.kinds._paper import (
    BARS,
    cell_label,
    mean_diffs,
    pair_order,
    range_table,
    read_results,
    require_generation,
    run_sweep_kind,
    write_summary,
)
from actadd.metrics import proportion_summary
from actadd.plots import PAPER_RC, cell_bars, label, save_figure

NAME = "failures"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (pair, cell, metric): value, 95% interval, difference from unsteered."""
    from actadd.sweeps import summarize

    s = summarize(df)
    frames = []
    if (df.metric == "topic_any").any():
        p = proportion_summary(df, "topic_any").rename(columns={"frac": "mean", "n": "count"})
        frames.append(p.assign(metric="topic_any"))
    for metric in ("sentiment", "kl_neutral", "target_logprob_delta"):
        if (s.metric == metric).any():
            frames.append(
                mean_diffs(s, metric) if metric == "sentiment" else range_table(df, metric)
            )
    out = pd.concat(frames, ignore_index=True)
    cols = ["pair", "pad", "layer", "coeff", "align", "metric", "mean", "lo", "hi", "count"]
    extra = [c for c in ("diff", "diff_lo", "diff_hi", "successes") if c in out.columns]
    return out[cols + extra]


def _family_colors(n: int) -> np.ndarray:
    """Dark/light colour pairs (tab20), so a working pair and its variant share a hue."""
    return plt.cm.tab20(np.arange(n) % 20)


@register(NAME, "known failure cases (lowercase anger, Love alone) against working pairs")
class FailuresKind:
    @staticmethod
    def run(config: dict[str, Any], out: Path, resume: bool) -> None:
        require_generation(config, NAME, "sentiment")
        df = run_sweep_kind(config, out, resume, NAME)
        FailuresKind.figures(out, df)

    @staticmethod
    def figures(out: Path, df: pd.DataFrame | None = None) -> list[Path]:
        df = df if df is not None else read_results(out)
        table = summary(df)
        write_summary(out, table)  # derived: kept in step with the figures
        steered = table[table.layer >= 0]
        pairs = pair_order(out, steered.pair)
        cells = steered[["layer", "coeff"]].drop_duplicates().sort_values(["layer", "coeff"])
        order = [cell_label(r.layer, r.coeff) for r in cells.itertuples()]
        metrics = [
            m
            for m in ("topic_any", "target_logprob_delta", "sentiment", "kl_neutral")
            if (table.metric == m).any()
        ]
        ylabels = {
            "topic_any": "Anger-word completions [fraction]",
            "target_logprob_delta": "Δ log p(anger words) [nats]",
            "sentiment": "VADER sentiment [−1, 1]",
            "kl_neutral": "KL on neutral text [nats/token]",
        }
        titles = {
            "topic_any": "Completions with an anger word",
            "target_logprob_delta": "Next token: log-probability of the anger words vs unsteered",
            "sentiment": "Sentiment of completions",
            "kl_neutral": "Disruption: KL(steered ‖ unsteered) on neutral text",
        }
        with plt.rc_context(PAPER_RC):
            fig, axes = plt.subplots(
                len(metrics),
                1,
                figsize=(8.0, 2.8 * len(metrics)),
                layout="constrained",
                squeeze=False,
            )
        for i, (ax, metric) in enumerate(zip(axes[:, 0], metrics)):
            t = table[table.metric == metric]
            base = t[t.layer < 0]
            baseline = None
            if len(base):
                b = base.iloc[0]
                baseline = (float(b["mean"]), float(b["lo"]), float(b["hi"]))
            elif metric == "target_logprob_delta":
                baseline = (0.0, 0.0, 0.0)
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
                ylabel=ylabels.get(metric, label(metric)),
                order=order,
                bar_order=pairs,
                colors=_family_colors(len(pairs)),
                title=f"{titles[metric]} ({BARS[metric]})",
            )
            ax.set_xlabel("Injection layer L and coefficient c")
            if i > 0:
                ax.get_legend().remove()
        return save_figure(fig, Path(out) / "figures" / "failures")
