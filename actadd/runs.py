"""The run directory: the one place every experiment writes to.

Layout::

    <out>/config.json            the full config (and the experiment kind)
    <out>/env.json               model, package versions, git revision, device, time
    <out>/<table>.parquet|.csv   the run's tables, at the top
    <out>/parts/<key>.<table>.parquet   finished units of work (resumable kinds)
    <out>/figures/               figures (PNG + PDF), redrawn from the tables alone

Rules, the same for every kind:

- Opening a directory that already holds a run needs ``resume=True``, and the config must be
  the one it was started with; otherwise a :class:`ConfigError` says so before any compute.
- Nothing is written until :meth:`RunDir.start` (after the config and the model have been
  validated), so a rejected config leaves no trace.
- Every file is written atomically (temp file + rename): a run killed at any moment leaves
  no half-written file. A unit's part appears only once the unit is complete, so resuming
  skips finished units and the final tables are rebuilt from the parts — nothing is lost or
  duplicated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from actadd.errors import ConfigError
from actadd.runinfo import env_info, write_json, write_table

FIGURES = "figures"


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)


def _normalise(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


class RunDir:
    """One run's directory (see the module docstring).

    Args:
        out: the directory.
        config: the run's full config (JSON-able); saved as ``config.json``.
        resume: continue a run already in ``out`` (same config) instead of refusing.
    """

    def __init__(self, out: str | Path, config: dict[str, Any], *, resume: bool = False) -> None:
        self.out = Path(out)
        self.config = config
        self.parts = self.out / "parts"
        self.figures = self.out / FIGURES
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"Output {self.out} is a file, not a directory: choose another.")
        config_path = self.out / "config.json"
        self.resumed = config_path.exists()
        if self.resumed:
            if not resume:
                raise ConfigError(
                    f"{self.out} already holds a run. Pass --resume (resume=True) to continue "
                    "it, or choose another output directory."
                )
            previous = json.loads(config_path.read_text())
            if _normalise(previous) != _normalise(config):
                raise ConfigError(
                    f"{self.out} holds a run of a different config; resuming would mix "
                    "results. Choose another output directory."
                )

    @classmethod
    def existing(cls, out: str | Path) -> RunDir:
        """A finished (or partial) run, for reading its tables and redrawing figures."""
        out = Path(out)
        path = out / "config.json"
        if not path.is_file():
            raise ConfigError(f"{out} is not a run directory (no config.json).")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc}).") from None
        return cls(out, config, resume=True)

    # ------------------------------------------------------------------ writing

    def start(self, model=None) -> RunDir:
        """Create the directory and write ``config.json`` (new runs) and ``env.json``."""
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.resumed:
            write_json(self.out / "config.json", self.config)
        write_json(self.out / "env.json", env_info(model))
        return self

    def write_table(self, name: str, df: pd.DataFrame, formats: Sequence[str] = ("csv",)) -> None:
        """Write ``<out>/<name>.<fmt>`` for each format (``"parquet"``, ``"csv"``)."""
        for fmt in formats:
            write_table(self.out / f"{name}.{fmt}", df)

    def write_json(self, name: str, data: Any) -> Path:
        return write_json(self.out / f"{name}.json", data)

    # ------------------------------------------------------------------ reading

    def table_path(self, name: str) -> Path:
        """The run's table ``name`` (parquet if there is one, else CSV)."""
        for fmt in ("parquet", "csv"):
            path = self.out / f"{name}.{fmt}"
            if path.is_file():
                return path
        raise ConfigError(f"{self.out} has no {name} table: run the experiment first.")

    def read_table(self, name: str) -> pd.DataFrame:
        path = self.table_path(name)
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)

    def has_table(self, name: str) -> bool:
        return any((self.out / f"{name}.{fmt}").is_file() for fmt in ("parquet", "csv"))

    # ------------------------------------------------------------------ resumable units

    def part_path(self, key: str, table: str = "results") -> Path:
        return self.parts / f"{_safe(key)}.{table}.parquet"

    def done(self, key: str) -> bool:
        return self.part_path(key).exists()

    def write_part(self, key: str, tables: dict[str, pd.DataFrame]) -> None:
        """Write a unit's tables; ``results`` last, since its presence marks the unit done."""
        for name, df in sorted(tables.items(), key=lambda kv: kv[0] == "results"):
            write_table(self.part_path(key, name), df)

    def read_part(self, key: str, table: str = "results") -> pd.DataFrame | None:
        p = self.part_path(key, table)
        return pd.read_parquet(p) if p.exists() else None

    def finalize(self, keys: list[str], tables: Sequence[str] = ("results",)) -> dict:
        """Concatenate the parts of ``keys`` (in that order) into the run's tables
        (parquet and CSV)."""
        out = {}
        for table in tables:
            frames = [df for k in keys if (df := self.read_part(k, table)) is not None]
            if not frames:
                continue
            df = pd.concat(frames, ignore_index=True)
            self.write_table(table, df, ("parquet", "csv"))
            out[table] = df
        return out
