"""Capability under steering: cloze facts, top-1 accuracy.

:mod:`~actadd.studies.capability.config` (the config, pure data),
:mod:`~actadd.studies.capability.kind` (the kind: tables and claims) and
:mod:`~actadd.studies.capability.figures`.
"""

__all__: list[str] = []
