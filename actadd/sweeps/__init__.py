"""Sweeps over layers × coefficients × alignments: spec, plan, fast engine, executors,
resumable runs.

>>> spec = SweepSpec.from_toml("experiments/wedding_sweep.toml")
>>> df = run_sweep(spec, out="results/wedding_sweep")          # tidy long table
>>> summarize(df)                                                # one row per cell × metric

- :mod:`~actadd.sweeps.spec` (and :mod:`~actadd.sweeps.generation_spec`): the spec, pure
  data (importing it imports no torch);
- :mod:`~actadd.sweeps.plan`: the checks and resolved pieces that need the model;
- :mod:`~actadd.sweeps.engine`: the units and their metrics, and the executor protocol with
  :class:`~actadd.sweeps.engine.LocalExecutor`; :mod:`~actadd.sweeps.distributed`:
  :class:`~actadd.sweeps.distributed.RayExecutor`;
- :mod:`~actadd.sweeps.driver`: :func:`run_sweep`, :func:`execute`, :func:`load_results`.

The names below are imported on first use, so ``import actadd.sweeps.spec`` stays light.
``Backend`` / ``LocalBackend`` (and ``distributed.RayBackend``) are the executors' old names,
served for one release with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

__all__ = [
    "Executor",
    "GenerationSpec",
    "LocalExecutor",
    "UnitRunner",
    "Pair",
    "execute",
    "SweepSpec",
    "UNSTEERED",
    "load_results",
    "naive_next_token",
    "run_sweep",
    "sort_results",
    "summarize",
]

#: public name -> the module that defines it (imported on first use)
_HOMES: dict[str, str] = {
    "Executor": "actadd.sweeps.engine",
    "GenerationSpec": "actadd.sweeps.generation_spec",
    "LocalExecutor": "actadd.sweeps.engine",
    "UnitRunner": "actadd.sweeps.engine",
    "Pair": "actadd.config",
    "execute": "actadd.sweeps.driver",
    "SweepSpec": "actadd.sweeps.spec",
    "UNSTEERED": "actadd.sweeps.engine",
    "load_results": "actadd.sweeps.driver",
    "naive_next_token": "actadd.sweeps.engine",
    "run_sweep": "actadd.sweeps.driver",
    "sort_results": "actadd.sweeps.engine",
    "summarize": "actadd.lab.stats",
}
#: old name -> its name now (one release)
_RENAMED: dict[str, str] = {"Backend": "Executor", "LocalBackend": "LocalExecutor"}


def renamed(module: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves each old name of ``names`` (old -> new) as the
    module's new one, with a :class:`DeprecationWarning`, for one release."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is now called {names[name]} (the name Backend is the model "
            "backend, actadd.runtime.backends); the old name goes in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(sys.modules[module], names[name])

    return __getattr__


_renamed = renamed(__name__, _RENAMED)


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        return _renamed(name)
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
