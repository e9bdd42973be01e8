"""One writer at a time: the lock of a run directory (``<out>/.lock``).

The lock file holds the writer's pid, host, phase and start time, and is created whole
(written beside it, then hard-linked into place), so no one reads a half-written lock. A
second writer is refused with a clear error, or waits while the holder is only drawing
figures (phase ``"figures"``, up to :data:`FIGURES_WAIT` seconds); a lock left by a killed
process on this host is detected (its pid is gone) and taken over.

:class:`RunLock` is that part of :class:`actadd.lab.runs.RunDir`.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actadd._io import pid_alive
from actadd.errors import ConfigError
from actadd.lab.runinfo import write_json

__all__ = ["FIGURES_WAIT", "LOCK", "RunLock"]

LOCK = ".lock"
#: how long a writer waits for the lock while its holder is drawing figures (seconds)
FIGURES_WAIT = 300.0


class RunLock:
    """The lock of a run directory ``self.out`` (a part of :class:`actadd.lab.runs.RunDir`;
    ``self._locked`` says whether this object holds it)."""

    out: Path
    _locked: bool

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
            if host == me["host"] and not pid_alive(pid):
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
    def hold(self, phase: str = "figures", wait: float = FIGURES_WAIT) -> Iterator[RunLock]:
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

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
