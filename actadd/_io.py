"""Small file-system helpers shared by every tier: a file's sha256, whether a process is
alive, whether an error means a full disk, and the three ways actadd puts a file or a
directory in place without anyone ever seeing it half-written.

- :func:`atomic_write`: a file, written beside its target and renamed over it;
- :func:`build_dir`: a directory made once (the first process to finish it wins);
- :func:`replace_dir`: a directory put in place of another one, which is restored if the
  swap fails.

:func:`read_text` and :func:`read_toml` read the UTF-8 files every config reader reads (the
config vocabulary re-exports them: :mod:`actadd.config`).

Nothing here imports the rest of actadd except :mod:`actadd.errors`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actadd.errors import ConfigError, DiskFullError

__all__ = [
    "atomic_write",
    "build_dir",
    "disk_full",
    "file_sha256",
    "pid_alive",
    "read_text",
    "read_toml",
    "replace_dir",
]


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the user's quota) is full: an ``OSError`` with
    ``ENOSPC`` / ``EDQUOT``, or safetensors' ``SafetensorError``, which carries the OS error
    only in its text ("Error while serializing: I/O error: No space left on device ...")."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if type(exc).__name__ != "SafetensorError":
        return False
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of the file at ``path`` (hex)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write ``path`` through ``write(tmp)`` into a temporary file beside it and a rename
    (readable by everyone, 0644). A full device is a :class:`DiskFullError` naming ``path``;
    the temporary file is removed either way."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if disk_full(exc):
            raise DiskFullError(f"no space left on device writing {path}") from None
        raise
    return path


def build_dir(target: Path, build: Callable[[Path], object], *, prefix: str = ".tmp-") -> Path:
    """Make the directory ``target`` once: ``build(tmp)`` fills a new directory beside it,
    which is then renamed to ``target``, so no one sees it half-built. If another process
    made ``target`` first, theirs is kept and ours removed. An ``OSError`` creating the
    temporary directory (an unwritable or full disk) propagates. Returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(target)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def replace_dir(new: Path, target: Path, aside: Path) -> None:
    """Put the directory ``new`` in place of ``target``: ``target`` (if there is one) is
    renamed to ``aside`` first, put back if renaming ``new`` fails, and removed after."""
    try:
        target.rename(aside)
        moved = True
    except FileNotFoundError:  # none there (or another process moved it first)
        moved = False
    try:
        new.rename(target)
    except BaseException:
        if moved:
            aside.rename(target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def read_text(path: Path, what: str = "file") -> str:
    """A UTF-8 text file, without the byte-order mark some editors write first (every TOML,
    CSV and JSONL reader of the project reads through here)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; a {what} is UTF-8.") from None


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict, or a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No {what} at {path}.")
    try:
        return tomllib.loads(read_text(path, what))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
