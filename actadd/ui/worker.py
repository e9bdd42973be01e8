"""One background thread for the playground's work: the newest request wins.

The model is shared, and a steering context patches its ``forward``, so requests run one
at a time on a single thread. Each request belongs to a *channel* (the panel's ``"run"``
and ``"map"``); within a channel:

- a newer request supersedes an older one: a pending older one is dropped unrun, and a
  running one sees its ``checkpoint()`` raise :class:`Superseded` at its next stage;
- a result is delivered only if its request is still the channel's newest when it ends, so
  a stale result never overwrites a newer one, even from a job that ignores ``checkpoint``.

Callbacks run on the worker thread; the panel's callbacks only set widget values. An
exception in ``on_result`` goes to ``on_error``; one in ``on_error`` or ``on_busy`` is logged:
a failing callback never stops the thread or leaves :meth:`LatestWorker.wait` blocked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Job", "LatestWorker", "Superseded"]

_log = logging.getLogger(__name__)
Job = Callable[[Callable[[], None]], Any]  # job(checkpoint) -> result


class Superseded(Exception):
    """Raised by ``checkpoint()`` inside a job that a newer request of its channel replaced."""


@dataclass
class _Request:
    ticket: int
    channel: str
    job: Job


class LatestWorker:
    """Runs submitted jobs on one daemon thread, newest per channel wins (module docstring).

    ``on_result(channel, ticket, result)`` and ``on_error(channel, ticket, exc)`` are called
    for the newest request of a channel only; ``on_busy(channel, busy)`` when a channel's job
    starts (``True``) and when the channel has nothing left to do (``False``).
    """

    def __init__(
        self,
        on_result: Callable[[str, int, Any], None],
        on_error: Callable[[str, int, BaseException], None],
        on_busy: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._on_result, self._on_error = on_result, on_error
        self._on_busy = on_busy or (lambda channel, busy: None)
        self._cv = threading.Condition()
        self._ticket = 0
        self._latest: dict[str, int] = {}
        self._pending: list[_Request] = []
        self._running: _Request | None = None
        self._thread: threading.Thread | None = None

    def submit(self, job: Job, channel: str = "run") -> int:
        """Queue ``job`` as the newest request of ``channel``; returns its ticket."""
        with self._cv:
            self._ticket += 1
            self._latest[channel] = self._ticket
            # an older request of the channel that has not started never will
            self._pending = [r for r in self._pending if r.channel != channel]
            self._pending.append(_Request(self._ticket, channel, job))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="actadd-ui", daemon=True)
                self._thread.start()
            self._cv.notify_all()
            return self._ticket

    def is_current(self, channel: str, ticket: int) -> bool:
        with self._cv:
            return self._latest.get(channel) == ticket

    def busy(self, channel: str | None = None) -> bool:
        with self._cv:
            return any(
                r is not None and (channel is None or r.channel == channel)
                for r in [self._running, *self._pending]
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every request has run (or was dropped); ``False`` on timeout."""
        with self._cv:
            return self._cv.wait_for(
                lambda: self._running is None and not self._pending, timeout=timeout
            )

    def _loop(self) -> None:
        while True:
            with self._cv:
                if not self._pending:
                    self._thread = None
                    self._cv.notify_all()
                    return
                request = self._running = self._pending.pop(0)
            try:
                self._run(request)
                with self._cv:
                    idle = not any(r.channel == request.channel for r in self._pending)
                if idle:  # before wait() can return, so a caller that waited sees it
                    _safely(self._on_busy, request.channel, False)
            finally:  # whatever happened, wait() must not block on this request
                with self._cv:
                    self._running = None
                    self._cv.notify_all()

    def _run(self, request: _Request) -> None:
        channel, ticket = request.channel, request.ticket

        def checkpoint() -> None:
            if not self.is_current(channel, ticket):
                raise Superseded(f"{channel} request {ticket} was superseded")

        _safely(self._on_busy, channel, True)
        try:
            result = request.job(checkpoint)
        except Superseded:
            return
        except Exception as exc:  # shown to the user as one line; the thread goes on
            if self.is_current(channel, ticket):
                _safely(self._on_error, channel, ticket, exc)
            return
        if self.is_current(channel, ticket):
            try:
                self._on_result(channel, ticket, result)
            except Exception as exc:  # showing the result failed: say so, as for a job
                _safely(self._on_error, channel, ticket, exc)


def _safely(callback: Callable[..., None], *args: Any) -> None:
    """Call a callback; an exception in it is logged, never raised into the worker thread
    (a dead thread would leave the panel busy and :meth:`LatestWorker.wait` blocked)."""
    try:
        callback(*args)
    except Exception:
        _log.exception("actadd.ui worker callback %s failed", getattr(callback, "__name__", ""))
