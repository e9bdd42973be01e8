"""Steered generation: actadd.generate vs Hugging Face transformers on the same weights.

The baseline is what an HF user would write: ``LlamaForCausalLM`` holding the same
dequantized SmolLM2 weights (transformers' default SDPA attention), a forward pre-hook on
decoder layer 2 that adds the Love−Hate vector at the front positions on the prompt pass,
and ``model.generate``. With ``--model gemma3-270m``: ``Gemma3ForCausalLM`` holding the
weights actadd converted from the Gemma 3 270M GGUF (SDPA;
:func:`actadd.models.gemma3_hf.gemma3_270m_hf`), the hook on layer 9 (the middle of 18),
coefficient 1; actadd runs TransformerLens's own forward there (its fast path does not
cover Gemma's blocks). The paper's frequency penalty is an HF ``LogitsProcessor``
(transformers has only the multiplicative ``repetition_penalty``).

Runs, in one process on one thread, interleaved (HF, actadd, HF, actadd, ...):

- greedy, 32 new tokens, batch 1 and batch 16 — the texts must be identical;
- the paper's sampling (temperature 1, top-p 0.3, frequency penalty 1), batch 16 (each
  side with its own random numbers, so only the speed is compared).

Prints tok/s of both sides (best of ``--repeats``, wall clock), the ratio actadd / HF of
the best times, and the median of the per-repeat ratios (each repeat runs HF then actadd
back to back, so a noisy neighbour hits both alike).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_vs_hf.py [--tokens 32] [--repeats 5]
        [--model smollm2|gemma3-270m]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import actadd
from actadd import GREEDY, Sampling, SteeringVector
from actadd.models.hf_reference import add_at_front, hf_llama

PROMPT = "I hate you because"
#: per model: the steered layer and the coefficient of the Love - Hate vector
SETTINGS = {"smollm2": (2, 5.0), "gemma3-270m": (9, 1.0)}


class FrequencyPenalty:
    """OpenAI-style frequency penalty as an HF logits processor: each generated occurrence
    of a token lowers its logit by ``penalty`` (prompt tokens do not count)."""

    def __init__(self, penalty: float, prompt_len: int) -> None:
        self.penalty, self.prompt_len = penalty, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_len :]
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype)
        )
        return scores - self.penalty * counts


def add_front_hook(hf, layer: int, vector: torch.Tensor):
    """The HF user's steering hook: ``vector`` added at positions [0, k) of decoder layer
    ``layer``'s input on the prompt pass (:func:`actadd.models.hf_reference.add_at_front`)."""
    return add_at_front(hf.model.layers[layer], vector)


def load_pair(name: str):
    """actadd's model and the HF baseline holding the same weights."""
    if name == "gemma3-270m":
        from actadd.models.gemma3_hf import gemma3_270m_hf

        return actadd.load_model(name), gemma3_270m_hf()
    return actadd.load_model(), hf_llama()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", choices=sorted(SETTINGS), default="smollm2")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    import transformers

    transformers.logging.set_verbosity_error()
    model, hf = load_pair(args.model)
    hf.generation_config.eos_token_id = None  # actadd runs every row to max_new_tokens
    hf.generation_config.pad_token_id = model.tokenizer.pad_token_id
    layer, coeff = SETTINGS[args.model]
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=layer, coeff=coeff)
    handle = add_front_hook(hf, layer, v.tensor)
    n = args.tokens
    ids = model.to_tokens(PROMPT)  # [1, pos], with the leading token
    print(
        f"{model.cfg.model_name}: '{PROMPT}' steered by {v.describe()}, {n} new tokens; "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} thread(s), "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
        f"actadd from {os.path.dirname(actadd.__file__)}"
    )

    def hf_run(batch: int, sampling: Sampling):
        input_ids = ids.expand(batch, -1)
        kw = (
            dict(do_sample=False)
            if sampling.greedy
            else dict(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                logits_processor=[FrequencyPenalty(sampling.freq_penalty, ids.shape[1])],
            )
        )
        out = hf.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=n,
            min_new_tokens=n,
            **kw,
        )
        return [model.tokenizer.decode(row[ids.shape[1] :]) for row in out.tolist()]

    def ours(batch: int, sampling: Sampling):
        df = actadd.generate(
            model,
            [PROMPT] * batch,
            v,
            sampling=sampling,
            max_new_tokens=n,
            batch_size=batch,
            progress=False,
        )
        return df.completion.tolist()

    print(f"{'case':<22} {'HF + hook tok/s':>16} {'actadd tok/s':>13} {'ratio':>6} {'median':>7}")
    try:
        for name, batch, sampling in (
            ("greedy, batch 1", 1, GREEDY),
            ("greedy, batch 16", 16, GREEDY),
            ("paper sampling, b 16", 16, Sampling()),
        ):
            hf_run(batch, sampling), ours(batch, sampling)  # warm-up
            times: dict[str, list[float]] = {"hf": [], "actadd": []}
            texts = {}
            for _ in range(args.repeats):
                for side, fn in (("hf", hf_run), ("actadd", ours)):
                    t0 = time.perf_counter()
                    texts[side] = fn(batch, sampling)
                    times[side].append(time.perf_counter() - t0)
            if sampling.greedy:
                assert texts["hf"] == texts["actadd"], (texts["hf"][0], texts["actadd"][0])
                greedy_text = texts["actadd"][0]
            tok = batch * n
            t_hf, t_ours = min(times["hf"]), min(times["actadd"])
            ratios = [a / b for a, b in zip(times["hf"], times["actadd"])]
            print(
                f"{name:<22} {tok / t_hf:>16.1f} {tok / t_ours:>13.1f} {t_hf / t_ours:>5.2f}x "
                f"{statistics.median(ratios):>6.2f}x"
            )
        print(f"greedy text, identical on both sides: {greedy_text!r}")
    finally:
        handle.remove()


if __name__ == "__main__":
    main()
