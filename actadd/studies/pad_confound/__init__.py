"""The pad confound: which pad tokens carry massive activations, and what that does to steering.

:mod:`~actadd.studies.pad_confound.config` (the config, pure data),
:mod:`~actadd.studies.pad_confound.analysis` (the instruments),
:mod:`~actadd.studies.pad_confound.run` (the tables), :mod:`~actadd.studies.pad_confound.claims`,
:mod:`~actadd.studies.pad_confound.figures` and :mod:`~actadd.studies.pad_confound.kind` (the
kind that ties them together).
"""

__all__: list[str] = []
