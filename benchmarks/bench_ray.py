"""A sweep on 2 local Ray workers vs 1 (and vs the local loop), same numbers; plus a paper
estimate for a GPU cluster.

Each Ray worker is an actor with 1 CPU and 1 torch thread; the local loop also runs with 1
thread. "cold" includes starting the actors (each loads the model); "warm" is a second sweep
into a fresh run directory on the same, already loaded actors (what a suite or a long sweep
sees). On a 2-core machine two workers can at best halve the time, and anything else running
on those cores takes from that (the load average is printed before and after). Checks that
every run's table equals the local one.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ray.py [--model smollm2] [--layers 0:8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import actadd
from actadd.sweeps import SweepSpec, run_sweep
from actadd.sweeps.distributed import RayExecutor, RayOptions
from actadd.sweeps.engine import units


def sweep_spec(args) -> SweepSpec:
    return SweepSpec.from_dict(
        dict(
            name="bench_ray",
            model=args.model,
            pairs=[{"positive": " weddings", "negative": ""}],
            layers=args.layers,
            coeffs=[1.0, 4.0],
            prompts=["I went up to my friend and said", "Yesterday after work I"],
            target_words="weddings",
            generation={"n_samples": 4, "max_new_tokens": args.tokens, "sentiment": False},
        )
    )


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def same(a: Path, b: Path) -> float:
    """Max |difference| of the metric values; asserts identical rows and completions."""
    ra, rb = pd.read_parquet(a / "results.parquet"), pd.read_parquet(b / "results.parquet")
    pd.testing.assert_frame_equal(ra.drop(columns="value"), rb.drop(columns="value"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "completions.parquet"), pd.read_parquet(b / "completions.parquet")
    )
    return float(np.abs(ra.value.to_numpy() - rb.value.to_numpy()).max())


def paper_estimate() -> None:
    """Back-of-the-envelope numbers for a 7B model on GPUs (stated assumptions, not measured)."""
    layers, pairs, coeffs, prompts, samples, tokens = 32, 3, 5, 3, 16, 40
    n_gen = n_next = 1 + pairs * layers
    rows = coeffs * prompts * samples  # one generation unit: every cell × prompt × sample
    step_s = 0.030  # one decode step at ~96 rows, 7B fp16 on an A100 (weights-bound, ~2x 9 ms)
    gen_s = -(-rows // 96) * tokens * step_s + 0.5  # batches × steps + prompt pass
    next_s = 0.15  # next-token unit: 5 cells × 5 texts from layer L, one forward
    load_s = 45.0  # an actor loading 14 GB of fp16 weights from local NVMe
    driver_s = 0.03  # driver per unit: result transfer + parquet parts + sha256
    work = n_gen * gen_s + n_next * next_s
    print("\npaper estimate, 7B model on A100s (assumptions in bench_ray.paper_estimate):")
    print(
        f"  grid: {pairs} pairs × {layers} layers × {coeffs} coeffs, {prompts} prompts × "
        f"{samples} samples × {tokens} tokens -> {n_gen + n_next} units "
        f"({n_gen} generation ~{gen_s:.1f} s, {n_next} next-token ~{next_s:.2f} s each)"
    )
    one = load_s + work + (n_gen + n_next) * driver_s
    for gpus in (1, 2, 4, 8, 16):
        # units are whole: the slowest actor gets ceil(units / gpus) generation units
        t = load_s + -(-n_gen // gpus) * gen_s + -(-n_next // gpus) * next_s
        t = max(t, (n_gen + n_next) * driver_s)
        print(f"  {gpus:2d} GPU actors: ~{t / 60:5.1f} min, speed-up ~{one / t:4.1f}x")
    print(
        "  the speed-up is capped by the model load (paid once per actor, in parallel), "
        "unit granularity (a (pair, layer) is one unit) and the driver writing every part"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--layers", default="0:8", help="sweep layers (units = 2 × (1 + layers))")
    p.add_argument("--tokens", type=int, default=16, help="new tokens per completion")
    args = p.parse_args()
    torch.set_num_threads(1)
    spec = sweep_spec(args)
    model = actadd.load_model(args.model)
    spec.validate(model)
    n = len(units(spec, model.cfg.n_layers))
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray-"))
    print(f"{n} units ({spec.name}: {args.model}, layers {args.layers}); {os.cpu_count()} cores")

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    first = timed(lambda: run_sweep(spec, model, out=tmp / "local0", progress=False))
    local = timed(lambda: run_sweep(spec, model, out=tmp / "local", progress=False))
    print(f"local loop, 1 thread:        first {first:7.1f} s, again {local:7.1f} s")
    times = {}
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for workers in (1, 2):
            with RayExecutor(RayOptions(workers=workers, num_cpus=1)) as b:
                cold = timed(
                    lambda b=b, w=workers: run_sweep(
                        spec, model, out=tmp / f"cold{w}", progress=False, backend=b
                    )
                )
                warm = timed(
                    lambda b=b, w=workers: run_sweep(
                        spec, model, out=tmp / f"warm{w}", progress=False, backend=b
                    )
                )
                split = sorted(b.done_by.values())
            diff = max(same(tmp / "local", tmp / f"{k}{workers}") for k in ("cold", "warm"))
            times[workers] = (cold, warm)
            print(
                f"Ray, {workers} worker(s): cold {cold:7.1f} s, warm {warm:7.1f} s "
                f"(units per actor {split}; max |diff| vs local {diff:.1e})"
            )
    finally:
        ray.shutdown()
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    (c1, w1), (c2, w2) = times[1], times[2]
    print(f"\nratio 1 worker / 2 workers: warm {w1 / w2:.2f}x, cold {c1 / c2:.2f}x")
    print(f"Ray, 1 warm worker vs the local loop: {(w1 - local) / n * 1000:+.0f} ms/unit")
    paper_estimate()


if __name__ == "__main__":
    main()
