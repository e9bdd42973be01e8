"""Resumable units of work: a run's ``parts/``.

A unit writes its tables as ``parts/<key>.<table>.parquet``, then ``parts/<key>.sha256``
(their checksums and the model that computed them), which marks it done. A unit is done
only once *all* its expected part files and their checksums are on disk and agree, so
resuming skips finished units, recomputes a missing, truncated or corrupted one, and
rebuilds the final tables from the parts (:meth:`RunUnits.finalize`): nothing is lost or
duplicated, and no table mixes two models.

:class:`RunUnits` is that part of :class:`actadd.lab.runs.RunDir`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from actadd._io import file_sha256
from actadd.errors import ConfigError
from actadd.lab.runinfo import write_json, write_table
from actadd.lab.runs.manifest import RUN_FORMAT, is_sha

__all__ = ["PartTables", "RunUnits"]

# the expected set of a unit's tables, given its key (None: whatever its checksums list)
PartTables = Callable[[str], Sequence[str] | None]


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)


class RunUnits:
    """The finished units in ``self.parts`` of a run directory (a part of
    :class:`actadd.lab.runs.RunDir`; ``self._model_key`` is the model this process computes
    units with)."""

    out: Path
    parts: Path
    _model_key: str | None

    def part_path(self, key: str, table: str = "results") -> Path:
        return self.parts / f"{_safe(key)}.{table}.parquet"

    def _sums_path(self, key: str) -> Path:
        return self.parts / f"{_safe(key)}.sha256"

    def _sums(self, key: str) -> tuple[str | None, dict[str, str]] | None:
        """The unit's (model key, {table: sha256}), or None if missing or unreadable. Units
        written before format 2 record no model (a flat {table: sha256})."""
        try:
            sums = json.loads(self._sums_path(key).read_text())
        except (OSError, ValueError):
            return None
        model = None
        if isinstance(sums, dict) and sums.get("format") == RUN_FORMAT:
            model, sums = sums.get("model"), sums.get("tables")
            if not isinstance(model, (str, type(None))):
                return None
        if not isinstance(sums, dict) or not sums or not all(map(is_sha, sums.values())):
            return None
        return model, sums

    def _intact(self, key: str, table: str, digest: str) -> bool:
        try:
            return file_sha256(self.part_path(key, table)) == digest
        except OSError:
            return False

    def done(self, key: str, tables: Sequence[str] | None = None) -> bool:
        """The unit is finished: its checksums list every table in ``tables`` (its full
        expected set; default: whatever they list), every listed part file matches, and it
        was computed with this run's model."""
        sums = self._sums(key)
        if sums is None:
            return False
        model, recorded = sums
        if model is not None and self._model_key is not None and model != self._model_key:
            return False
        if tables is not None and not set(tables) <= set(recorded):
            return False
        return all(self._intact(key, t, d) for t, d in recorded.items())

    def write_part(self, key: str, tables: dict[str, pd.DataFrame]) -> None:
        """Write a unit's tables, then their checksums and the model they were computed
        with (which mark the unit done)."""
        with self._space("--resume (finished units are kept)"):
            self._sums_path(key).unlink(missing_ok=True)
            sums = {}
            for name, df in sorted(tables.items()):
                sums[name] = file_sha256(write_table(self.part_path(key, name), df))
            record = {"format": RUN_FORMAT, "model": self._model_key, "tables": sums}
            write_json(self._sums_path(key), record)
            self._update_manifest(lambda m: None)  # the compute so far (a kill keeps it)

    def read_part(
        self, key: str, table: str = "results", expected: bool | None = None
    ) -> pd.DataFrame | None:
        """A finished unit's table; None if the unit has no such table, unless ``expected``
        (then its absence is an error). Only that table's file is hashed, so finalize reads
        and checks each part file once."""
        sums = self._sums(key)
        if sums is None or (table in sums[1] and not self._intact(key, table, sums[1][table])):
            raise ConfigError(f"Unit {key} of {self.out} is not finished (or its part is damaged).")
        if table not in sums[1]:
            if expected:
                raise ConfigError(
                    f"Unit {key} of {self.out} has no {table} table (its checksums list "
                    f"{sorted(sums[1])}): rerun with --resume to recompute it."
                )
            return None
        return pd.read_parquet(self.part_path(key, table))

    def finalize(
        self,
        keys: list[str],
        tables: Sequence[str] = ("results",),
        expected: Mapping[str, Sequence[str]] | None = None,
        annotate: Callable[[str, pd.DataFrame], pd.DataFrame] | None = None,
    ) -> dict:
        """Concatenate the parts of ``keys`` (in that order) into the run's tables
        (parquet and CSV). ``expected[key]``: the tables unit ``key`` must have.
        ``annotate(table, df)``: the final table with columns that are the run's, not a
        unit's (the word lists, the texts), added before it is written."""
        out = {}
        for table in tables:
            frames = [
                df
                for k in keys
                if (
                    df := self.read_part(
                        k, table, None if expected is None else table in expected[k]
                    )
                )
                is not None
            ]
            if not frames:
                continue
            df = pd.concat(frames, ignore_index=True)
            if annotate is not None:
                df = annotate(table, df)
            self.write_table(table, df, ("parquet", "csv"))
            out[table] = df
        return out
