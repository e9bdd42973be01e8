"""The TransformerBridge backend on SmolLM2: steered generation against Hugging Face, and the
sweep engine against a naive loop, all measured in one run.

1. **Generation.** ``actadd.generate`` on the bridge (SmolLM2's GGUF tensors in an HF
   ``LlamaForCausalLM``, eager attention, wrapped by TransformerLens's bridge) against
   what an HF user writes: the same HF class with the same tensors (SDPA attention), a
   forward pre-hook on decoder layer 2 adding the Love−Hate vector at the front positions
   on the prompt pass, and ``model.generate``. Greedy, batch 1 and batch 8; the texts must
   be identical. The HookedTransformer backend's ``actadd.generate`` runs in the same
   loop for reference.
2. **Sweep engine.** A next-token sweep (``actadd.sweeps.run_sweep``) on the bridge against
   :func:`actadd.sweeps.engine.naive_next_token` (one full steered forward per cell and
   text) on the bridge, and the same pair on the HookedTransformer. The numbers must agree.

Repeats are interleaved (HF, bridge, hooked, ...) on one thread; best of ``--repeats``
wall times and the median of per-repeat ratios. Every ratio is "time A / time B" as
printed: > 1 means B is faster.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bridge.py [--tokens 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import metadata

import numpy as np
import torch

import actadd
from actadd import GREEDY, SteeringVector
from actadd.models.hf_reference import add_at_front, hf_llama
from actadd.sweeps import SweepSpec, run_sweep, sort_results
from actadd.sweeps.engine import UNSTEERED, naive_next_token

PROMPT = "I hate you because"
LAYER, COEFF = 2, 5.0


def add_front_hook(hf, vector: torch.Tensor):
    """The HF user's steering hook: ``vector`` added at positions [0, k) of decoder layer
    ``LAYER``'s input on the prompt pass (:func:`actadd.models.hf_reference.add_at_front`)."""
    return add_at_front(hf.model.layers[LAYER], vector)


def timed(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Run every ``fns`` entry once to warm up, then ``repeats`` interleaved rounds.
    Returns (best seconds, outputs of the last round) per name, and per-round times."""
    outs = {k: f() for k, f in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            outs[k] = f()
            times[k].append(time.perf_counter() - t0)
    return outs, times


def ratio(times: dict, slow: str, fast: str) -> str:
    best = min(times[slow]) / min(times[fast])
    med = statistics.median(a / b for a, b in zip(times[slow], times[fast]))
    return f"{best:.2f}x (median {med:.2f}x)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    import transformers

    transformers.logging.set_verbosity_error()
    hooked = actadd.load_model()
    bridge = actadd.load_model(backend="bridge")
    hf = hf_llama()  # SDPA attention: what an HF user gets by default
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = hooked.tokenizer.pad_token_id
    v = SteeringVector.from_pair(hooked, "Love", "Hate", layer=LAYER, coeff=COEFF)
    n, ids = args.tokens, hooked.to_tokens(PROMPT)
    print(
        f"SmolLM2-135M (Q4_1 GGUF, fp32), '{PROMPT}' + {v.describe()}, {n} new tokens; "
        f"transformer-lens {metadata.version('transformer-lens')}, transformers "
        f"{transformers.__version__}, torch {torch.__version__}, 1 thread"
    )

    def hf_run(batch: int):
        out = hf.generate(
            ids.expand(batch, -1),
            attention_mask=torch.ones(batch, ids.shape[1], dtype=torch.long),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
        )
        return [hooked.tokenizer.decode(r[ids.shape[1] :]) for r in out.tolist()]

    def ours(model, batch: int):
        df = actadd.generate(
            model, [PROMPT] * batch, v, sampling=GREEDY, max_new_tokens=n, batch_size=batch
        )
        return df.completion.tolist()

    print("\n1. steered greedy generation (tok/s)")
    handle = add_front_hook(hf, v.tensor)
    try:
        for batch in (1, 8):
            outs, times = timed(
                {
                    "hf": lambda b=batch: hf_run(b),
                    "bridge": lambda b=batch: ours(bridge, b),
                    "hooked": lambda b=batch: ours(hooked, b),
                },
                args.repeats,
            )
            assert outs["hf"] == outs["bridge"], (outs["hf"][0], outs["bridge"][0])
            same_hooked = outs["hooked"] == outs["hf"]
            tps = {k: batch * n / min(t) for k, t in times.items()}
            print(
                f"  batch {batch}: HF+hook {tps['hf']:.1f}, bridge {tps['bridge']:.1f}, "
                f"hooked {tps['hooked']:.1f}; time bridge / HF {ratio(times, 'bridge', 'hf')}; "
                f"time HF / hooked {ratio(times, 'hf', 'hooked')}; texts identical HF = bridge"
                f"{' = hooked' if same_hooked else ' (hooked differs)'}"
            )
    finally:
        handle.remove()

    spec = SweepSpec.from_dict(
        dict(
            name="bench-bridge",
            pairs=[{"positive": "Love", "negative": "Hate"}],
            layers=[1, 4, 8],
            coeffs=[1.0, 4.0, -4.0],
            aligns=["front", "all"],
            equalize=["right"],
            prompts=["I went up to my friend and said", PROMPT],
            neutral_texts=["The weather today is mild and the shops are open."],
            target_words=[" love", " wedding"],
        )
    )
    print(f"\n2. next-token sweep, {3 * 3 * 2} cells x 3 texts (seconds)")
    outs, times = timed(
        {
            "bridge_naive": lambda: naive_next_token(bridge, spec),
            "bridge_engine": lambda: run_sweep(spec, bridge, progress=False),
            "hooked_naive": lambda: naive_next_token(hooked, spec),
            "hooked_engine": lambda: run_sweep(spec, hooked, progress=False),
        },
        args.repeats,
    )
    for side in ("bridge", "hooked"):
        eng = sort_results(outs[f"{side}_engine"])
        eng = eng[eng.pair != UNSTEERED].reset_index(drop=True)
        naive = sort_results(outs[f"{side}_naive"])
        gap = float(np.abs(eng.value.to_numpy() - naive.value.to_numpy()).max())
        print(
            f"  {side}: naive {min(times[f'{side}_naive']):.2f} s, engine "
            f"{min(times[f'{side}_engine']):.2f} s; time naive / engine "
            f"{ratio(times, f'{side}_naive', f'{side}_engine')}; max |engine - naive| {gap:.1e}"
        )
    b, h = (sort_results(outs[f"{s}_engine"]) for s in ("bridge", "hooked"))
    gap = float(np.abs(b.value - h.value).max())
    print(f"  max |bridge - hooked| over the sweep's numbers: {gap:.1e}")


if __name__ == "__main__":
    main()
