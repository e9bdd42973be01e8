"""The behaviours benchmark's forward: the shared-prefix suffix path vs the earlier one, for
one behaviour, same numbers, one process; then the full size projected from the new path.

Both paths run the whole study (``run_behaviours``: vectors, layer choice, coarse and fine
scans, random draws, swapped letters) for one behaviour of a config:

- ``suffix_repeat``: the earlier path, TransformerLens's own attention over the prefix's KV
  cache repeated once per cell (``forward = "suffix_repeat"``);
- ``suffix``: the prefix's keys and values shared by every cell, and the unsteered cells
  taken from the clean forward (``forward = "suffix"``, the default).

Prints wall and CPU seconds of each, the ratio, and the largest difference between their
tables. The projection splits the new path's CPU time in two: the steered forwards (time
inside ``SuffixBatch.logits``, per row-layer: a question in a cell through the layers from
the cell's layer to the last) and the rest (vectors, the prefix passes: per prompt token
they forward). It scales each by that count in the full config, per behaviour (each
behaviour's own prompt lengths), at the chosen layer this run found and at the costliest
one (layer 0). Run it with ``OMP_NUM_THREADS=1`` for one core's time.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_behaviours.py \
        [--config experiments/behaviours.toml] [--behaviour refusal] [--quick] \
        [--full experiments/behaviours_full.toml] [--skip-old]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

import actadd
from actadd.config import parse_layers
from actadd.lab.kinds import read_config
from actadd.studies.behaviours.config import BehavioursConfig
from actadd.studies.behaviours.run import run_behaviours
from actadd.studies.behaviours.suffix import SuffixBatch


class _Tables:
    """The run store's tables and units (``parts/``), kept in memory."""

    def __init__(self) -> None:
        self.tables: dict[str, pd.DataFrame] = {}
        self.parts: dict[str, dict[str, pd.DataFrame]] = {}

    def write_table(self, name, df, formats=None) -> None:
        self.tables[name] = df

    def done(self, key, tables=None) -> bool:
        return False

    def write_part(self, key, tables) -> None:
        self.parts[key] = tables

    def read_part(self, key, table, expected=None) -> pd.DataFrame:
        return self.parts[key][table]


def spec_of(path: str, behaviour: str, forward: str, quick: bool = False) -> BehavioursConfig:
    raw = read_config(path, quick)
    raw.pop("kind")
    raw.update(behaviours=[behaviour], forward=forward)
    return BehavioursConfig.from_dict(raw)


def work(spec: BehavioursConfig, n_layers: int, best: int) -> int:
    """Row-layers of one behaviour's steered forwards (unsteered cells cost nothing), in
    the order of :func:`actadd.studies.behaviours.run.run_behaviours`."""
    coarse = parse_layers(spec.coarse_layers, n_layers, "coarse_layers")
    fine = [
        L for L in range(best - spec.fine_window, best + spec.fine_window + 1) if 0 <= L < n_layers
    ]
    arms = len(spec.methods) + spec.random_draws
    steered = lambda mults: sum(1 for m in mults if m != 0)
    depth = lambda L: n_layers - L
    total = sum(2 * spec.val * depth(L) for L in coarse)  # the layer choice
    total += sum(arms * steered(spec.coarse_multipliers) * spec.test * depth(L) for L in coarse)
    total += sum(arms * steered(spec.multipliers) * spec.test * depth(L) for L in fine)
    total += 2 * spec.claim_random_draws * spec.test * depth(best)
    swapped = sum(1 for m in ("caa", "letter") if m in spec.methods)
    total += swapped * steered(spec.multipliers) * spec.test * depth(best)
    return total


def timed(spec, model) -> tuple[float, float, float, dict[str, pd.DataFrame]]:
    """Wall and CPU seconds of one run, CPU seconds inside ``SuffixBatch.logits``, tables."""
    store, inside = _Tables(), [0.0]
    logits = SuffixBatch.logits

    def counted(self, *args, **kwargs):
        t = time.process_time()
        try:
            return logits(self, *args, **kwargs)
        finally:
            inside[0] += time.process_time() - t

    SuffixBatch.logits = counted
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        run_behaviours(spec, model, store)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        SuffixBatch.logits = logits
    return wall, cpu, inside[0], store.tables


def prompt_tokens(spec: BehavioursConfig, behaviour: str, model) -> int:
    """Tokens the fixed part forwards for ``behaviour``: both vector prompts of each train
    item, the validation prompts and the test prompts twice (as given and letters swapped)."""
    from actadd.runtime.tokens import encode
    from actadd.studies.behaviours.data import load_behaviour
    from actadd.studies.behaviours.protocol import question_text

    data = load_behaviour(behaviour)
    sp = spec.split_of(behaviour, data)
    size = lambda i: len(encode(model, question_text(model, data.items[i].question) + "(A"))
    return sum(2 * size(i) for i in (*sp.train, *sp.test)) + sum(size(i) for i in sp.val)


def largest_difference(a: dict, b: dict) -> dict[str, float]:
    out = {}
    for name, col in (("scan", "p_match"), ("scan", "logit_diff"), ("draws", "p_plus")):
        x, y = a[name], b[name]
        assert len(x) == len(y), name
        out[f"{name}.{col}"] = float(np.abs(x[col].to_numpy() - y[col].to_numpy()).max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/behaviours.toml")
    ap.add_argument("--behaviour", default="refusal")
    ap.add_argument("--quick", action="store_true", help="the config's [quick] sizes")
    ap.add_argument("--full", default="experiments/behaviours_full.toml")
    ap.add_argument("--model", default=None, help="default: the workbench's SmolLM2")
    ap.add_argument("--skip-old", action="store_true", help="time the new path only")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = actadd.load_model(args.model) if args.model else actadd.load_model()
    n_layers = model.cfg.n_layers
    print(f"model {model.cfg.model_name}, torch threads {torch.get_num_threads()}")
    print(f"config {args.config}{' [quick]' if args.quick else ''}, behaviour {args.behaviour}")
    new_spec = spec_of(args.config, args.behaviour, "suffix", args.quick)
    results = {}
    for forward in ("suffix", "suffix_repeat"):
        if forward == "suffix_repeat" and args.skip_old:
            continue
        spec = spec_of(args.config, args.behaviour, forward, args.quick)
        results[forward] = timed(spec, model)
        wall, cpu, inside, _ = results[forward]
        print(f"{forward:>14}: {wall:8.1f} s wall, {cpu:8.1f} s CPU ({inside:.1f} s steered)")
    new_wall, new_cpu, new_inside, new_tables = results["suffix"]
    best = int(new_tables["data"].chosen_layer.iloc[0])
    if "suffix_repeat" in results:
        old_wall, old_cpu, old_inside, old_tables = results["suffix_repeat"]
        print(
            f"ratio old/new: {old_wall / new_wall:.2f}x wall, {old_cpu / new_cpu:.2f}x CPU, "
            f"{old_inside / new_inside:.2f}x CPU of the steered forwards"
        )
        same_layer = int(old_tables["data"].chosen_layer.iloc[0]) == best
        print(f"same chosen layer: {same_layer}; largest differences:")
        for k, v in largest_difference(old_tables, new_tables).items():
            print(f"  {k}: {v:.2e}")
    rows, tokens = work(new_spec, n_layers, best), prompt_tokens(new_spec, args.behaviour, model)
    per_row, per_token = new_inside / rows, (new_cpu - new_inside) / tokens
    print(
        f"new path: {rows:,} row-layers at {per_row * 1e6:.1f} us CPU each; "
        f"{tokens:,} prompt tokens at {per_token * 1e3:.2f} ms CPU each (the rest)"
    )
    raw = {k: v for k, v in read_config(args.full).items() if k != "kind"}
    full = BehavioursConfig.from_dict(raw)
    print(f"projected, {args.full} (one core, this machine; hours):")
    print(f"  {'behaviour':<24} {'tokens':>8} {'fixed':>6} {'at L' + str(best):>7} {'at L0':>7}")
    total = np.zeros(2)
    for b in full.behaviours:
        fixed = prompt_tokens(full, b, model) * per_token / 3600
        steered = [work(full, n_layers, layer) * per_row / 3600 for layer in (best, 0)]
        total += [fixed + steered[0], fixed + steered[1]]
        print(
            f"  {b:<24} {prompt_tokens(full, b, model):>8,} {fixed:6.2f} "
            f"{fixed + steered[0]:7.2f} {fixed + steered[1]:7.2f}"
        )
    print(f"  {'total':<24} {'':>8} {'':>6} {total[0]:7.2f} {total[1]:7.2f}")


if __name__ == "__main__":
    main()
