"""actadd: activation-addition steering on TransformerLens.

The public names below are imported on first use (PEP 562), so ``import actadd`` and the
``actadd`` command start in well under a second; torch and TransformerLens load when a
model, a vector or the steering context is first touched.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from actadd import _legacy
from actadd._compat import silence_known_warnings
from actadd.errors import (
    ActAddError,
    ConfigError,
    ModelLoadError,
    SteeringError,
    VectorFileError,
)

silence_known_warnings()
_legacy.install()

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "GREEDY": "actadd.core.generation",
    "PAPER_SAMPLING": "actadd.core.generation",
    "Sampling": "actadd.core.generation",
    "compare": "actadd.core.generation",
    "generate": "actadd.core.generation",
    "load_model": "actadd.models",
    "Align": "actadd.core.placement",
    "Placement": "actadd.core.placement",
    "playground": "actadd.ui.panel",
    "Steering": "actadd.core.steering",
    "steering": "actadd.core.steering",
    "SteeringVector": "actadd.core.vectors",
}

__all__ = [
    "ActAddError",
    "ConfigError",
    "ModelLoadError",
    "SteeringError",
    "VectorFileError",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'actadd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from actadd.core.generation import (  # noqa: F401
        GREEDY,
        PAPER_SAMPLING,
        Sampling,
        compare,
        generate,
    )
    from actadd.core.placement import Align, Placement  # noqa: F401
    from actadd.core.steering import Steering, steering  # noqa: F401
    from actadd.core.vectors import SteeringVector  # noqa: F401
    from actadd.models import load_model  # noqa: F401
    from actadd.ui.panel import playground  # noqa: F401
