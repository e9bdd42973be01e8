"""The ``actadd`` command (:func:`main`); ``python -m actadd.cli`` runs it too."""

from actadd.cli.commands import main

__all__ = ["main"]
