"""actadd: activation-addition steering on TransformerLens."""

from actadd._compat import silence_known_warnings

silence_known_warnings()

from actadd.errors import (  # noqa: E402
    ActAddError,
    ConfigError,
    ModelLoadError,
    SteeringError,
    VectorFileError,
)
from actadd.generate import GREEDY, PAPER_SAMPLING, Sampling, compare, generate  # noqa: E402
from actadd.models import load_model  # noqa: E402
from actadd.steer import Align, Steering, steering  # noqa: E402
from actadd.vectors import SteeringVector  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ActAddError",
    "ConfigError",
    "ModelLoadError",
    "SteeringError",
    "VectorFileError",
    "load_model",
    "GREEDY",
    "PAPER_SAMPLING",
    "Sampling",
    "compare",
    "generate",
    "Align",
    "Steering",
    "SteeringVector",
    "steering",
]
