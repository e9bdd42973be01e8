"""The fast decoding path on SmolLM2: the same logits and text as TransformerLens's own
path, and the same greedy text as Hugging Face transformers steered by a forward hook.

Measured on the development machine (CPU, float32): logits within 4.2e-5 of
TransformerLens's (prompt pass, left-padded batch) and 2.9e-5 (cached decoding steps).
"""

from __future__ import annotations

import gc
from contextlib import nullcontext

import pytest
import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

import actadd
from actadd import GREEDY, SteeringVector, steering
from actadd.fastpath import StaticKVCache, fast_path, unsupported_reason
from actadd.forward import left_pad
from actadd.generation import generate_tokens

PROMPTS = ["I hate you because", "Hi", "My favourite thing to do on a rainy afternoon is"]
LOGIT_TOL = 1e-4


@pytest.fixture(scope="module")
def love2(smollm2):
    return SteeringVector.from_pair(smollm2, "Love", "Hate", layer=2, coeff=5)


def test_smollm2_is_covered_by_the_fast_path(smollm2):
    assert unsupported_reason(smollm2) is None


def test_steered_logits_within_1e_4_of_transformerlens(smollm2, love2):
    tokens, mask = left_pad(smollm2, [smollm2.to_tokens(p)[0].tolist() for p in PROMPTS])
    steps = torch.tensor([[5, 900, 31], [17, 17, 2045], [300, 8, 11]])

    def run(fast: bool):
        with steering(smollm2, love2, on_short="clip"):
            if fast:
                with fast_path(smollm2):
                    return decode(StaticKVCache.allocate(smollm2.cfg, "cpu", 3, 16))
            return decode(TransformerLensKeyValueCache.init_cache(smollm2.cfg, "cpu", 3))

    def decode(cache):
        out = [smollm2(tokens, attention_mask=mask, past_kv_cache=cache)]
        for j in range(steps.shape[1]):
            new = steps[:, j : j + 1]
            out.append(smollm2(new, attention_mask=torch.ones_like(new), past_kv_cache=cache))
        return out

    ours, ref = run(True), run(False)
    real = mask.bool()
    worst = (ours[0][real] - ref[0][real]).abs().max().item()
    for a, b in zip(ours[1:], ref[1:]):
        worst = max(worst, (a - b).abs().max().item())
    print(f"fast path vs TransformerLens: max|logit diff| = {worst:.3g}")
    assert worst < LOGIT_TOL


def test_greedy_text_equals_transformerlens_path(smollm2, love2):
    ids = [smollm2.to_tokens(p)[0].tolist() for p in PROMPTS]
    for vectors in (None, love2):
        runs = []
        for fast in (True, False):
            gens = [torch.Generator().manual_seed(i) for i in range(len(ids))]
            with (
                steering(smollm2, vectors, on_short="clip")
                if vectors is not None
                else nullcontext()
            ):
                runs.append(
                    generate_tokens(
                        smollm2, ids, gens, max_new_tokens=32, sampling=GREEDY, fast=fast
                    )
                )
        assert runs[0] == runs[1]


def test_greedy_text_equals_huggingface_with_a_steering_hook(smollm2, love2):
    """What an HF user writes: a forward pre-hook on decoder layer 2 adding the vector at
    the front positions on the prompt pass."""
    from actadd.models.hf_reference import hf_llama

    hf = hf_llama()
    vector = love2.tensor

    def pre_hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        if hidden.shape[1] == 1:
            return None
        hidden = hidden.clone()
        hidden[:, : len(vector)] += vector
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    handle = hf.model.layers[2].register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        ids = smollm2.to_tokens(PROMPTS[0])
        out = hf.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=32,
            min_new_tokens=32,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=smollm2.tokenizer.pad_token_id,
        )
        theirs = smollm2.tokenizer.decode(out[0, ids.shape[1] :])
    finally:
        handle.remove()
        del hf
        gc.collect()
    ours = actadd.generate(smollm2, PROMPTS[0], love2, sampling=GREEDY, max_new_tokens=32)
    assert ours.completion[0] == theirs
    unsteered = actadd.generate(smollm2, PROMPTS[0], sampling=GREEDY, max_new_tokens=32)
    assert unsteered.completion[0] != theirs  # the hook did steer
