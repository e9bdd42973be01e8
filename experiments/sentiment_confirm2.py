"""Run experiments/sentiment_confirm2.toml.

Usage: ``python experiments/sentiment_confirm2.py [--quick] [--out DIR]``.
All logic lives in the actadd package; this only points the CLI at the config.
"""

import sys
from pathlib import Path

from actadd.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", str(Path(__file__).with_suffix(".toml")), *sys.argv[1:]]))
