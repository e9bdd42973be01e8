"""``actadd verify``: every recorded file of a run checked against its manifest.

:meth:`RunChecks.problems` lists what is missing, damaged, unrecorded or unfinished, one
line each naming the file and how to repair it; :meth:`RunChecks.check` refuses a run with
a problem (``actadd figures`` and ``actadd report`` call it). A run with no manifest at all
that does not say it wrote one (made before manifests) passes :meth:`RunChecks.check` with
an :class:`~actadd.errors.UncheckedRunWarning`, but not :meth:`RunChecks.problems`.

:class:`RunChecks` is that part of :class:`actadd.lab.runs.RunDir`.
"""

from __future__ import annotations

import socket
import warnings
from pathlib import Path
from typing import Any

from actadd._io import file_sha256, pid_alive
from actadd.errors import ConfigError, UncheckedRunWarning
from actadd.lab.runs.lock import LOCK
from actadd.lab.runs.manifest import MANIFEST, RUN_FORMAT, model_key
from actadd.lab.runs.units import PartTables

__all__ = ["RunChecks"]


class RunChecks:
    """The checks of a run directory ``self.out`` (a part of
    :class:`actadd.lab.runs.RunDir`, which provides the manifest, lock and unit readers)."""

    out: Path
    parts: Path

    def problems(self, part_tables: PartTables | None = None) -> list[str]:
        """Every recorded file that is missing, damaged or unrecorded, one line each naming
        the file and how to repair it ([] for a sound run). ``part_tables(key)`` gives the
        tables a unit must have (see :meth:`done`)."""
        out: list[str] = []
        try:
            manifest = self._read_manifest()
        except ConfigError as exc:
            return [str(exc)]
        new_run = (self._env() or {}).get("run_format") == RUN_FORMAT
        if manifest is None:
            out.append(self._no_manifest(new_run))
        else:
            if manifest["format"] == 1 and new_run:
                out.append(
                    f"{self.out / MANIFEST} is in the old flat format, but env.json says this "
                    "run wrote the current one: it was replaced. Restore it, or delete it and "
                    "rerun with --resume to rebuild it."
                )
            if manifest["complete"] is False:
                out.append(self._incomplete())
            for name, digest in sorted(manifest["files"].items()):
                path = self.out / name
                if not path.is_file():
                    out.append(f"{path} is missing: {self._file_hint(name)}.")
                elif file_sha256(path) != digest:
                    out.append(
                        f"{path} was changed after the run wrote it (sha256 differs): "
                        f"{self._file_hint(name)}."
                    )
            for name, entry in sorted(manifest["tables"].items()):
                path = self.out / name
                if not path.is_file():
                    out.append(f"{path} is missing: {self._rebuild_hint()}.")
                elif file_sha256(path) != entry["sha256"]:
                    out.append(self._table_mismatch(path, entry))
            for path in sorted(self.out.iterdir()):
                if (
                    path.suffix in (".csv", ".parquet")
                    and path.is_file()
                    and path.name not in manifest["tables"]
                ):
                    out.append(
                        f"{path} is not one of the tables the run recorded in {MANIFEST}: "
                        "it was put there afterwards; remove it, or rerun with --resume."
                    )
        out += self._part_problems(manifest, part_tables)
        return out

    def _no_manifest(self, new_run: bool) -> str:
        path = self.out / MANIFEST
        if new_run:
            return (
                f"{path} is missing, so nothing in the run can be checked: restore it, or "
                "rerun with --resume to rebuild it."
            )
        return (
            f"{path} is missing: the tables cannot be checked against the run that wrote them "
            "(a run made before manifests, or the file was deleted); rerun with --resume to "
            "rebuild it."
        )

    def _incomplete(self) -> str:
        try:  # the lock says whether someone is writing it now (unless it is ours)
            owner = None if self._locked else self._read_lock(self.out / LOCK)
        except ConfigError:
            owner = None
        here = owner is not None and owner["host"] == socket.gethostname()
        if owner is not None and (not here or pid_alive(owner["pid"])):
            return (
                f"{self.out} is being written by pid {owner['pid']} on {owner['host']} "
                f"({owner.get('phase', 'writing')} since {owner.get('since', '?')}): wait for "
                "it to finish."
            )
        return (
            f"{self.out} is incomplete: its run stopped before writing all its tables "
            f"({MANIFEST} is not marked complete); rerun with --resume to finish it."
        )

    @staticmethod
    def _file_hint(name: str) -> str:
        if name == "config.json":
            return "restore it (the run was made with the config whose sha256 tables.json records)"
        return "restore it, or rerun with --resume to rewrite it"

    def _part_problems(
        self, manifest: dict[str, Any] | None, part_tables: PartTables | None
    ) -> list[str]:
        if not self.parts.exists():
            return []
        if not self.parts.is_dir():
            return [
                f"{self.parts} is a file, not the directory of the run's finished units: move "
                "it away and rerun with --resume (the units are recomputed)."
            ]
        out = []
        recompute = "rerun with --resume to recompute the unit"
        model = None if manifest is None or not manifest["model"] else model_key(manifest["model"])
        keys = set()
        for sums_path in sorted(self.parts.glob("*.sha256")):
            key = sums_path.name[: -len(".sha256")]
            keys.add(key)
            sums = self._sums(key)
            if sums is None:
                out.append(f"{sums_path} is not a unit's checksums: {recompute}.")
                continue
            made_by, tables = sums
            if model is not None and made_by is not None and made_by != model:
                out.append(
                    f"{sums_path}: the unit was computed with another model than the run's: "
                    f"{recompute}."
                )
            expected = part_tables(key) if part_tables is not None else None
            missing = sorted(set(expected or ()) - set(tables))
            if missing:
                out.append(
                    f"{sums_path} lists only {sorted(tables)}, but the unit also has "
                    f"{missing}: {recompute}."
                )
            for table, digest in sorted(tables.items()):
                path = self.part_path(key, table)
                if not path.is_file():
                    out.append(f"{path} is missing: {recompute}.")
                elif file_sha256(path) != digest:
                    out.append(f"{path} does not match its checksum (sha256 differs): {recompute}.")
        for path in sorted(self.parts.glob("*.parquet")):
            if path.name.rsplit(".", 2)[0] not in keys:
                out.append(
                    f"{path} belongs to an unfinished unit (no checksums): {recompute}, or "
                    "delete it."
                )
        return out

    def check(self, part_tables: PartTables | None = None) -> None:
        """Refuse a run that :meth:`problems` finds damaged, incomplete or tampered with: a
        ConfigError with the first problem (one line). A run without any manifest that does
        not say it wrote one (made before manifests) gives an UncheckedRunWarning instead."""
        found = self.problems(part_tables)
        if not found:
            return
        if (
            (self.out / MANIFEST).exists()
            or (self._env() or {}).get("run_format") == RUN_FORMAT
            or len(found) > 1
        ):
            more = f" (and {len(found) - 1} more: actadd verify {self.out})"
            raise ConfigError(found[0] + (more if len(found) > 1 else ""))
        warnings.warn(
            f"{self.out} has no {MANIFEST}: its tables cannot be checked against the run that "
            "wrote them (a run made before manifests, or the file was deleted), and are used "
            "as they are. Rerun it with --resume to rebuild the manifest.",
            UncheckedRunWarning,
            stacklevel=2,
        )

    def _rebuild_hint(self) -> str:
        if self._has_parts():
            return "rerun with --resume to rebuild it from the finished units in parts/"
        return "restore the file, or rerun with --resume (recomputes the run)"

    def _table_mismatch(self, path: Path, expected: dict[str, Any]) -> str:
        return (
            f"{path} does not match the run that wrote it (sha256 differs; it should have "
            f"{expected['rows']} rows): {self._rebuild_hint()}."
        )
