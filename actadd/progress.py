"""One progress bar for every slow loop: sweeps, generation and the analyses.

``progress=None`` (the default everywhere) shows tqdm's bar on a terminal or in a notebook,
and, when stderr is neither (a log file, CI, ``make run > run.log``), a plain line at most
every :data:`LOG_INTERVAL_S` seconds, none at all for a loop shorter than that, so a long
run written to a log still says how far it is without filling the log. ``True`` always
shows tqdm's bar; ``False`` hides it.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

__all__ = ["LOG_INTERVAL_S", "bar"]

LOG_INTERVAL_S = 30.0


class _Lines:
    """A text stream that turns tqdm's carriage-return redraws into whole lines."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _interactive(stream: Any) -> bool:
    """A terminal, or a Jupyter kernel (where tqdm.auto draws a widget)."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return True
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def bar(total: int, desc: str, unit: str, progress: bool | None = None, **kw: Any) -> tqdm:
    """A tqdm bar over ``total`` steps (a context manager; ``update(n)``, ``close()``)."""
    if progress is False:
        return tqdm(total=total, desc=desc, unit=unit, disable=True, **kw)
    if progress is None and not _interactive(sys.stderr):
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=_Lines(sys.stderr),
            mininterval=LOG_INTERVAL_S,
            delay=LOG_INTERVAL_S,
            ascii=True,
            ncols=100,
            **kw,
        )
    return tqdm(total=total, desc=desc, unit=unit, **kw)
