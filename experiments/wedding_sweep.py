"""Run experiments/wedding_sweep.toml: `python experiments/wedding_sweep.py [--quick] [--out DIR]`."""

import sys
from pathlib import Path

from actadd.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", str(Path(__file__).with_suffix(".toml")), *sys.argv[1:]]))
