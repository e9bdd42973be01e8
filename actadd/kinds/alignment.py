"""Experiment kind ``alignment``: where in the prompt the vector goes.

A sweep of one working pair over injection alignments — ``front`` (the paper), offsets
``offset:s``, ``back`` (the last k prompt positions) and ``all`` (the mean row added at
every position, generated tokens included) — at a few layers and coefficients. The figure
compares the alignments on the topic-word fraction of completions (Wilson 95% CIs), the
next-token change in log-probability of the topic words, and KL on neutral text, one bar
per (layer, coefficient) cell, with the unsteered value as a band where it has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
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
from actadd.plots import PAPER_RC, align_sort_key, cell_bars, save_figure

NAME = "alignment"
METRICS = ("topic_any", "target_logprob_delta", "kl_neutral")
YLABELS = {
    "topic_any": "Topic-word completions [fraction]",
    "target_logprob_delta": "Δ log p(topic tokens) [nats]",
    "kl_neutral": "KL on neutral text [nats/token]",
}
TITLES = {
    "topic_any": "sampled completions with a topic word",
    "target_logprob_delta": "next-token log-probability of the topic words vs unsteered",
    "kl_neutral": "disruption, KL(steered ‖ unsteered) on neutral text",
}


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (alignment, cell, metric): value, 95% interval, difference from unsteered."""
    from actadd.sweeps import summarize

    s = summarize(df)
    frames = []
    if (df.metric == "topic_any").any():
        p = proportion_summary(df, "topic_any").rename(columns={"frac": "mean", "n": "count"})
        frames.append(p.assign(metric="topic_any"))
    for metric in METRICS[1:]:
        if (s.metric == metric).any():
            frames.append(
                mean_diffs(s, metric) if metric == "sentiment" else range_table(df, metric)
            )
    out = pd.concat(frames, ignore_index=True)
    cols = ["pair", "pad", "layer", "coeff", "align", "metric", "mean", "lo", "hi", "count"]
    extra = [c for c in ("diff", "diff_lo", "diff_hi", "successes") if c in out.columns]
    return out[cols + extra]


@register(NAME, "front vs offset vs back vs all-positions injection for one pair")
class AlignmentKind:
    @staticmethod
    def run(config: dict[str, Any], out: Path, resume: bool) -> None:
        require_generation(config, NAME, "topic_any")
        df = run_sweep_kind(config, out, resume, NAME)
        AlignmentKind.figures(out, df)

    @staticmethod
    def figures(out: Path, df: pd.DataFrame | None = None) -> list[Path]:
        df = df if df is not None else read_results(out)
        table = summary(df)
        write_summary(out, table)  # derived: kept in step with the figures
        steered = table[table.layer >= 0]
        aligns = sorted(steered["align"].unique(), key=align_sort_key)
        cells = steered[["layer", "coeff"]].drop_duplicates().sort_values(["layer", "coeff"])
        cell_order = [cell_label(r.layer, r.coeff) for r in cells.itertuples()]
        metrics = [m for m in METRICS if (table.metric == m).any()]
        pairs = pair_order(out, steered.pair)
        paths: list[Path] = []
        for i, pair in enumerate(pairs):
            with plt.rc_context(PAPER_RC):
                fig, axes = plt.subplots(
                    len(metrics),
                    1,
                    figsize=(7.5, 2.7 * len(metrics)),
                    layout="constrained",
                    squeeze=False,
                )
            for ax, metric in zip(axes[:, 0], metrics):
                t = table[(table.metric == metric) & (table.pair.isin([pair, *table.pair]))]
                base = t[t.layer < 0]
                baseline = None
                if len(base):
                    b = base.iloc[0]
                    baseline = (float(b["mean"]), float(b["lo"]), float(b["hi"]))
                elif metric.endswith("_delta") or metric.startswith("kl"):
                    baseline = (0.0, 0.0, 0.0)
                t = t[(t.layer >= 0) & (t.pair == pair)]
                t = t.assign(cell=[cell_label(r.layer, r.coeff) for r in t.itertuples()])
                cell_bars(
                    t,
                    groups="align",
                    bars="cell",
                    value="mean",
                    ax=ax,
                    baseline=baseline,
                    ylabel=YLABELS[metric],
                    order=aligns,
                    bar_order=cell_order,
                    title=f"{pair}: {TITLES[metric]} ({BARS[metric]})",
                )
                ax.set_xlabel("Injection alignment")
                if metric != metrics[0]:
                    ax.get_legend().remove()
            paths += save_figure(fig, Path(out) / "figures" / f"alignment_pair{i}")
        return paths
