"""Is a steering vector "just injecting extra tokens"? Run the analysis on the embedded model.

    .venv/bin/python experiments/token_injection.py           # -> results/token_injection/
    .venv/bin/python experiments/token_injection.py --quick   # -> results/_quick/token_injection/
    .venv/bin/python experiments/token_injection.py --figures-only   # redraw from saved tables

Everything is computed by :func:`actadd.analysis.token_injection.run_experiment` from
``experiments/token_injection.toml``; this script only picks the output folder and the thread
count, and prints the headline numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "token_injection.toml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run (under a minute)")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, help="output folder (default: see above)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared 2-core machine more threads "
        "oversubscribe and run several times slower)",
    )
    parser.add_argument("--figures-only", action="store_true", help="redraw figures only")
    args = parser.parse_args(argv)

    import pandas as pd

    from actadd.analysis.token_injection import experiment_figures, headline, run_experiment
    from actadd.experiments import read_config

    out = args.out or ROOT / ("results/_quick" if args.quick else "results") / "token_injection"
    if args.figures_only:
        for path in experiment_figures(out):
            print(f"wrote {path}")
        return 0
    torch.set_num_threads(args.threads)
    config = read_config(args.config, quick=args.quick)
    start = time.perf_counter()
    tables = run_experiment(config, out, progress=True)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(headline(tables["summary"]).round(2).to_string(index=False))
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
