"""Run experiments/pad_confound.toml.

    python experiments/pad_confound.py [--quick] [--out DIR]

Output: results/pad_confound/ (with --quick: results/_quick/pad_confound/).
A finished or interrupted run of the same config is resumed.
"""

import sys
from pathlib import Path

from actadd.cli import main

CONFIG = Path(__file__).with_suffix(".toml")

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--quick" in args and not any(a.startswith(("--out", "--results")) for a in args):
        args += ["--results", "results/_quick"]
    sys.exit(main(["run", str(CONFIG), "--resume", *args]))
