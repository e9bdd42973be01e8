"""The run directory: the one place every experiment writes to.

Layout::

    <out>/config.json            the full config (and the experiment kind)
    <out>/env.json               model, package versions, git revision, device, time
    <out>/<table>.parquet|.csv   the run's tables, at the top
    <out>/tables.json            the manifest: every file's sha256 (checked on read)
    <out>/parts/<key>.<table>.parquet   finished units of work (resumable kinds)
    <out>/parts/<key>.sha256     a unit's checksums and the model it was computed with
    <out>/figures/               figures (PNG + PDF), redrawn from the tables alone

The manifest ``tables.json`` (format 2) records each table's rows, columns and sha256, the
sha256 of ``config.json``, ``env.json`` and every other JSON file of the run, the model the
run was made with (:func:`actadd.lab.runinfo.model_identity`) and whether the run finished
writing its tables (``complete``). Runs made before format 2 (a flat ``{file: entry}``
manifest, no ``run_format`` in ``env.json``) are read as *legacy*: their tables are checked,
their config and env files cannot be. A run with no manifest at all can be read (with an
:class:`~actadd.errors.UncheckedRunWarning`) but does not pass :meth:`RunDir.problems`.

Rules, the same for every kind:

- Opening a directory that already holds a run needs ``resume=True``, and the config must be
  the one it was started with (and ``config.json`` the file it wrote; a directory with a
  run's files but no ``config.json`` is refused); otherwise a :class:`ConfigError` says so
  before any compute.
- A resume must use the model the run was made with (name, backend, shape, file sha256,
  weights): another model is refused before anything is written, and each finished unit
  records the model that computed it, so no table mixes two models.
- Nothing is written until :meth:`RunDir.start` (after the config and the model have been
  validated), so a rejected config leaves no trace.
- One writer at a time: :meth:`RunDir.start` (and redrawing figures) takes an exclusive lock
  (``<out>/.lock``: the writer's pid, host and phase). A second writer is refused with a
  clear error, or waits while the holder is only drawing figures; a lock left by a killed
  process on this host is detected (its pid is gone) and taken over.
- Every file is written atomically (temp file + rename): a run killed at any moment leaves
  no half-written file, and a full disk is one :class:`DiskFullError` line. A unit is done
  only once *all* its expected part files and their checksums (``<key>.sha256``, written
  last) are on disk and agree, so resuming skips finished units, recomputes a missing,
  truncated or corrupted one, and rebuilds the final tables from the parts — nothing is lost
  or duplicated.
- :meth:`RunDir.problems` checks every recorded file (``actadd verify``); ``actadd figures``
  and ``actadd report`` refuse a run that does not pass (:meth:`RunDir.check`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from actadd._io import disk_full
from actadd.errors import ConfigError, DiskFullError, UncheckedRunWarning
from actadd.lab.runinfo import env_info, model_identity, write_json, write_table

FIGURES = "figures"
LOCK = ".lock"
MANIFEST = "tables.json"
#: the manifest format this module writes (1: the flat manifest of older runs)
RUN_FORMAT = 2
#: how long a writer waits for the lock while its holder is drawing figures (seconds)
FIGURES_WAIT = 300.0
TABLE_FORMATS = ("parquet", "csv")
# the expected set of a unit's tables, given its key (None: whatever its checksums list)
PartTables = Callable[[str], Sequence[str] | None]


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)


def _normalise(config: Any) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _digest(data: Any) -> str:
    return hashlib.sha256(_normalise(data).encode()).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_sha(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _table_entry_ok(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("rows"), int)
        and isinstance(entry.get("columns"), list)
        and all(isinstance(c, str) for c in entry["columns"])
        and _is_sha(entry.get("sha256"))
    )


# identity fields compared on resume (legacy env.json records all but the weights)
_IDENTITY = ("name", "backend", "n_layers", "d_model", "d_vocab", "file_sha256", "weights_sha256")


def _differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The identity fields both models record and that differ."""
    return [k for k in _IDENTITY if a.get(k) is not None and b.get(k) is not None and a[k] != b[k]]


def _describe(model: Mapping[str, Any], fields: list[str]) -> str:
    if "file_sha256" in fields:
        return f"{model.get('name')} (file sha256 {model['file_sha256']})"
    if "weights_sha256" in fields:
        return f"{model.get('name')} (weights sha256 {model['weights_sha256']})"
    shown = ", ".join(f"{k} {model.get(k)}" for k in fields if k != "name")
    return f"{model.get('name')}" + (f" ({shown})" if shown else "")


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
        if recorded is not None and _sha256(config_path) != recorded:
            raise ConfigError(
                f"{config_path} was changed after the run wrote it (its sha256 is not the one "
                f"{MANIFEST} records): restore it, or start again with --fresh or a new --out."
            )
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
            if _holds_run_files(out):
                raise ConfigError(f"{path} is missing: restore it.")
            raise ConfigError(f"{out} is not a run directory (no config.json).")
        return cls(out, _read_config(path), resume=True)

    # ------------------------------------------------------------------ the manifest

    def _read_manifest(self) -> dict[str, Any] | None:
        """``tables.json`` in format 2 (``format, complete, model, files, tables``); a flat
        manifest of an older run comes back as format 1 with ``complete`` None. None when
        there is none; a ConfigError when it cannot be read or is not a manifest."""
        path = self.out / MANIFEST
        fix = "restore it, or delete it and rerun with --resume to rebuild it"
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"{path} cannot be read ({exc.strerror}): {fix}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc}): {fix}.") from None
        if isinstance(doc, dict) and "format" in doc:
            if doc["format"] != RUN_FORMAT:
                raise ConfigError(
                    f"{path} has format {doc['format']!r}; this actadd reads formats 1 and "
                    f"{RUN_FORMAT} (was it written by a newer actadd?)."
                )
            tables, files = doc.get("tables"), doc.get("files")
            if (
                isinstance(tables, dict)
                and all(_table_entry_ok(e) for e in tables.values())
                and isinstance(files, dict)
                and all(_is_sha(v) for v in files.values())
                and isinstance(doc.get("complete"), bool)
                and isinstance(doc.get("model"), (dict, type(None)))
            ):
                return doc
        elif isinstance(doc, dict) and all(_table_entry_ok(e) for e in doc.values()):
            return {"format": 1, "complete": None, "model": None, "files": {}, "tables": doc}
        raise ConfigError(f"{path} is not a run manifest (it holds {_normalise(doc)[:60]}): {fix}.")

    def _update_manifest(self, change: Callable[[dict[str, Any]], None]) -> None:
        manifest = self._read_manifest() or self._new_manifest()
        manifest["format"] = RUN_FORMAT
        change(manifest)
        write_json(self.out / MANIFEST, manifest)

    @staticmethod
    def _new_manifest() -> dict[str, Any]:
        return {"format": RUN_FORMAT, "complete": False, "model": None, "files": {}, "tables": {}}

    def manifest_format(self) -> int | None:
        """The manifest's format: 1 (a run made before format 2), 2, or None (none)."""
        manifest = self._read_manifest()
        return None if manifest is None else manifest["format"]

    def manifest(self) -> dict[str, Any]:
        """What each table file of the run should be (``tables.json``'s tables; {} for runs
        made before it existed)."""
        manifest = self._read_manifest()
        return {} if manifest is None else manifest["tables"]

    def _env(self) -> dict[str, Any] | None:
        """``env.json``, or None when it is missing or not a JSON object."""
        try:
            env = json.loads((self.out / "env.json").read_bytes())
        except (OSError, ValueError):
            return None
        return env if isinstance(env, dict) else None

    def env(self) -> dict[str, Any]:
        """``env.json`` ({} when missing); a ConfigError when it is not a JSON object."""
        path = self.out / "env.json"
        if not path.exists():
            return {}
        env = self._env()
        if env is None:
            raise ConfigError(
                f"{path} is not a JSON object of the run's environment: restore it, or rerun "
                "with --resume to rewrite it."
            )
        return env

    def _recorded_model(self, manifest: dict[str, Any] | None) -> dict[str, Any] | None:
        """The model the run was made with: the manifest's, else (older runs) env.json's."""
        if manifest is not None and manifest["format"] == RUN_FORMAT:
            return manifest["model"]
        model = (self._env() or {}).get("model")
        if not isinstance(model, dict):
            return None
        return {k: model.get("model_sha256" if k == "file_sha256" else k) for k in _IDENTITY}

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
                for name in ("config.json", "env.json"):
                    manifest["files"][name] = _sha256(self.out / name)
                write_json(self.out / MANIFEST, manifest)
                self._model_key = None if identity is None else _digest(identity)
        except BaseException:
            self.close()
            raise
        return self

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
        fields = _differs(recorded, identity)
        if fields:
            raise ConfigError(
                f"{self.out} was made with {_describe(recorded, fields)}, but the model now "
                f"is {_describe(identity, fields)}: resuming would mix two models' numbers. "
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

    # ------------------------------------------------------------------ the lock

    def _lock(self, *, wait: float = FIGURES_WAIT, phase: str = "writing") -> None:
        """Take ``<out>/.lock``. A live holder drawing figures is waited for (up to ``wait``
        seconds); any other live holder is refused; a dead one's lock is taken over."""
        path = self.out / LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname(), "phase": phase}
        deadline = time.monotonic() + wait
        while True:
            me["since"] = datetime.now(UTC).isoformat(timespec="seconds")
            if self._create_lock(path, me):
                self._locked = True
                return
            owner = self._read_lock(path)
            if owner is None:
                continue  # released between our two looks: try again
            pid, host = owner["pid"], owner["host"]
            if host == me["host"] and not _pid_alive(pid):
                if self._read_lock(path) == owner:
                    path.unlink(missing_ok=True)  # stale: its writer was killed
                continue
            if owner.get("phase") == "figures" and time.monotonic() < deadline:
                time.sleep(0.1)  # it is only drawing figures: wait for it
                continue
            raise ConfigError(
                f"{self.out} is in use by another writer (pid {pid} on {host}, "
                f"{owner.get('phase', 'writing')} since {owner.get('since', '?')}). Wait for "
                f"it, or delete {path} if that process is gone."
            )

    def _create_lock(self, path: Path, me: dict[str, Any]) -> bool:
        """Create the lock file whole (written beside it, then hard-linked into place), so
        no one ever reads a half-written lock; False when it exists."""
        fd, tmp = tempfile.mkstemp(prefix=f"{LOCK}.", suffix=".tmp", dir=self.out)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError:  # a file system without hard links: exclusive create instead
                try:
                    fd2 = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd2, "w") as f:
                    json.dump(me, f)
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _read_lock(self, path: Path) -> dict[str, Any] | None:
        """The lock's owner, None if the lock is gone; a ConfigError for a lock file that
        no actadd wrote."""
        for _ in range(20):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise ConfigError(
                    f"{path} cannot be read as a lock ({exc.strerror}): if no actadd process is "
                    f"writing {self.out}, delete it and try again."
                ) from None
            try:
                owner = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                owner = None
            if (
                isinstance(owner, dict)
                and isinstance(owner.get("pid"), int)
                and isinstance(owner.get("host"), str)
            ):
                return owner
            if raw:
                break
            time.sleep(0.05)  # empty: an older actadd may be writing it right now
        shown = raw[:80].decode("utf-8", "backslashreplace")
        raise ConfigError(
            f"{path} is not a lock actadd wrote (it holds {shown!r}), so who holds {self.out} "
            f"is unknown: if no actadd process is writing there, delete {path} and try again."
        )

    def set_phase(self, phase: str) -> None:
        """Say in the lock what the writer does now (``"figures"``: others wait for it)."""
        if self._locked:
            owner = self._read_lock(self.out / LOCK) or {}
            with self._space(f"actadd figures {self.out}"):
                write_json(self.out / LOCK, {**owner, "phase": phase})

    @contextmanager
    def hold(self, phase: str = "figures", wait: float = FIGURES_WAIT) -> Iterator[RunDir]:
        """Hold the run's lock (for writing figures into an existing run)."""
        with self._space(f"actadd {phase}"):
            self._lock(wait=wait, phase=phase)
        try:
            yield self
        finally:
            self.close()

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
        entries = {}
        with self._space("--resume"):
            for fmt in formats:
                path = write_table(self.out / f"{name}.{fmt}", df)
                entries[path.name] = dict(
                    rows=len(df), columns=list(map(str, df.columns)), sha256=_sha256(path)
                )
            self._update_manifest(lambda m: m["tables"].update(entries))

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``<out>/<name>.json`` and record its sha256 in ``tables.json``."""
        with self._space("--resume"):
            path = write_json(self.out / f"{name}.json", data)
            digest = _sha256(path)
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
        if expected is not None and _sha256(path) != expected["sha256"]:
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

    def _rebuild_hint(self) -> str:
        if self._has_parts():
            return "rerun with --resume to rebuild it from the finished units in parts/"
        return "restore the file, or rerun with --resume (recomputes the run)"

    def _table_mismatch(self, path: Path, expected: dict[str, Any]) -> str:
        return (
            f"{path} does not match the run that wrote it (sha256 differs; it should have "
            f"{expected['rows']} rows): {self._rebuild_hint()}."
        )

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
                if final.exists():
                    final.rename(old)
                try:
                    if any(tmp.iterdir()):
                        tmp.rename(final)
                except BaseException:
                    if old.exists():
                        old.rename(final)
                    raise
                shutil.rmtree(old, ignore_errors=True)
        finally:
            self.figures = final
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return [final / Path(p).relative_to(tmp) for p in paths]

    def has_table(self, name: str) -> bool:
        return any((self.out / f"{name}.{fmt}").is_file() for fmt in TABLE_FORMATS)

    # ------------------------------------------------------------------ verification

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
                elif _sha256(path) != digest:
                    out.append(
                        f"{path} was changed after the run wrote it (sha256 differs): "
                        f"{self._file_hint(name)}."
                    )
            for name, entry in sorted(manifest["tables"].items()):
                path = self.out / name
                if not path.is_file():
                    out.append(f"{path} is missing: {self._rebuild_hint()}.")
                elif _sha256(path) != entry["sha256"]:
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
        if owner is not None and (not here or _pid_alive(owner["pid"])):
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
        model = None if manifest is None or not manifest["model"] else _digest(manifest["model"])
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
                elif _sha256(path) != digest:
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

    # ------------------------------------------------------------------ resumable units

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
        if not isinstance(sums, dict) or not sums or not all(map(_is_sha, sums.values())):
            return None
        return model, sums

    def _intact(self, key: str, table: str, digest: str) -> bool:
        try:
            return _sha256(self.part_path(key, table)) == digest
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
                sums[name] = _sha256(write_table(self.part_path(key, name), df))
            record = {"format": RUN_FORMAT, "model": self._model_key, "tables": sums}
            write_json(self._sums_path(key), record)

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
    ) -> dict:
        """Concatenate the parts of ``keys`` (in that order) into the run's tables
        (parquet and CSV). ``expected[key]``: the tables unit ``key`` must have."""
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
            self.write_table(table, df, ("parquet", "csv"))
            out[table] = df
        return out


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path} is not a run config (a JSON object naming its kind; it holds "
            f"{_normalise(config)[:60]}): restore it."
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
