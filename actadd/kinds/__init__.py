"""Built-in experiment kinds; importing this package registers them all.

Each module registers one kind with :func:`actadd.experiments.register`.
"""

from actadd.kinds import (  # noqa: F401
    alignment,
    capability,
    demo,
    failures,
    perplexity,
    sentiment,
    sweep,
    token_injection,
    word_count,
)
