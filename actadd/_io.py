"""Small I/O helpers shared by every tier (nothing here imports the rest of actadd)."""

from __future__ import annotations

import errno


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
