"""Lazy module attributes: a package names what it exports and where each name lives, and a
name's module is imported on first use (so ``import actadd`` and the config checks import no
torch). One place for the pattern, and for its error: a name whose module needs an optional
extra that is not installed says which extra to install.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["EXTRAS", "lazy_module"]

#: the optional extras, by the top-level module that is missing without them (pyproject.toml)
EXTRAS = {"ipywidgets": "playground", "ray": "ray", "llama_cpp": "llamacpp"}


def lazy_module(
    module: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module ``module`` whose globals are ``namespace``:
    a name of ``homes`` ({name: the module it lives in}) is imported on first use and kept in
    ``namespace``, so later lookups skip ``__getattr__``; any other name is an AttributeError."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        try:
            home = import_module(homes[name])
        except ModuleNotFoundError as e:
            extra = EXTRAS.get((e.name or "").split(".")[0])
            if extra is None:
                raise
            raise ModuleNotFoundError(
                f"{module}.{name} needs the {extra!r} extra ({e.name} is not installed): "
                f"pip install 'actadd[{extra}]'",
                name=e.name,
            ) from e
        value = getattr(home, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
