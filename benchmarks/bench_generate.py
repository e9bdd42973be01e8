"""Steered generation throughput: actadd.generate vs HookedTransformer.generate.

Same model, prompt, steering vector, greedy decoding and number of new tokens, measured in
one process; prints tokens/s for each and the ratio. Batch 1 and batch 16.

    .venv/bin/python benchmarks/bench_generate.py [--tokens 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

import actadd
from actadd import GREEDY, SteeringVector, steering


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model = actadd.load_model()
    # the same model without actadd's weight layout, i.e. what TransformerLens gives you
    plain = actadd.load_model()
    for p, q in zip(plain.parameters(), model.parameters()):
        p.data = q.data.contiguous()
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=2, coeff=5)
    n = args.tokens
    print(f"model {model.cfg.model_name}, {n} new tokens, greedy, steered (Love-Hate @L2, c=5)")
    print(f"{'batch':>5} {'TL generate tok/s':>19} {'actadd tok/s':>13} {'ratio':>6}")
    for batch in (1, 16):
        prompts = ["I hate you because"] * batch

        def theirs(prompts=prompts, batch=batch):
            with steering(plain, v):
                plain.generate(
                    prompts if batch > 1 else prompts[0],
                    max_new_tokens=n,
                    do_sample=False,
                    verbose=False,
                    stop_at_eos=False,
                )

        def ours(prompts=prompts, batch=batch):
            actadd.generate(
                model,
                prompts,
                v,
                sampling=GREEDY,
                max_new_tokens=n,
                batch_size=batch,
                progress=False,
            )

        t_theirs, t_ours = best_of(theirs, args.repeats), best_of(ours, args.repeats)
        tok = batch * n
        print(
            f"{batch:>5} {tok / t_theirs:>19.1f} {tok / t_ours:>13.1f} {t_theirs / t_ours:>5.1f}x"
        )


if __name__ == "__main__":
    main()
