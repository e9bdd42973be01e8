"""Experiment kind ``sentiment``: VADER sentiment of steered completions.

A sweep (``[generation]`` with ``sentiment = true``) of sentiment pairs such as
Love − Hate over layers and coefficients, usually on negative prompts. Per pair, the figure
shows the mean VADER compound score of the completions against layer (one line per
coefficient) and against coefficient (one line per layer), with 95% intervals and the
unsteered mean as a band. ``summary.csv`` has every cell's mean, interval, and difference
from the unsteered mean on the same seeds, with a cluster-bootstrap 95% interval over
prompts (:func:`actadd.lab.stats.paired_diffs`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from actadd.lab.stats import paired_diffs, summarize
from actadd.plots import WordLists
from actadd.studies.paper.figures import sentiment_figure
from actadd.studies.sweep.kind import SweepKind

__all__ = ["KIND", "NAME", "draw", "summary"]

NAME = "sentiment"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    return paired_diffs(df, "sentiment")


def draw(df: pd.DataFrame, out_dir: Path, pairs: list[str], words: WordLists) -> list[Path]:
    return sentiment_figure(summarize(df), out_dir, pairs, words)


KIND = SweepKind(
    NAME,
    "VADER sentiment of completions against coefficient and layer, per pair",
    needs="sentiment",
    summary=summary,
    draw=draw,
    scans=("sentiment",),
)
