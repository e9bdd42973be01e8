"""Run experiments/failure_cases.toml.

    python experiments/failure_cases.py [--quick] [--out DIR]

Output: results/failure_cases/ (with --quick: results/_quick/failure_cases/).
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
