"""Experiment kind ``sentiment``: VADER sentiment of steered completions.

A sweep (``[generation]`` with ``sentiment = true``) of sentiment pairs such as
Love − Hate over layers and coefficients, usually on negative prompts. Per pair, the figure
shows the mean VADER compound score of the completions against layer (one line per
coefficient) and against coefficient (one line per layer), with 95% intervals and the
unsteered mean as a band. ``summary.csv`` has every cell's mean, interval, and difference
from the unsteered mean with a Welch 95% interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from actadd.experiments import register
from actadd.kinds._paper import (
    mean_diffs,
    pair_order,
    read_results,
    require_generation,
    run_sweep_kind,
    write_summary,
)
from actadd.plots import PAPER_RC, mean_by, save_figure

NAME = "sentiment"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    from actadd.sweeps import summarize

    return mean_diffs(summarize(df), "sentiment")


@register(NAME, "VADER sentiment of completions against coefficient and layer, per pair")
class SentimentKind:
    @staticmethod
    def run(config: dict[str, Any], out: Path, resume: bool) -> None:
        require_generation(config, NAME, "sentiment")
        df = run_sweep_kind(config, out, resume, NAME)
        SentimentKind.figures(out, df)

    @staticmethod
    def figures(out: Path, df: pd.DataFrame | None = None) -> list[Path]:
        from actadd.sweeps import summarize

        df = df if df is not None else read_results(out)
        write_summary(out, summary(df))  # derived: kept in step with the figures
        s = summarize(df)
        s = s[s.metric == "sentiment"]
        pairs = pair_order(out, s[s.layer >= 0].pair)
        with plt.rc_context(PAPER_RC):
            fig, axes = plt.subplots(
                len(pairs),
                2,
                figsize=(10.0, 3.3 * len(pairs)),
                layout="constrained",
                squeeze=False,
            )
        for row, pair in enumerate(pairs):
            sub = s[s.pair == pair]
            align = "front" if "front" in set(sub["align"]) else sub["align"].iloc[0]
            mean_by(
                s,
                "sentiment",
                x="layer",
                lines="coeff",
                pair=pair,
                align=align,
                ax=axes[row, 0],
                title=f"{pair}: by layer",
            )
            positive = (sub.coeff > 0).all()
            mean_by(
                s,
                "sentiment",
                x="coeff",
                lines="layer",
                pair=pair,
                align=align,
                ax=axes[row, 1],
                title=f"{pair}: by coefficient",
                log_x=bool(positive),
            )
        return save_figure(fig, Path(out) / "figures" / "sentiment")
