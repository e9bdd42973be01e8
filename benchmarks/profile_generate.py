"""Where a decoding step's time goes in ``actadd.generate`` (steered, greedy or paper sampling).

Wraps the pieces of a generation with wall-clock timers (self time: children subtracted)
and prints milliseconds per generated token, grouped as

- ``attention`` / ``mlp`` / ``norms``: the blocks' parts outside their matmuls,
- ``matmul: attention`` / ``matmul: mlp`` / ``matmul: unembed``: every ``F.linear``,
- ``steering hook``, ``steering forward wrapper``, ``sampling``,
- ``python: TransformerLens forward, block glue, loop``: everything else.

``--path fast`` (default) profiles what ``actadd.generate`` runs now (``actadd.runtime.fast``);
``--path tl`` profiles TransformerLens's own forward (``generate_tokens(fast=False)``), the
path before the fast path existed. Then prints torch.profiler's busiest operators.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_generate.py [--batch 1] [--sample]
        [--path fast|tl]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformer_lens.components import GatedMLP, GroupedQueryAttention, RMSNorm

import actadd
import actadd.core.generation as generate_module  # noqa: E402
import actadd.runtime.fast.attention as fast_attention
import actadd.runtime.fast.block as fast_block
import actadd.runtime.forward as forward_module
from actadd import GREEDY, Sampling, SteeringVector
from actadd.core.steering import Steering

PROMPT = "I hate you because"


class Timers:
    """Self time per category: a timer's children are subtracted from it."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [category, start, child time]

    @contextmanager
    def timing(self, cat: str):
        self.stack.append([cat, time.perf_counter(), 0.0])
        try:
            yield
        finally:
            cat, start, child = self.stack.pop()
            elapsed = time.perf_counter() - start
            self.total[cat] += elapsed - child
            if self.stack:
                self.stack[-1][2] += elapsed

    def parent(self) -> str:
        return self.stack[-1][0] if self.stack else ""

    def timed(self, fn, cat):
        """``fn`` timed under ``cat`` (a string, or a function of the parent category)."""

        def wrapped(*a, **k):
            with self.timing(cat if isinstance(cat, str) else cat(self.parent())):
                return fn(*a, **k)

        return wrapped


def matmul_category(parent: str) -> str:
    for part in ("attention", "mlp", "unembed"):
        if part in parent:
            return f"matmul: {part}"
    return "matmul: other"


@contextmanager
def instrumented(model, timers: Timers, path: str):
    """Patch timers in (everything restored on exit)."""
    undo = []

    def patch(owner, name, cat):
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, timers.timed(original, cat))
        undo.append((owner, name, original))

    patch(F, "linear", matmul_category)
    patch(generate_module, "next_tokens", "sampling")
    patch(forward_module, "unembed", "unembed (outside its matmul)")
    patch(Steering, "_begin_call", "steering forward wrapper")
    original_hook_for = Steering._hook_for

    def hook_for(self, layer):
        return timers.timed(original_hook_for(self, layer), "steering hook")

    Steering._hook_for = hook_for
    undo.append((Steering, "_hook_for", original_hook_for))
    patched_modules = []
    if path == "fast":
        patch(fast_attention._FastAttention, "__call__", "attention")
        patch(fast_block._FastMLP, "__call__", "mlp")
        patch(fast_block, "_norm", "norms")  # where _FastBlock looks it up
    else:  # TransformerLens's modules
        for module in model.modules():
            kind = {GroupedQueryAttention: "attention", GatedMLP: "mlp", RMSNorm: "norms"}
            cat = kind.get(type(module))
            if cat is None and type(module).__name__ in ("Attention", "MLP", "LayerNorm"):
                cat = {"Attention": "attention", "MLP": "mlp", "LayerNorm": "norms"}[
                    type(module).__name__
                ]
            if cat is not None:
                module.forward = timers.timed(module.forward, cat)
                patched_modules.append(module)
    try:
        yield
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)
        for module in patched_modules:
            del module.forward


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--sample", action="store_true", help="paper sampling instead of greedy")
    ap.add_argument("--path", choices=("fast", "tl"), default="fast")
    ap.add_argument("--ops", type=int, default=12, help="torch.profiler rows to print")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    model = actadd.load_model()
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=2, coeff=5)
    sampling = Sampling() if args.sample else GREEDY
    ids = [model.to_tokens(PROMPT)[0].tolist()] * args.batch

    def run():
        gens = [torch.Generator().manual_seed(i) for i in range(args.batch)]
        with actadd.steering(model, v):
            generate_module.generate_tokens(
                model,
                ids,
                gens,
                max_new_tokens=args.tokens,
                sampling=sampling,
                fast=args.path == "fast",
            )

    run()  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    timers = Timers()
    with instrumented(model, timers, args.path):
        with timers.timing("python: TransformerLens forward, block glue, loop"):
            t0 = time.perf_counter()
            run()
            timed = time.perf_counter() - t0
    steps = args.tokens
    kind = "paper sampling" if args.sample else "greedy"
    print(
        f"path {args.path}, batch {args.batch}, {kind}, {steps} tokens: {wall:.3f} s wall, "
        f"{cpu:.3f} s CPU untimed ({1e3 * wall / steps:.1f} ms per step, "
        f"{args.batch * steps / wall:.1f} tok/s); {timed:.3f} s with timers"
    )
    print(f"{'part':<52} {'ms/step':>8} {'share':>6}")
    for cat, t in sorted(timers.total.items(), key=lambda kv: -kv[1]):
        print(f"{cat:<52} {1e3 * t / steps:>8.2f} {t / timed:>6.1%}")

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))


if __name__ == "__main__":
    main()
