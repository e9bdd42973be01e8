"""The converted-GGUF cache: content-keyed, checksummed, rebuilt when damaged.

Converting a GGUF (dequantizing every tensor, rebuilding the tokenizer) takes seconds, so
the result is kept under ``cache_dir()/gguf/<entry>/``:

- ``weights.safetensors``, ``hparams.json``, ``tokenizer/*``: what the loader reads;
- ``manifest.json``: the source GGUF's sha256, size and quantization, and the size and
  sha256 of every other file in the entry. It is written last.

**Keyed on content.** The entry's name is the GGUF's sha256 (plus the conversion version),
so a renamed, copied or touched file reuses its conversion and a changed file never does.
Hashing the 98 MB SmolLM2 file costs about 0.1 s; a process hashes each file once (memo
keyed on the file's path, inode, size, mtime and ctime).

**Verified on load.** Every load checks that each recorded file exists with its recorded
size; the first load of an entry in a process also checks every sha256 (again after any
file's stat changes). An entry that fails — a truncated or overwritten weights file, a
missing or damaged tokenizer file, a missing manifest — is rebuilt with one
:class:`~actadd.errors.ModelCacheWarning` naming its directory.

**Atomic.** An entry is converted in a temporary directory beside its final place and
renamed into it, so a killed conversion never leaves a partial entry under the final name;
temporary directories of dead processes are removed by the next build.

**A disk too small** is one :class:`~actadd.errors.ModelLoadError` line naming the cache
directory, the space the conversion needs and ``ACTADD_CACHE_DIR``: before dequantizing when
the free space is below the dequantized weights' size (4 bytes per parameter), else when a
write fails for lack of space; the temporary directory is removed either way.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from actadd._io import disk_full, file_sha256, pid_alive, replace_dir
from actadd.errors import ModelCacheWarning, ModelLoadError
from actadd.paths import cache_dir

__all__ = [
    "CONVERSION_VERSION",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "STALE_TMP_S",
    "CacheEntry",
    "build_entry",
    "check_entry",
    "conversion_bytes",
    "disk_full_error",
    "ensure_entry",
    "ensure_room",
    "entry_dir",
    "load_entry",
    "not_writable_error",
    "source_sha256",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "actadd.gguf_cache"
# bump when the conversion changes, so entries made by an older conversion are not reused
CONVERSION_VERSION = 2
# a temporary directory whose process is gone and that is this old is debris of a kill
STALE_TMP_S = 3600.0

# process-wide memos: a file's stat signature -> its sha256; an entry -> the signature
# of its files when their hashes were last verified
_SOURCE_SHA256: dict[tuple, str] = {}
_VERIFIED: dict[Path, tuple] = {}
T = TypeVar("T")


@dataclass(frozen=True)
class CacheEntry:
    """A verified cache entry and what its manifest says about the source file."""

    directory: Path
    manifest: dict[str, Any]

    def source_info(self, gguf_path: Path) -> dict[str, Any]:
        """What result files record about the model file (see ``runinfo.env_info``)."""
        source = self.manifest["source"]
        return {
            "file": str(Path(gguf_path).resolve()),
            "sha256": source["sha256"],
            "size": source["size"],
            "quantization": source.get("quantization"),
        }


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def source_sha256(path: Path) -> str:
    """sha256 of a GGUF file, computed once per process for an unchanged file."""
    path = Path(path).resolve()
    key = (str(path), *_stat_key(path))
    if key not in _SOURCE_SHA256:
        _SOURCE_SHA256[key] = file_sha256(path)
    return _SOURCE_SHA256[key]


def entry_dir(sha256: str) -> Path:
    return cache_dir() / "gguf" / f"{sha256[:24]}-v{CONVERSION_VERSION}"


# ---------------------------------------------------------------------- verification


def _read_manifest(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    path = directory / MANIFEST
    if not path.is_file():
        return None, f"{MANIFEST} is missing"
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError("not an actadd cache manifest")
        files = manifest["files"]
        if not isinstance(files, dict) or not isinstance(manifest["source"]["sha256"], str):
            raise ValueError("no file records")
        for record in files.values():
            if not isinstance(record["size"], int) or not isinstance(record["sha256"], str):
                raise ValueError("a file record lacks its size or sha256")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{MANIFEST} is unreadable ({type(exc).__name__}: {exc})"
    return manifest, None


def _signature(directory: Path, manifest: dict[str, Any]) -> tuple[tuple | None, str | None]:
    """The stat of the manifest and every recorded file, or the first missing/resized file."""
    signature = [_stat_key(directory / MANIFEST)]
    for name, record in sorted(manifest["files"].items()):
        path = directory / name
        if not path.is_file():
            return None, f"{name} is missing"
        size = path.stat().st_size
        if size != record["size"]:
            return None, f"{name} is {size} bytes, its manifest says {record['size']}"
        signature.append(_stat_key(path))
    return tuple(signature), None


def check_entry(
    directory: Path, source_sha: str | None = None, *, hashes: bool = True
) -> tuple[dict[str, Any] | None, str | None]:
    """``(manifest, None)`` for a sound cache entry, else ``(None, what is wrong)``.

    Sizes are always checked. With ``hashes``, so are the sha256s, unless the entry was
    verified earlier in this process and no file's stat has changed since: later loads in a
    process read no extra data.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None, "the entry is missing"
    manifest, problem = _read_manifest(directory)
    if problem:
        return None, problem
    if manifest.get("conversion_version") != CONVERSION_VERSION:
        return None, f"it was made by conversion {manifest.get('conversion_version')!r}"
    if source_sha is not None and manifest["source"]["sha256"] != source_sha:
        return None, "its manifest names another GGUF file"
    signature, problem = _signature(directory, manifest)
    if problem:
        return None, problem
    if hashes and _VERIFIED.get(directory) != signature:
        for name, record in sorted(manifest["files"].items()):
            if file_sha256(directory / name) != record["sha256"]:
                return None, f"{name} does not match its recorded sha256"
        _VERIFIED[directory] = signature
    return manifest, None


# ---------------------------------------------------------------------- building


def _manifest_for(directory: Path, gguf_path: Path, source_sha: str, extra: dict) -> dict:
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        files[name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return {
        "format": MANIFEST_FORMAT,
        "conversion_version": CONVERSION_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {
            "name": gguf_path.name,
            "converted_from": str(gguf_path.resolve()),
            "size": gguf_path.stat().st_size,
            "sha256": source_sha,
            **extra,
        },
        "files": files,
    }


def _remove_debris(parent: Path) -> None:
    """Remove temporary directories left by conversions that were killed."""
    now = time.time()
    for tmp in parent.glob(".*.tmp-*"):
        try:
            pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-", 1)[0])
            stale = now - tmp.stat().st_mtime > STALE_TMP_S
        except (ValueError, IndexError, OSError):
            continue
        if stale and not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def not_writable_error(parent: Path, exc: OSError) -> ModelLoadError:
    reason = exc.strerror or type(exc).__name__
    return ModelLoadError(
        f"Cannot write the converted-model cache in {parent} ({reason}); set "
        "ACTADD_CACHE_DIR to a writable directory."
    )


def conversion_bytes(source: Any) -> int | None:
    """A lower bound on what converting a GGUF writes: every tensor dequantized to float32
    (SmolLM2-135M: 538 MB of weights, then a 3.5 MB tokenizer). ``source`` is an open
    ``gguf.GGUFReader`` or a path (parsing one takes seconds for a large vocabulary).
    ``None`` if its tensors cannot be read (the conversion then says what is wrong)."""
    try:
        import gguf

        reader = gguf.GGUFReader(str(source)) if isinstance(source, (str, Path)) else source
        return 4 * sum(int(t.n_elements) for t in reader.tensors)
    except Exception:
        return None


def ensure_room(out: Path, needed: int | None, gguf_path: Path) -> None:
    """Before a conversion writes into ``out`` (a temporary directory in the cache): one
    :class:`ModelLoadError` line if its disk has less than ``needed`` bytes free."""
    if needed is not None and shutil.disk_usage(out).free < needed:
        raise disk_full_error(Path(out).parent, gguf_path, needed)


def _size(n: int) -> str:
    """``n`` bytes for people: ``"118.4 KiB"``, ``"513.1 MiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError


def disk_full_error(parent: Path, gguf_path: Path, needed: int | None) -> ModelLoadError:
    """The disk-full line: the cache directory, the space needed and free, the way out."""
    need = f"at least {_size(needed)}" if needed else "more space than is free"
    try:
        free = f" and {_size(shutil.disk_usage(parent).free)} is free there"
    except OSError:
        free = ""
    return ModelLoadError(
        f"The converted-model cache in {parent} has no room for {gguf_path.name}: converting "
        f"it needs {need}{free}. Free some space, or set ACTADD_CACHE_DIR to a directory on a "
        "larger disk; nothing was left in the cache."
    )


def build_entry(
    gguf_path: Path,
    source_sha: str,
    target: Path,
    convert: Callable[[Path, Path], dict[str, Any]],
) -> None:
    """Convert ``gguf_path`` into ``target`` atomically.

    ``convert(gguf_path, out_dir)`` writes the entry's files and returns what the manifest
    should record about the source (e.g. its quantization); it calls :func:`ensure_room`
    first. A write that fails for lack of space is one :func:`disk_full_error` line.
    """
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=parent))
    except OSError as exc:
        if disk_full(exc):
            raise disk_full_error(parent, gguf_path, conversion_bytes(gguf_path)) from None
        raise not_writable_error(parent, exc) from None
    try:
        _remove_debris(parent)
        extra = convert(gguf_path, tmp)
        for path in [tmp, *tmp.rglob("*")]:  # mkdtemp makes 0700; a cache may be shared
            path.chmod(0o755 if path.is_dir() else 0o644)
        manifest = _manifest_for(tmp, gguf_path, source_sha, extra)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        signature, _ = _signature(tmp, manifest)  # stats survive the rename below
        _install(tmp, target, source_sha)
        if signature is not None:
            _VERIFIED[target] = signature  # hashed a moment ago: no need to read it again
    except Exception as exc:
        if disk_full(exc):  # an OSError, or safetensors' SafetensorError
            shutil.rmtree(tmp, ignore_errors=True)  # first, so the free space is reported right
            raise disk_full_error(parent, gguf_path, conversion_bytes(gguf_path)) from None
        if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS):
            raise not_writable_error(parent, exc) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, target: Path, source_sha: str) -> None:
    try:
        os.rename(tmp, target)  # atomic; fails when target exists
        return
    except OSError:
        if not target.exists():
            raise
    # a damaged entry is in the way, or another process has just installed a sound one
    if check_entry(target, source_sha)[1] is None:
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-old-", dir=tmp.parent))
    try:
        replace_dir(tmp, target, old / "entry")
    finally:
        shutil.rmtree(old, ignore_errors=True)


def ensure_entry(gguf_path: Path, convert: Callable[[Path, Path], dict[str, Any]]) -> CacheEntry:
    """The verified cache entry of ``gguf_path``, converting or rebuilding it if needed."""
    return load_entry(gguf_path, convert, lambda entry: entry)[1]


def load_entry(
    gguf_path: Path,
    convert: Callable[[Path, Path], dict[str, Any]],
    read: Callable[[CacheEntry], T],
) -> tuple[T, CacheEntry]:
    """``read`` the sound cache entry of ``gguf_path``: ``(read(entry), entry)``.

    A missing entry is converted; a damaged one is rebuilt with a
    :class:`~actadd.errors.ModelCacheWarning`. On an entry not yet verified in this process,
    the sha256s are computed in a thread while ``read`` runs, so hashing costs little
    wall time; whatever ``read`` made of a damaged entry is thrown away.
    """
    gguf_path = Path(gguf_path)
    source_sha = source_sha256(gguf_path)
    target = entry_dir(source_sha)
    manifest, problem = check_entry(target, source_sha, hashes=False)
    if manifest is not None:
        with ThreadPoolExecutor(1, thread_name_prefix="actadd-verify") as pool:
            pending = pool.submit(check_entry, target, source_sha)
            try:
                result, error = read(CacheEntry(target, manifest)), None
            except Exception as exc:  # judged after the hashes: a damaged file explains it
                result, error = None, exc
            manifest, problem = pending.result()
        if manifest is not None:
            if error is not None:
                raise error
            return result, CacheEntry(target, manifest)
    if target.exists():
        warnings.warn(
            f"Rebuilding the converted-model cache entry {target}: {problem}.",
            ModelCacheWarning,
            stacklevel=4,  # load_entry <- load_gguf <- load_model <- the caller
        )
    build_entry(gguf_path, source_sha, target, convert)
    manifest, problem = check_entry(target, source_sha)
    if manifest is None:  # only if something keeps damaging the cache
        raise ModelLoadError(f"The converted-model cache entry {target} is unusable: {problem}.")
    entry = CacheEntry(target, manifest)
    return read(entry), entry
