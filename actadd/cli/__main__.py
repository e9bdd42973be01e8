"""``python -m actadd.cli``."""

import sys

from actadd.cli.commands import main

sys.exit(main())
