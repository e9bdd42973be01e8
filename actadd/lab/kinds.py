"""Experiment kinds: how a config becomes a run directory, and its figures.

Each config file in ``experiments/`` names a ``kind`` (:func:`read_config` reads one without
importing any kind, so a config is checked before torch loads); :data:`KIND_MODULES` maps the
name to the module that defines it as ``KIND`` (a study's ``kind`` module under
``actadd/studies/``). Modules are imported on
first use (they pull in torch and TransformerLens), and no kind imports
:mod:`actadd.lab.runner`: the dependency runs one way, runner → kinds → studies.

A kind follows :class:`Kind`. :func:`actadd.lab.runner.run_experiment` drives it:
``parse`` (no model) → open the run directory → load the model → ``check`` → ``start`` the
directory (``config.json``, ``env.json``) → ``run`` (tables) → ``figures``. Figures are drawn
from the saved tables alone, so ``actadd figures`` needs no model.
"""

from __future__ import annotations

import copy
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from actadd.config import read_toml
from actadd.errors import ConfigError, suggest

__all__ = ["KIND_MODULES", "BaseKind", "Kind", "get_kind", "merge", "read_config"]

KIND_MODULES: dict[str, str] = {
    "sweep": "actadd.studies.sweep.kind",
    "demo": "actadd.studies.paper.demo",
    "word_count": "actadd.studies.paper.word_count",
    "perplexity": "actadd.studies.perplexity.kind",
    "sentiment": "actadd.studies.paper.sentiment",
    "capability": "actadd.studies.capability.kind",
    "failures": "actadd.studies.paper.failures",
    "alignment": "actadd.studies.paper.alignment",
    "token_injection": "actadd.studies.token_injection.kind",
    "pad_confound": "actadd.studies.pad_confound.kind",
    "behaviours": "actadd.studies.behaviours.kind",
    "method_null": "actadd.studies.method_null.kind",
}


@runtime_checkable
class Kind(Protocol):
    """What an experiment kind provides (see the module docstring for the order of calls)."""

    name: str
    description: str
    # True when ``run`` takes ``backend=`` (its work is resumable sweep units that can run on
    # Ray actors); other kinds always run in the calling process
    distributed: bool

    def parse(self, config: dict[str, Any]) -> Any:
        """Validate everything that needs no model; return the kind's spec."""

    def saved_config(self, spec: Any) -> dict[str, Any]:
        """The JSON-able config that ``config.json`` holds (compared on resume)."""

    def check(self, spec: Any, model) -> None:
        """Validate what needs the model (layer ranges, single-token words)."""

    def run(self, spec: Any, model, run) -> None:
        """Compute and write the run's tables into ``run`` (a :class:`actadd.lab.runs.RunDir`)."""

    def figures(self, run) -> list[Path]:
        """Draw the figures into ``run.figures`` from the saved tables alone."""

    def claims(self, run) -> list:
        """The run's findings as :class:`actadd.lab.claims.Claim` s, from the saved tables alone
        (before Benjamini–Hochberg; :func:`actadd.lab.claims.adjust` applies it)."""

    # Optional, for kinds that write resumable parts: ``part_tables(key)``, the tables the
    # unit ``key`` must have (``actadd verify`` checks each unit's checksums list them all).


class BaseKind:
    """Defaults for a kind whose spec is its (validated) config dict."""

    name: str = ""
    description: str = ""
    distributed: bool = False

    def saved_config(self, spec: Any) -> dict[str, Any]:
        return {**spec, "kind": self.name}

    def check(self, spec: Any, model) -> None:
        return None

    def figures(self, run) -> list[Path]:
        return []

    def claims(self, run) -> list:
        return []


def get_kind(name: Any) -> Kind:
    """The kind called ``name``; a ConfigError lists the known ones."""
    if not isinstance(name, str) or name not in KIND_MODULES:
        raise ConfigError(
            f"Unknown experiment kind {name!r}{suggest(name, KIND_MODULES)}; known: "
            f"{sorted(KIND_MODULES)}."
        )
    return import_module(KIND_MODULES[name]).KIND


def read_config(path: str | Path, quick: bool = False) -> dict[str, Any]:
    """A TOML config as a dict (``name`` defaults to the file's stem; ``[quick]`` merged in
    with ``quick``)."""
    path = Path(path)
    raw = read_toml(path)
    quick_table = raw.pop("quick", {})
    if quick:
        raw = merge(raw, quick_table)
    raw.setdefault("name", path.stem)
    if "kind" not in raw:
        raise ConfigError(f"{path}: missing 'kind'; known kinds: {sorted(KIND_MODULES)}.")
    return raw


def merge(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s keys (nested tables merged, not replaced); a copy."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out
