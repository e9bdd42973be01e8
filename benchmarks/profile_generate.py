"""Where a decoding step's time goes in ``actadd.generate`` (steered, greedy or paper sampling).

Wraps the model's submodules with wall-clock timers (self time, children subtracted) and
groups them: attention, MLP, norms, embedding, unembedding, hook points, the steering
forward wrapper, sampling, and the rest (TransformerLens's forward and our loop in Python).
Then prints torch.profiler's top operators for the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_generate.py [--batch 1] [--sample]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import torch
from transformer_lens.hook_points import HookPoint

import actadd
import actadd.steer
from actadd import GREEDY, Sampling, SteeringVector

PROMPT = "I hate you because"


def category(name: str, module) -> str | None:
    if isinstance(module, HookPoint):
        return "hook points"
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "attn":
        return "attention"
    if leaf == "mlp":
        return "mlp"
    if leaf in ("ln1", "ln2", "ln_final"):
        return "norms"
    if leaf == "embed":
        return "embed"
    if leaf == "unembed":
        return "unembed"
    if name.startswith("blocks.") and name.count(".") == 1:
        return "block glue"
    return None


class Timers:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.stack: list[list[float]] = []  # [start, child time]

    @contextmanager
    def timing(self, cat: str):
        self.stack.append([time.perf_counter(), 0.0])
        try:
            yield
        finally:
            start, child = self.stack.pop()
            elapsed = time.perf_counter() - start
            self.total[cat] += elapsed - child
            if self.stack:
                self.stack[-1][1] += elapsed

    def timed(self, fn, cat: str):
        def wrapped(*a, **k):
            with self.timing(cat):
                return fn(*a, **k)

        return wrapped


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--sample", action="store_true", help="paper sampling instead of greedy")
    ap.add_argument("--ops", type=int, default=15, help="torch.profiler rows to print")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    model = actadd.load_model()
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=2, coeff=5)
    sampling = Sampling() if args.sample else GREEDY

    def run():
        actadd.generate(
            model,
            [PROMPT] * args.batch,
            v,
            sampling=sampling,
            max_new_tokens=args.tokens,
            batch_size=args.batch,
            progress=False,
        )

    run()  # warm-up
    t0 = time.perf_counter()
    run()
    untimed = time.perf_counter() - t0

    timers = Timers()
    patched = []
    for name, module in model.named_modules():
        cat = category(name, module)
        if cat is not None:
            module.forward = timers.timed(module.forward, cat)  # undone by `del` below
            patched.append(module)
    gen_mod = sys.modules["actadd.generate"]  # (the name actadd.generate is the function)
    original_next, original_begin = gen_mod.next_tokens, actadd.steer.Steering._begin_call
    gen_mod.next_tokens = timers.timed(original_next, "sampling")
    actadd.steer.Steering._begin_call = timers.timed(original_begin, "steering wrapper")
    try:
        with timers.timing("python: TL forward + loop"):
            t0 = time.perf_counter()
            run()
            timed = time.perf_counter() - t0
    finally:
        gen_mod.next_tokens = original_next
        actadd.steer.Steering._begin_call = original_begin
        for module in patched:
            del module.forward
    steps = args.tokens
    kind = "paper sampling" if args.sample else "greedy"
    print(
        f"batch {args.batch}, {kind}, {steps} tokens: {untimed:.3f} s untimed "
        f"({args.batch * steps / untimed:.1f} tok/s), {timed:.3f} s with timers"
    )
    print(f"{'part':<28} {'ms/step':>8} {'share':>6}")
    for cat, t in sorted(timers.total.items(), key=lambda kv: -kv[1]):
        print(f"{cat:<28} {1e3 * t / steps:>8.2f} {t / timed:>6.1%}")

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))


if __name__ == "__main__":
    main()
