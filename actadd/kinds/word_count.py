"""Experiment kind ``word_count``: the paper's wedding word-count figure.

A sweep (``[generation]`` required) over layers and a few coefficients; the figure is the
fraction of sampled completions that contain a topic word against injection layer, one line
per coefficient with Wilson 95% intervals, and the unsteered fraction as a band; beside it,
the next-token change in log-probability of the topic words (no sampling).
``summary.csv`` has every cell's fraction, Wilson interval, and difference from the
unsteered fraction with Newcombe's 95% interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from actadd.experiments import register
from actadd.kinds._paper import (
    pair_order,
    read_results,
    require_generation,
    run_sweep_kind,
    write_summary,
)
from actadd.metrics import proportion_summary
from actadd.plots import PAPER_RC, mean_by, proportion_by_layer, save_figure

NAME = "word_count"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: topic-word fraction (Wilson CI), difference from unsteered
    (Newcombe CI), and the cell's mean next-token metrics when present."""
    from actadd.sweeps import summarize

    props = proportion_summary(df, "topic_any")
    keys = ["pair", "pad", "layer", "coeff", "align"]
    s = summarize(df)
    for metric in ("target_logprob_delta", "kl_neutral"):
        m = s[s.metric == metric]
        if len(m):
            props = props.merge(
                m[keys + ["mean"]].rename(columns={"mean": metric}), on=keys, how="left"
            )
    return props


@register(NAME, "topic-word fraction of completions over layers (the paper's word-count figure)")
class WordCountKind:
    @staticmethod
    def run(config: dict[str, Any], out: Path, resume: bool) -> None:
        require_generation(config, NAME, "topic_any")
        df = run_sweep_kind(config, out, resume, NAME)
        WordCountKind.figures(out, df)

    @staticmethod
    def figures(out: Path, df: pd.DataFrame | None = None) -> list[Path]:
        from actadd.sweeps import summarize

        df = df if df is not None else read_results(out)
        write_summary(out, summary(df))  # derived: kept in step with the figures
        props = proportion_summary(df, "topic_any")
        s = summarize(df)
        steered = props[props.layer >= 0]
        paths: list[Path] = []
        for i, pair in enumerate(pair_order(out, steered.pair)):
            sub = steered[steered.pair == pair]
            align = "front" if "front" in set(sub["align"]) else sub["align"].iloc[0]
            has_nt = bool(((s.metric == "target_logprob_delta") & (s.pair == pair)).any())
            with plt.rc_context(PAPER_RC):
                fig, axes = plt.subplots(
                    1,
                    2 if has_nt else 1,
                    figsize=(10.0 if has_nt else 5.5, 3.4),
                    layout="constrained",
                    squeeze=False,
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
            paths += save_figure(fig, Path(out) / "figures" / f"word_count_pair{i}")
        return paths
