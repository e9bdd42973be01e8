"""Plumbing shared by the paper-reproduction kinds that wrap a sweep.

A paper kind's config is a plain sweep config (:class:`actadd.sweeps.SweepSpec` keys) whose
``kind`` names the paper figure drawn from its results. The run directory is an ordinary
sweep run (``config.json``, ``env.json``, ``results.parquet``/``.csv``, ``completions.*``)
plus a ``summary.csv`` and the kind's figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actadd.errors import ConfigError
from actadd.metrics import t95
from actadd.runinfo import write_table

# How each metric's error bars are computed, for figure titles.
BARS = {
    "topic_any": "bars: Wilson 95% CI",
    "sentiment": "bars: 95% CI",
    "target_logprob_delta": "bars: range over the prompts",
    "kl_neutral": "bars: range over the neutral texts",
}


def run_sweep_kind(config: dict[str, Any], out: Path, resume: bool, kind: str) -> pd.DataFrame:
    """Run ``config`` as a sweep whose ``config.json`` records ``kind``."""
    from actadd.sweeps import SweepSpec, run_sweep

    spec = SweepSpec.from_dict({k: v for k, v in config.items() if k != "kind"})
    return run_sweep(spec, out=out, resume=resume, kind=kind)


def read_results(out: Path) -> pd.DataFrame:
    path = Path(out) / "results.parquet"
    if not path.is_file():
        raise ConfigError(f"{out} has no results.parquet: run the experiment first.")
    return pd.read_parquet(path)


def require_generation(config: dict[str, Any], kind: str, metric: str) -> None:
    """Fail before any compute when a kind needs sampled completions (or sentiment)."""
    gen = config.get("generation")
    if not isinstance(gen, dict):
        raise ConfigError(f"kind {kind!r} needs a [generation] table (sampled completions).")
    if metric == "sentiment" and gen.get("sentiment") is False:
        raise ConfigError(f"kind {kind!r} needs generation.sentiment = true.")


def mean_diffs(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-cell mean of ``metric`` with a 95% t interval, and its difference from the
    unsteered mean with a Welch 95% interval. ``summary`` is ``actadd.sweeps.summarize``."""
    s = summary[summary.metric == metric].copy()
    if s.empty:
        raise ConfigError(f"No rows for metric {metric!r}.")
    sem = s["sem"].fillna(0.0)
    half = sem * [t95(n - 1) if n > 1 else 0.0 for n in s["count"]]
    s["lo"], s["hi"] = s["mean"] - half, s["mean"] + half
    base = s[s.layer < 0]
    if len(base):
        b_mean, b_sem = float(base["mean"].iloc[0]), float(base["sem"].fillna(0).iloc[0])
        b_n = int(base["count"].iloc[0])
        s["diff"] = s["mean"] - b_mean
        var = sem**2 + b_sem**2
        # Welch–Satterthwaite degrees of freedom
        dof = var**2 / (
            sem**4 / (s["count"] - 1).clip(lower=1) + b_sem**4 / max(b_n - 1, 1)
        ).replace(0, np.nan)
        half = np.sqrt(var) * [t95(d) if np.isfinite(d) else 0.0 for d in dof]
        s["diff_lo"], s["diff_hi"] = s["diff"] - half, s["diff"] + half
    return s.drop(columns=["std"]).reset_index(drop=True)


def range_table(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-cell mean of a deterministic (next-token) metric with ``lo``/``hi`` = the minimum
    and maximum over texts: with two or three prompts a spread says more than an interval."""
    keys = ["pair", "pad", "layer", "coeff", "align"]
    g = df[df.metric == metric].groupby(keys, dropna=False)["value"]
    out = g.agg(mean="mean", lo="min", hi="max", count="count").reset_index()
    return out.assign(metric=metric)


def cell_label(layer: int, coeff: float) -> str:
    return f"L{int(layer)}, c={coeff:g}"


def write_summary(out: Path, table: pd.DataFrame) -> Path:
    return write_table(Path(out) / "summary.csv", table)


def pair_order(out: Path, present) -> list[str]:
    """The pairs of a run in config order (their labels, as in the tables), then any others."""
    import json

    from actadd.sweeps.spec import PairSpec

    config = json.loads((Path(out) / "config.json").read_text())
    names = []
    for p in config.get("pairs", []):
        spec = PairSpec(**p) if isinstance(p, dict) else PairSpec(str(p[0]), str(p[1]))
        names.append(spec.name)
    present = list(dict.fromkeys(present))
    return [n for n in names if n in present] + [n for n in present if n not in names]
