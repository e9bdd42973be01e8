"""Methods against KL-matched random directions, with a positive control in the same test.

:mod:`~actadd.studies.method_null.config` (the config, pure data),
:mod:`~actadd.studies.method_null.draws` (the null: residual-distribution draws, per-row
norm-matched, then scaled to the arm's KL on neutral text),
:mod:`~actadd.studies.method_null.run` (the tables), :mod:`~actadd.studies.method_null.claims`
and :mod:`~actadd.studies.method_null.kind` (the kind that ties them together).
"""

__all__: list[str] = []
