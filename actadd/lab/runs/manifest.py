"""A run's manifest (``tables.json``) and the checksums it records.

Format 2 (:data:`RUN_FORMAT`) records each table's rows, columns and sha256, the sha256 of
``config.json``, ``env.json`` and every other JSON file of the run, the model the run was
made with (:func:`actadd.lab.runinfo.model_identity`) and whether the run finished writing
its tables (``complete``), and what making it cost (``compute``: per start of the run, its
wall and CPU seconds, peak memory and threads, kept current as units finish). A flat
``{file: entry}`` manifest of a run made before format 2 is read as format 1: its tables
are checked, its config and env files cannot be.

:class:`RunManifest` is the part of :class:`actadd.lab.runs.RunDir` that reads and updates
it (and ``env.json``); the functions here are the checks and digests the other parts share.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actadd.errors import ConfigError
from actadd.lab.runinfo import write_json

__all__ = [
    "IDENTITY",
    "MANIFEST",
    "RUN_FORMAT",
    "RunManifest",
    "describe_model",
    "identity_differences",
    "is_sha",
    "model_key",
    "normalise",
]

MANIFEST = "tables.json"
#: the manifest format this package writes (1: the flat manifest of older runs)
RUN_FORMAT = 2


def normalise(config: Any) -> str:
    """``config`` as canonical JSON (sorted keys): equal configs give equal strings."""
    return json.dumps(config, sort_keys=True, default=str)


def model_key(identity: Any) -> str:
    """A short sha256 of a model's identity (:func:`actadd.lab.runinfo.model_identity`): the
    key each finished unit records for the model that computed it."""
    return hashlib.sha256(normalise(identity).encode()).hexdigest()[:16]


def is_sha(value: Any) -> bool:
    """Whether ``value`` is a sha256 in hex."""
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _table_entry_ok(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("rows"), int)
        and isinstance(entry.get("columns"), list)
        and all(isinstance(c, str) for c in entry["columns"])
        and is_sha(entry.get("sha256"))
    )


# identity fields compared on resume (legacy env.json records all but the weights)
IDENTITY = ("name", "backend", "n_layers", "d_model", "d_vocab", "file_sha256", "weights_sha256")


def identity_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The identity fields both models record and that differ."""
    return [k for k in IDENTITY if a.get(k) is not None and b.get(k) is not None and a[k] != b[k]]


def describe_model(model: Mapping[str, Any], fields: list[str]) -> str:
    """The model, named by the identity ``fields`` that tell it apart."""
    if "file_sha256" in fields:
        return f"{model.get('name')} (file sha256 {model['file_sha256']})"
    if "weights_sha256" in fields:
        return f"{model.get('name')} (weights sha256 {model['weights_sha256']})"
    shown = ", ".join(f"{k} {model.get(k)}" for k in fields if k != "name")
    return f"{model.get('name')}" + (f" ({shown})" if shown else "")


def _reset_peak_rss() -> bool:
    """Start this process's peak resident memory (Linux's ``VmHWM``) afresh; False where the
    system cannot (it is then the process's peak since it began)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets the peak RSS only
    except OSError:
        return False
    return True


def _peak_rss_mb() -> int:
    """The peak resident memory since ``max_rss_since``, MB: Linux's ``VmHWM`` (the one
    peak ``clear_refs`` resets; ``ru_maxrss`` also keeps the peak any exited thread saw),
    else ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 1024)


class RunManifest:
    """The manifest and ``env.json`` of a run directory ``self.out`` (a part of
    :class:`actadd.lab.runs.RunDir`)."""

    out: Path

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
                and all(is_sha(v) for v in files.values())
                and isinstance(doc.get("complete"), bool)
                and isinstance(doc.get("model"), (dict, type(None)))
            ):
                return doc
        elif isinstance(doc, dict) and all(_table_entry_ok(e) for e in doc.values()):
            return {"format": 1, "complete": None, "model": None, "files": {}, "tables": doc}
        raise ConfigError(f"{path} is not a run manifest (it holds {normalise(doc)[:60]}): {fix}.")

    def _start_compute(self, manifest: dict[str, Any], revision: str | None = None) -> None:
        """Open this process's segment in ``manifest["compute"]`` (one per start: a resumed
        run adds one; :meth:`_record_compute` keeps it current), naming the code ``revision``
        it computes with, so a run resumed at another revision says so (the provenance check
        refuses it as a reference run)."""
        compute = manifest.get("compute", [])
        if not isinstance(compute, list):
            raise ConfigError(
                f"{self.out / MANIFEST}: its compute record is not a list of starts: restore "
                "the file, or delete the key and rerun with --resume."
            )
        self._clock = (time.perf_counter(), time.process_time())
        # the peak is this start's, not an earlier run's in the same process (actadd suite)
        since = "start" if _reset_peak_rss() else "process"
        manifest["compute"] = compute
        compute.append(
            {
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "revision": revision,
                "max_rss_since": since,
                **self._spent(),
            }
        )

    def _spent(self) -> dict[str, Any]:
        wall, cpu = self._clock
        return {
            "wall_s": round(time.perf_counter() - wall, 1),
            "cpu_s": round(time.process_time() - cpu, 1),
            "max_rss_mb": _peak_rss_mb(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "cpus": os.cpu_count(),
        }

    def _record_compute(self, manifest: dict[str, Any]) -> None:
        """This segment's wall and CPU seconds, peak memory and threads so far: a killed
        run keeps what its segments cost up to their last finished unit."""
        if getattr(self, "_clock", None) is None or not manifest.get("compute"):
            return
        manifest["compute"][-1].update(self._spent())

    def _update_manifest(self, change: Callable[[dict[str, Any]], None]) -> None:
        manifest = self._read_manifest() or self._new_manifest()
        manifest["format"] = RUN_FORMAT
        change(manifest)
        self._record_compute(manifest)
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
        return {k: model.get("model_sha256" if k == "file_sha256" else k) for k in IDENTITY}
