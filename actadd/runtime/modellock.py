"""One thread at a time on a model: the lock that every actadd entry point takes.

A steering context patches the model it steers (its ``forward`` and hooks on its hook
points), the fast path patches its blocks, and ``run_with_cache`` hooks it for the call: all
of that is shared by every thread that holds the model. So each of these holds the model's
lock for as long as it runs: :func:`actadd.steering` (from entering the ``with`` to leaving
it), :func:`actadd.generate` / :func:`actadd.compare`,
:func:`actadd.core.generation.generate_tokens`,
:func:`actadd.runtime.fast.fast_path` (the sweep engine's batched next-token path and
:class:`actadd.core.prefix.PrefixBatch` run inside it), :func:`actadd.runtime.forward.residuals` and
:func:`actadd.runtime.forward.last_logits`.

**A second thread waits its turn**; the lock is re-entrant, so one thread nests these
freely (``generate`` inside ``with steering(...)``). Everything is left exactly as it was
before the next holder starts, so a waiting caller computes what it would have computed
alone. A *raw* ``model(...)`` from another thread bypasses the lock: while a steering
context is active it raises :class:`~actadd.errors.SteeringError` instead of being
steered (see :mod:`actadd.core.steering`), and the fast path runs TransformerLens's own block
forward for it.

Do not wait, inside ``with steering(model, ...)``, on another thread that uses the same
model through actadd: it waits for the context to close. If the thread holding the lock
ends without releasing it (a context entered by hand and never left), a waiting caller
gets one error line instead of waiting for ever.

The lock lives beside the model (a weak mapping), never on it, so it adds no state to the
model.
"""

from __future__ import annotations

import threading
import weakref

from actadd.errors import SteeringError

__all__ = ["ModelLock", "exclusive", "model_lock"]

# how often a waiting caller checks that the holder is still alive (seconds)
_POLL = 0.2


class ModelLock:
    """A re-entrant lock that knows its holder thread (so a waiter can name it, and notice
    that it ended while holding the lock)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cv = threading.Condition(threading.Lock())
        self._owner: threading.Thread | None = None
        self._depth = 0

    @property
    def owner(self) -> threading.Thread | None:
        """The thread holding the lock, or ``None``."""
        return self._owner

    def acquire(self) -> threading.Thread:
        """Take the lock for the calling thread, waiting while another thread holds it.
        Returns the calling thread (pass it to :meth:`release`)."""
        me = threading.current_thread()
        with self._cv:
            while self._owner is not None and self._owner is not me:
                owner = self._owner
                if not owner.is_alive():
                    raise SteeringError(
                        f"Model {self.name} is held by thread {owner.name!r}, which ended "
                        "inside a steering context without leaving it: exit that context "
                        "(ctx.__exit__()) from any thread, or reload the model."
                    )
                self._cv.wait(_POLL)
            self._owner = me
            self._depth += 1
        return me

    def release(self, thread: threading.Thread) -> None:
        """Give back one level taken by ``thread`` (the value :meth:`acquire` returned);
        a steering context left on another thread than the one that entered it gives back
        its entering thread's level."""
        with self._cv:
            if self._owner is not thread or self._depth == 0:
                return  # nothing of ``thread``'s is held (already given back)
            self._depth -= 1
            if not self._depth:
                self._owner = None
                self._cv.notify_all()


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model) -> ModelLock:
    """The lock of ``model`` (made on first use)."""
    lock = _LOCKS.get(model)
    if lock is None:
        with _LOCKS_GUARD:  # two threads asking first must get the same lock
            lock = _LOCKS.get(model)
            if lock is None:
                name = getattr(getattr(model, "cfg", None), "model_name", type(model).__name__)
                lock = _LOCKS[model] = ModelLock(repr(name))
    return lock


class exclusive:  # noqa: N801 - used as a function: ``with exclusive(model):``
    """Hold ``model``'s lock inside the ``with`` block (waiting for another thread first)."""

    __slots__ = ("_lock", "_thread")

    def __init__(self, model) -> None:
        self._lock = model_lock(model)

    def __enter__(self) -> None:
        self._thread = self._lock.acquire()

    def __exit__(self, *exc) -> None:
        self._lock.release(self._thread)
