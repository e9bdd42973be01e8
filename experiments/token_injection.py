"""Run experiments/token_injection.toml: is a steering vector "just injecting extra tokens"?

Usage: ``python experiments/token_injection.py [--quick] [--out DIR] [--resume]``. All logic
lives in the actadd package (``actadd.studies.token_injection``,
``actadd.studies.token_injection.kind``); this
only points the CLI at the config. Redraw the figures alone with
``actadd figures results/token_injection``.
"""

import sys
from pathlib import Path

from actadd.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", str(Path(__file__).with_suffix(".toml")), *sys.argv[1:]]))
