"""``python -m actadd.cli``."""

import sys

from actadd.cli.commands import main

__all__: list[str] = []  # an entry point: it runs the command and exports nothing

sys.exit(main())
