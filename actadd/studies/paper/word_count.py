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

import pandas as pd

from actadd.lab.stats import proportion_summary, summarize
from actadd.plots import WordLists
from actadd.studies.paper.figures import word_count_figures
from actadd.studies.sweep.kind import SweepKind

__all__ = ["KIND", "NAME", "draw", "summary"]

NAME = "word_count"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: topic-word fraction (Wilson CI), difference from unsteered
    (Newcombe CI), and the cell's mean next-token metrics when present."""
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


def draw(df: pd.DataFrame, out_dir: Path, pairs: list[str], words: WordLists) -> list[Path]:
    props = proportion_summary(df, "topic_any")
    return word_count_figures(props, summarize(df), out_dir, pairs, words)


KIND = SweepKind(
    NAME,
    "topic-word fraction of completions over layers (the paper's word-count figure)",
    needs="topic_any",
    summary=summary,
    draw=draw,
    scans=("topic_any",),
)
