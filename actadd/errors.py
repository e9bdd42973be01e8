"""Exceptions raised by actadd. Each message says what was wrong and what is allowed.

:class:`Validated` marks the arguments that a function checks itself, so that a wrong type
gets the same clear error as a wrong value.
"""

from typing import Annotated

__all__ = [
    "ActAddError",
    "ChatTemplateError",
    "ConfigError",
    "DiskFullError",
    "FigureSubsetWarning",
    "FigureTextWarning",
    "LeadingTokenWarning",
    "ModelCacheWarning",
    "ModelLoadError",
    "SteeringError",
    "UncheckedRunWarning",
    "Validated",
    "VectorFileError",
    "VectorFileWarning",
]


class ActAddError(Exception):
    """Base class of every error actadd raises on purpose."""


class ModelLoadError(ActAddError, ValueError):
    """A model name, path or file could not be loaded."""


class SteeringError(ActAddError, ValueError):
    """A steering vector or its application was given bad input."""


class VectorFileError(ActAddError, ValueError):
    """A saved steering-vector file is missing, corrupt, or belongs to another model."""


class ConfigError(ActAddError, ValueError):
    """An experiment or sweep configuration is invalid."""


class ChatTemplateError(ActAddError, ValueError):
    """A model has no chat template, or chat messages are malformed."""


class DiskFullError(ActAddError, OSError):
    """The device ran out of space while a result file was written; nothing half-written is
    left (files are written to a temporary name and renamed into place)."""


class ModelCacheWarning(UserWarning):
    """A damaged converted-model cache entry was found and is being rebuilt."""


class VectorFileWarning(UserWarning):
    """A steering-vector file loaded, but part of it could not be verified (no checksum)."""


class FigureSubsetWarning(UserWarning):
    """A run's figures were drawn from a subset of its grid (the tables hold all of it)."""


class FigureTextWarning(UserWarning):
    """A figure has overlapping text, or text outside its canvas (it is still written)."""


class LeadingTokenWarning(UserWarning):
    """Every addition of a steering context lands on the leading token only (an attention
    sink the model barely reads), so the steering will change almost nothing."""


class UncheckedRunWarning(UserWarning):
    """A run directory has no manifest (``tables.json``), so its tables cannot be checked
    against the run that wrote them: its numbers are used as they are."""


class Validated:
    """``Validated[T]`` annotates a user-facing argument that the function checks itself: it
    should be a ``T``, and anything else raises a typed :class:`ActAddError` that names what
    is allowed, never a bare ``TypeError``. Type checkers (and the runtime checker the tests
    run under) read it as ``object``; the ``T`` is documentation."""

    def __class_getitem__(cls, item: object) -> object:
        return Annotated[object, f"Validated[{getattr(item, '__name__', item)}]"]
