"""The run directory (:class:`RunDir`): opening, starting, writing and reading a run.

:class:`RunDir` is assembled from the parts that each own one concern:
:class:`~actadd.lab.runs.manifest.RunManifest` (``tables.json`` and ``env.json``),
:class:`~actadd.lab.runs.lock.RunLock` (one writer at a time),
:class:`~actadd.lab.runs.units.RunUnits` (resumable units in ``parts/``) and
:class:`~actadd.lab.runs.verify.RunChecks` (``actadd verify``). The layout and the rules
every kind follows are in :mod:`actadd.lab.runs`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from actadd._io import disk_full, file_sha256, replace_dir
from actadd.errors import ConfigError, DiskFullError
from actadd.lab.runinfo import env_info, model_identity, write_json, write_table
from actadd.lab.runs.lock import FIGURES_WAIT, RunLock
from actadd.lab.runs.manifest import (
    MANIFEST,
    RUN_FORMAT,
    RunManifest,
    describe_model,
    identity_differences,
    model_key,
    normalise,
)
from actadd.lab.runs.units import RunUnits
from actadd.lab.runs.verify import RunChecks

__all__ = ["FIGURES", "TABLE_FORMATS", "RunDir", "run_dirs"]

FIGURES = "figures"
TABLE_FORMATS = ("parquet", "csv")


class RunDir(RunManifest, RunLock, RunUnits, RunChecks):
    """One run's directory (see :mod:`actadd.lab.runs`).

    Args:
        out: the directory.
        config: the run's full config (JSON-able); saved as ``config.json``.
        resume: continue a run already in ``out`` (same config) instead of refusing.
    """

    def __init__(self, out: str | Path, config: dict[str, Any], *, resume: bool = False) -> None:
        self.out = Path(out)
        self.config = config
        self.resume = resume
        self.parts = self.out / "parts"
        self.figures = self.out / FIGURES
        self._locked = False
        self._model_key: str | None = None  # the model this process computes units with
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"Output {self.out} is a file, not a directory: choose another.")
        parent = next(p for p in (self.out, *self.out.parents) if p.exists())
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"Cannot write to {parent}: choose a writable output directory.")
        self._check_existing()

    def _check_existing(self) -> None:
        """Refuse a directory holding a run, unless resuming that same config (from the
        config.json the run wrote)."""
        config_path = self.out / "config.json"
        self.resumed = config_path.exists()
        if not self.resumed:
            if _holds_run_files(self.out):
                raise ConfigError(
                    f"{config_path} is missing, but {self.out} holds a run's files: restore "
                    "it, or start again with --fresh or a new --out."
                )
            return
        if not self.resume:
            raise ConfigError(
                f"{self.out} already holds a run. Pass --resume (resume=True) to continue "
                "it, or choose another output directory."
            )
        previous = _read_config(config_path)
        try:
            manifest = self._read_manifest()
        except ConfigError:
            manifest = None  # said by the checks that read the manifest
        recorded = (manifest or {}).get("files", {}).get("config.json")
        if recorded is not None and file_sha256(config_path) != recorded:
            raise ConfigError(
                f"{config_path} was changed after the run wrote it (its sha256 is not the one "
                f"{MANIFEST} records): restore it, or start again with --fresh or a new --out."
            )
        if normalise(previous) != normalise(self.config):
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
            if _holds_run_files(out):
                raise ConfigError(f"{path} is missing: restore it.")
            raise ConfigError(f"{out} is not a run directory (no config.json).")
        return cls(out, _read_config(path), resume=True)

    # ------------------------------------------------------------------ writing

    def start(self, model=None, *, wait: float = FIGURES_WAIT) -> RunDir:
        """Take the lock, create the directory and write ``config.json`` (new runs),
        ``env.json`` and the manifest (marked incomplete until :meth:`mark_complete`).
        A resumed run is checked first: the config file it wrote, its manifest, its
        ``parts/`` and the model (see :meth:`_check_resume`). Use as
        ``with run.start(model): ...`` so the lock is released."""
        identity = model_identity(model) if model is not None else None
        with self._space("--resume"):
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock(wait=wait)
        try:
            with self._space("--resume"):
                self._check_existing()  # again, now that no one else can write here
                manifest = self._check_resume(identity) if self.resumed else None
                if not self.resumed:
                    write_json(self.out / "config.json", self.config)
                env = {**env_info(model), "run_format": RUN_FORMAT}
                write_json(self.out / "env.json", env)
                manifest = manifest or self._new_manifest()
                manifest["format"], manifest["complete"] = RUN_FORMAT, False
                if identity is not None:
                    manifest["model"] = identity
                self._start_compute(manifest, env.get("git_revision"))
                for name in ("config.json", "env.json"):
                    manifest["files"][name] = file_sha256(self.out / name)
                write_json(self.out / MANIFEST, manifest)
                self._model_key = None if identity is None else model_key(identity)
        except BaseException:
            self._clock = None  # this start wrote no segment: close() records none
            self.close()
            raise
        return self

    def close(self) -> None:
        """Record what this start cost up to now in ``tables.json`` (a run stopped by an
        error or Ctrl-C keeps it; a kill keeps it up to its last finished unit or table),
        then release the lock."""
        if self._locked and getattr(self, "_clock", None) is not None:
            try:
                self._update_manifest(lambda m: None)
            except (OSError, ConfigError):
                pass  # a full disk or an unreadable manifest: the next start says so
            self._clock = None
        super().close()

    def _check_resume(self, identity: dict[str, Any] | None) -> dict[str, Any] | None:
        """Before a resumed run writes anything: ``parts`` must be a directory, the manifest
        readable, ``config.json`` the file the run wrote, and the model the run's."""
        if self.parts.exists() and not self.parts.is_dir():
            raise ConfigError(
                f"{self.parts} is a file, not the directory of the run's finished units: "
                "move it away (the units are then recomputed) and rerun with --resume."
            )
        manifest = self._read_manifest()  # config.json was checked against it on opening
        if identity is None:
            return manifest
        recorded = self._recorded_model(manifest)
        if recorded is None:
            if self._has_parts():
                raise ConfigError(
                    f"{self.out} does not record the model its finished units were computed "
                    f"with (env.json has none): delete {self.parts} to recompute them, or "
                    "start again with --fresh or a new --out."
                )
            return manifest
        fields = identity_differences(recorded, identity)
        if fields:
            raise ConfigError(
                f"{self.out} was made with {describe_model(recorded, fields)}, but the model now "
                f"is {describe_model(identity, fields)}: resuming would mix two models' numbers. "
                "Start again with --fresh or a new --out."
            )
        return manifest

    def _has_parts(self) -> bool:
        return self.parts.is_dir() and any(self.parts.iterdir())

    def mark_complete(self) -> None:
        """Record that every table of the run is written (``actadd figures`` and ``actadd
        report`` refuse a run killed before this)."""
        with self._space("--resume"):
            self._update_manifest(lambda m: m.update(complete=True))

    @contextmanager
    def _space(self, rerun: str) -> Iterator[None]:
        """A full disk, as one line that says how to go on."""
        try:
            yield
        except DiskFullError as exc:
            raise DiskFullError(f"{exc}; free space and rerun with {rerun}") from None
        except OSError as exc:
            if not disk_full(exc):
                raise
            where = exc.filename or self.out
            raise DiskFullError(
                f"no space left on device writing {where}; free space and rerun with {rerun}"
            ) from None

    def write_table(self, name: str, df: pd.DataFrame, formats: Sequence[str] = ("csv",)) -> None:
        """Write ``<out>/<name>.<fmt>`` for each format (``"parquet"``, ``"csv"``), and
        record its rows, columns and sha256 in ``tables.json``."""
        entries = {}
        with self._space("--resume"):
            for fmt in formats:
                path = write_table(self.out / f"{name}.{fmt}", df)
                entries[path.name] = dict(
                    rows=len(df), columns=list(map(str, df.columns)), sha256=file_sha256(path)
                )
            self._update_manifest(lambda m: m["tables"].update(entries))

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``<out>/<name>.json`` and record its sha256 in ``tables.json``."""
        with self._space("--resume"):
            path = write_json(self.out / f"{name}.json", data)
            digest = file_sha256(path)
            self._update_manifest(lambda m: m["files"].update({path.name: digest}))
        return path

    # ------------------------------------------------------------------ reading

    def table_path(self, name: str) -> Path:
        """The run's table ``name`` (parquet if there is one, else CSV)."""
        for fmt in TABLE_FORMATS:
            path = self.out / f"{name}.{fmt}"
            if path.is_file():
                return path
        raise ConfigError(f"{self.out} has no {name} table: run the experiment first.")

    def read_table(self, name: str, **read_csv) -> pd.DataFrame:
        """The run's table ``name``, checked against ``tables.json`` (sha256, rows,
        columns): a truncated, edited, unrecorded or unreadable table is a ConfigError
        naming it. ``read_csv`` keywords apply to CSV tables."""
        path = self.table_path(name)
        manifest = self._read_manifest()
        expected = None if manifest is None else manifest["tables"].get(path.name)
        if manifest is not None and expected is None:
            raise ConfigError(
                f"{path} is not one of the tables the run recorded in {MANIFEST}: it was put "
                "there afterwards; remove it, or rerun with --resume."
            )
        if expected is not None and file_sha256(path) != expected["sha256"]:
            raise ConfigError(self._table_mismatch(path, expected))
        try:
            df = (
                pd.read_parquet(path)
                if path.suffix == ".parquet"
                else pd.read_csv(path, **read_csv)
            )
        except Exception as exc:  # pyarrow / pandas parser errors of a damaged file
            raise ConfigError(f"{path} is not a readable table ({type(exc).__name__}).") from None
        if expected is not None and (
            len(df) != expected["rows"] or list(map(str, df.columns)) != expected["columns"]
        ):
            raise ConfigError(
                f"{path} has {len(df)} rows and columns {list(df.columns)}; the run wrote "
                f"{expected['rows']} rows and {expected['columns']}."
            )
        return df

    def redraw(self, draw: Callable[[RunDir], list[Path]]) -> list[Path]:
        """Draw the figures with ``draw(self)`` into a fresh directory of this process,
        then put it in place of ``figures/``: no figure of an earlier drawing is left beside
        the new ones, and a drawing that fails leaves the old figures as they were. Call it
        holding the lock (:meth:`start` or :meth:`hold`)."""
        final = self.out / FIGURES
        for stale in self.out.glob(f".{FIGURES}.*"):  # left by a killed drawing
            shutil.rmtree(stale, ignore_errors=True)
        tmp: Path | None = None
        try:
            with self._space(f"actadd figures {self.out}"):
                tmp = Path(tempfile.mkdtemp(prefix=f".{FIGURES}.", dir=self.out))
                tmp.chmod(0o755)
                self.figures = tmp
                paths = draw(self)
                old = tmp.with_name(tmp.name + ".old")
                if any(tmp.iterdir()):
                    replace_dir(tmp, final, old)
                elif final.exists():  # nothing drawn: no earlier figure is left either
                    final.rename(old)
                    shutil.rmtree(old, ignore_errors=True)
        finally:
            self.figures = final
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return [final / Path(p).relative_to(tmp) for p in paths]

    def has_table(self, name: str) -> bool:
        return any((self.out / f"{name}.{fmt}").is_file() for fmt in TABLE_FORMATS)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path} is not a run config (a JSON object naming its kind; it holds "
            f"{normalise(config)[:60]}): restore it."
        )
    return config


_RUN_FILES = ("config.json", MANIFEST, "env.json", "parts")


def _holds_run_files(out: Path) -> bool:
    return out.is_dir() and any((out / name).exists() for name in _RUN_FILES)


def run_dirs(results: str | Path) -> list[Path]:
    """The run directories directly under ``results``: every folder holding a run's file
    (config.json, tables.json, env.json or parts/), so one whose config.json was lost is
    listed too (and then refused by name) instead of silently left out."""
    results = Path(results)
    if not results.is_dir():
        return []
    return sorted(
        p for p in results.iterdir() if not p.name.startswith(".") and _holds_run_files(p)
    )
