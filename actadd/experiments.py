"""Experiment kinds: how a TOML config becomes a run directory, and its figures.

Each config file in ``experiments/`` names a ``kind``. A kind is a pair of functions:
``run(config, out, resume) -> None`` computes and writes tables (with ``config.json`` and
``env.json``), ``figures(out) -> paths`` redraws its figures from the saved tables alone.

A config may carry a ``[quick]`` table: with ``--quick`` its keys replace the top-level
ones (nested tables merge), so the CI-sized run sits next to the full one.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actadd.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    run: Callable[[dict[str, Any], Path, bool], None]
    figures: Callable[[Path], list[Path]]
    description: str


KINDS: dict[str, Kind] = {}


def register(name: str, description: str):
    """Decorator for a class/namespace with ``run`` and ``figures`` staticmethods."""

    def deco(obj):
        KINDS[name] = Kind(obj.run, obj.figures, description)
        return obj

    return deco


def read_config(path: str | Path, quick: bool = False) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No config file at {path}.")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    quick_table = raw.pop("quick", {})
    if quick:
        raw = merge(raw, quick_table)
    raw.setdefault("name", path.stem)
    if "kind" not in raw:
        raise ConfigError(f"{path}: missing 'kind'; known kinds: {sorted(KINDS)}.")
    return raw


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def kind_of(config: dict[str, Any]) -> Kind:
    _load_builtin_kinds()
    name = config.get("kind")
    if name not in KINDS:
        raise ConfigError(f"Unknown experiment kind {name!r}; known: {sorted(KINDS)}.")
    return KINDS[name]


def run_config(
    path: str | Path, out: str | Path, *, quick: bool = False, resume: bool = False
) -> Path:
    config = read_config(path, quick)
    kind_of(config).run(config, Path(out), resume)
    return Path(out)


def figures_for(out: str | Path) -> list[Path]:
    """Redraw a run directory's figures from its saved tables."""
    import json

    out = Path(out)
    config = json.loads((out / "config.json").read_text())
    return kind_of(config).figures(out)


def _load_builtin_kinds() -> None:
    """Import the modules that register kinds (kept lazy: they pull in heavy deps)."""
    import actadd.kinds  # noqa: F401
