"""The CAA behaviours benchmark: the seven A/B behaviour datasets of Rimsky et al. (2023),
every steering method, Tan et al.'s (2024) reliability measures, and verdicts.

:mod:`~actadd.studies.behaviours.data` (the datasets, checked and split),
:mod:`~actadd.studies.behaviours.config` (the config, pure data),
:mod:`~actadd.studies.behaviours.protocol` (vectors and the evaluation, exactly),
:mod:`~actadd.studies.behaviours.run` (the tables), :mod:`~actadd.studies.behaviours.claims`,
:mod:`~actadd.studies.behaviours.figures` and :mod:`~actadd.studies.behaviours.kind`.
"""

__all__: list[str] = []
