"""Built-in experiment kinds; importing this package registers them all.

Each module registers one kind with :func:`actadd.experiments.register`.
"""

from actadd.kinds import demo, sweep  # noqa: F401
