"""A resumable run directory.

Layout::

    <out>/config.json          the full spec (and the experiment kind)
    <out>/env.json             model, package versions, git revision, device, time
    <out>/parts/<key>.parquet  one file per finished unit of work, written atomically
    <out>/results.parquet      all parts, in a fixed order (+ results.csv)

A unit's part file appears only once the unit is complete (temp file + rename), so a run
killed at any moment loses at most the unit in progress. Resuming skips units whose part
exists; the final table is rebuilt from the parts, so nothing is lost or duplicated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from actadd.errors import ConfigError
from actadd.runinfo import env_info, write_json, write_table


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)


class RunStore:
    """Results of one run, kept in ``out`` (see module docstring)."""

    def __init__(
        self, out: str | Path, config: dict[str, Any], model=None, *, resume: bool = False
    ) -> None:
        self.out = Path(out)
        self.parts = self.out / "parts"
        config_path = self.out / "config.json"
        if config_path.exists():
            previous = json.loads(config_path.read_text())
            if not resume:
                raise ConfigError(
                    f"{self.out} already holds a run. Pass --resume (resume=True) to continue "
                    "it, or choose another output directory."
                )
            if _normalise(previous) != _normalise(config):
                raise ConfigError(
                    f"{self.out} holds a run of a different config; resuming would mix "
                    "results. Choose another output directory."
                )
        else:
            write_json(config_path, config)
        self.parts.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "env.json", env_info(model))

    def path(self, key: str, table: str = "results") -> Path:
        return self.parts / f"{_safe(key)}.{table}.parquet"

    def done(self, key: str) -> bool:
        return self.path(key).exists()

    def write(self, key: str, tables: dict[str, pd.DataFrame]) -> None:
        """Write a unit's tables; ``results`` last, since its presence marks the unit done."""
        for name, df in sorted(tables.items(), key=lambda kv: kv[0] == "results"):
            write_table(self.path(key, name), df)

    def read(self, key: str, table: str = "results") -> pd.DataFrame | None:
        p = self.path(key, table)
        return pd.read_parquet(p) if p.exists() else None

    def finalize(self, keys: list[str], tables: tuple[str, ...] = ("results",)) -> dict:
        """Concatenate the parts of ``keys`` (in that order) into the run's tables."""
        out = {}
        for table in tables:
            frames = [df for k in keys if (df := self.read(k, table)) is not None]
            if not frames:
                continue
            df = pd.concat(frames, ignore_index=True)
            write_table(self.out / f"{table}.parquet", df)
            write_table(self.out / f"{table}.csv", df)
            out[table] = df
        return out


def _normalise(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)
