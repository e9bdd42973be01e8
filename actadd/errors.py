"""Exceptions raised by actadd. Each message says what was wrong and what is allowed."""


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
