"""Experiment kind: a sweep grid (see actadd.sweeps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from actadd.experiments import register
from actadd.plots import sweep_figures


@register("sweep", "layers × coefficients × alignments grid with next-token and sampled metrics")
class SweepKind:
    @staticmethod
    def run(config: dict[str, Any], out: Path, resume: bool) -> None:
        from actadd.sweeps import SweepSpec, run_sweep

        spec = SweepSpec.from_dict({k: v for k, v in config.items() if k != "kind"})
        df = run_sweep(spec, out=out, resume=resume)
        SweepKind.figures(out, df)

    @staticmethod
    def figures(out: Path, df: pd.DataFrame | None = None) -> list[Path]:
        df = df if df is not None else pd.read_parquet(out / "results.parquet")
        return sweep_figures(df, out / "figures")
