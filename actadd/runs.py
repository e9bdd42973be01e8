"""The run directory: the one place every experiment writes to.

Layout::

    <out>/config.json            the full config (and the experiment kind)
    <out>/env.json               model, package versions, git revision, device, time
    <out>/<table>.parquet|.csv   the run's tables, at the top
    <out>/tables.json            each table's rows, columns and sha256 (checked on read)
    <out>/parts/<key>.<table>.parquet   finished units of work (resumable kinds)
    <out>/figures/               figures (PNG + PDF), redrawn from the tables alone

Rules, the same for every kind:

- Opening a directory that already holds a run needs ``resume=True``, and the config must be
  the one it was started with; otherwise a :class:`ConfigError` says so before any compute.
- Nothing is written until :meth:`RunDir.start` (after the config and the model have been
  validated), so a rejected config leaves no trace.
- One writer at a time: :meth:`RunDir.start` takes an exclusive lock (``<out>/.lock``, the
  writer's pid and host). A second writer is refused with a clear error; a lock left by a
  killed process on this host is detected (its pid is gone) and taken over.
- Every file is written atomically (temp file + rename): a run killed at any moment leaves
  no half-written file. A unit is done only once its part files and their checksums
  (``<key>.sha256``, written last) are on disk and agree, so resuming skips finished units,
  recomputes a truncated or corrupted one, and rebuilds the final tables from the parts —
  nothing is lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from actadd.errors import ConfigError
from actadd.runinfo import env_info, write_json, write_table

FIGURES = "figures"
LOCK = ".lock"


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)


def _normalise(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


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
        self.resume = resume
        self.parts = self.out / "parts"
        self.figures = self.out / FIGURES
        self._locked = False
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"Output {self.out} is a file, not a directory: choose another.")
        parent = next(p for p in (self.out, *self.out.parents) if p.exists())
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"Cannot write to {parent}: choose a writable output directory.")
        self._check_existing()

    def _check_existing(self) -> None:
        """Refuse a directory holding a run, unless resuming that same config."""
        config_path = self.out / "config.json"
        self.resumed = config_path.exists()
        if not self.resumed:
            return
        if not self.resume:
            raise ConfigError(
                f"{self.out} already holds a run. Pass --resume (resume=True) to continue "
                "it, or choose another output directory."
            )
        try:
            previous = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path} is not valid JSON ({exc}).") from None
        if _normalise(previous) != _normalise(self.config):
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
        """Take the lock, create the directory and write ``config.json`` (new runs) and
        ``env.json``. Use as ``with run.start(model): ...`` so the lock is released."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._check_existing()  # again, now that no one else can write here
            if not self.resumed:
                write_json(self.out / "config.json", self.config)
            write_json(self.out / "env.json", env_info(model))
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self) -> None:
        path = self.out / LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                    owner = {}
                pid, host = owner.get("pid"), owner.get("host")
                if host == me["host"] and isinstance(pid, int) and not _pid_alive(pid):
                    path.unlink(missing_ok=True)  # stale: its writer was killed
                    continue
                raise ConfigError(
                    f"{self.out} is in use by another writer (pid {pid} on {host}, since "
                    f"{owner.get('since', '?')}). Wait for it, or delete {path} if that "
                    "process is gone."
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump({**me, "since": datetime.now(UTC).isoformat(timespec="seconds")}, f)
            self._locked = True
            return
        raise ConfigError(f"Could not take the lock {path}; try again.")

    def close(self) -> None:
        """Release the lock (if this object holds it)."""
        if self._locked:
            (self.out / LOCK).unlink(missing_ok=True)
            self._locked = False

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write_table(self, name: str, df: pd.DataFrame, formats: Sequence[str] = ("csv",)) -> None:
        """Write ``<out>/<name>.<fmt>`` for each format (``"parquet"``, ``"csv"``), and
        record its rows, columns and sha256 in ``tables.json``."""
        manifest = self.manifest()
        for fmt in formats:
            path = write_table(self.out / f"{name}.{fmt}", df)
            manifest[path.name] = dict(rows=len(df), columns=list(map(str, df.columns)))
            manifest[path.name]["sha256"] = _sha256(path)
        write_json(self.out / "tables.json", manifest)

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

    def manifest(self) -> dict[str, Any]:
        """``tables.json``: what each table file of the run should be ({} for runs made
        before it existed)."""
        path = self.out / "tables.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc}).") from None

    def read_table(self, name: str, **read_csv) -> pd.DataFrame:
        """The run's table ``name``, checked against ``tables.json`` (sha256, rows,
        columns): a truncated, edited or unreadable table is a ConfigError naming it.
        ``read_csv`` keywords apply to CSV tables."""
        path = self.table_path(name)
        expected = self.manifest().get(path.name)
        if expected is not None and _sha256(path) != expected["sha256"]:
            raise ConfigError(
                f"{path} does not match the run that wrote it (sha256 differs; it should "
                f"have {expected['rows']} rows): rerun the experiment, or restore the file."
            )
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
        """Draw the figures with ``draw(self)`` into a fresh directory, then put it in
        place of ``figures/``: no figure of an earlier drawing is left beside the new ones,
        and a drawing that fails leaves the old figures as they were."""
        final, tmp = self.out / FIGURES, self.out / f".{FIGURES}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.figures = tmp
        try:
            paths = draw(self)
            shutil.rmtree(final, ignore_errors=True)
            if tmp.exists():
                tmp.rename(final)
        finally:
            self.figures = final
            shutil.rmtree(tmp, ignore_errors=True)
        return [final / Path(p).relative_to(tmp) for p in paths]

    def has_table(self, name: str) -> bool:
        return any((self.out / f"{name}.{fmt}").is_file() for fmt in ("parquet", "csv"))

    # ------------------------------------------------------------------ resumable units

    def part_path(self, key: str, table: str = "results") -> Path:
        return self.parts / f"{_safe(key)}.{table}.parquet"

    def _sums_path(self, key: str) -> Path:
        return self.parts / f"{_safe(key)}.sha256"

    def _sums(self, key: str) -> dict[str, str] | None:
        """The unit's checksums (table -> sha256), or None if missing or unreadable."""
        try:
            sums = json.loads(self._sums_path(key).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return sums if isinstance(sums, dict) and sums else None

    def _intact(self, key: str, table: str, digest: str) -> bool:
        try:
            return _sha256(self.part_path(key, table)) == digest
        except OSError:
            return False

    def done(self, key: str) -> bool:
        """The unit's parts are all on disk and match the checksums written with them."""
        sums = self._sums(key)
        return sums is not None and all(self._intact(key, t, d) for t, d in sums.items())

    def write_part(self, key: str, tables: dict[str, pd.DataFrame]) -> None:
        """Write a unit's tables, then their checksums (which mark the unit done)."""
        self._sums_path(key).unlink(missing_ok=True)
        sums = {}
        for name, df in sorted(tables.items()):
            sums[name] = _sha256(write_table(self.part_path(key, name), df))
        write_json(self._sums_path(key), sums)

    def read_part(self, key: str, table: str = "results") -> pd.DataFrame | None:
        """A finished unit's table (None if the unit has no such table); only that table's
        file is hashed, so finalize reads and checks each part file once."""
        sums = self._sums(key)
        if sums is None or (table in sums and not self._intact(key, table, sums[table])):
            raise ConfigError(f"Unit {key} of {self.out} is not finished (or its part is damaged).")
        return pd.read_parquet(self.part_path(key, table)) if table in sums else None

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
