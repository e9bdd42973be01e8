"""Where actadd keeps files it derives (converted weights, rebuilt tokenizers)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$ACTADD_CACHE_DIR``, else ``$XDG_CACHE_HOME/actadd``, else ``~/.cache/actadd``."""
    explicit = os.environ.get("ACTADD_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "actadd"
