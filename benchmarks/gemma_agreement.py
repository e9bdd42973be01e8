"""Gemma 3 270M: load time, and agreement with transformers and llama.cpp, prompt by prompt.

What ``tests/integration/test_gemma3_model.py`` asserts, printed as numbers:

- load time of ``actadd.load_model("gemma3-270m")``: **cold** (an empty model cache in a
  temporary ``ACTADD_CACHE_DIR``: join the chunk packages, check the sha256, dequantize and
  convert, write the cache) and **warm** (the same cache again, in a new process each, so no
  in-process memo helps);
- per prompt (the test's 8 prompts of 5-60 tokens and its 681-token prompt, past the
  512-token sliding window): worst |Δ log p| of actadd against transformers' own GGUF loader,
  and mean KL(· ‖ llama.cpp) and top-1 agreement with llama.cpp for actadd and for
  transformers side by side (llama.cpp quantizes activations inside its matrix products, so it
  is the level transformers reaches that actadd is held to).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gemma_agreement.py [--no-cold] [--no-llama]

llama.cpp comes from ``make setup-interop``; without it the llama.cpp columns are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LOAD = (
    "import time, json; t = time.perf_counter(); import actadd; "
    "m = actadd.load_model('gemma3-270m'); "
    "print(json.dumps({'seconds': time.perf_counter() - t}))"
)


def load_seconds(cache: str | None) -> float:
    """Wall seconds of import + load in a fresh interpreter (``cache``: its ACTADD_CACHE_DIR)."""
    env = dict(os.environ)
    if cache is not None:
        env["ACTADD_CACHE_DIR"] = cache
    out = subprocess.run(
        [sys.executable, "-c", _LOAD], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache load")
    ap.add_argument("--no-llama", action="store_true", help="skip the llama.cpp columns")
    args = ap.parse_args()

    if not args.no_cold:
        with tempfile.TemporaryDirectory(prefix="actadd-cold-") as cache:
            cold = load_seconds(cache)
            warm_same = load_seconds(cache)
        print(f"load (fresh cache):  cold {cold:6.1f} s, then warm {warm_same:5.1f} s")
    warm = load_seconds(None)
    print(f"load (user's cache): warm {warm:5.1f} s")

    import torch

    import actadd
    from actadd.core.metrics import kl_div
    from actadd.models.gemma3 import gemma3_path
    from actadd.models.hf_reference import hf_gemma3

    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from test_gemma3_model import LONG, PROMPTS  # the proofs' own prompts

    model = actadd.load_model("gemma3-270m")
    hf, tokenizer = hf_gemma3()
    llm = None
    if not args.no_llama:
        try:
            from actadd.interop.llamacpp import LlamaCpp

            llm = LlamaCpp(gemma3_path(), n_ctx=1024, all_logits=True)
        except ImportError:
            print("llama.cpp not installed (make setup-interop): its columns are skipped")

    def lp(x) -> torch.Tensor:
        return torch.log_softmax(torch.as_tensor(x, dtype=torch.float64), -1)

    head = f"{'prompt':<32} {'tok':>4} {'|Δlogp| HF':>11}"
    if llm is not None:
        head += f" {'KL ours':>9} {'KL HF':>9} {'top1 ours':>9} {'top1 HF':>8}"
    print(head)
    worst_short = 0.0
    try:
        for prompt in [*PROMPTS, LONG]:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            with torch.no_grad():
                ours, theirs = lp(model(ids)[0]), lp(hf(ids).logits[0])
            delta = (ours - theirs).abs().max().item()
            if prompt is not LONG:
                worst_short = max(worst_short, delta)
            name = "long (681 tokens)" if prompt is LONG else repr(prompt[:30])
            row = f"{name:<32} {ids.shape[1]:>4} {delta:>11.1e}"
            if llm is not None:
                cpp = lp(llm.logprobs(ids[0].tolist()))
                kl_o, kl_t = kl_div(ours, cpp).mean().item(), kl_div(theirs, cpp).mean().item()
                t_o = (ours.argmax(-1) == cpp.argmax(-1)).double().mean().item()
                t_t = (theirs.argmax(-1) == cpp.argmax(-1)).double().mean().item()
                row += f" {kl_o:>9.2e} {kl_t:>9.2e} {t_o:>9.3f} {t_t:>8.3f}"
            print(row, flush=True)
    finally:
        if llm is not None:
            llm.close()
    print(f"worst |Δ log p| against transformers on the short prompts: {worst_short:.1e}")


if __name__ == "__main__":
    main()
