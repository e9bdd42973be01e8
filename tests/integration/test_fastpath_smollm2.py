"""The fast path on SmolLM2: the same logits and text as TransformerLens's own path, and
the same greedy text as Hugging Face transformers steered by a forward hook.

Measured on the development machine (CPU, float32): passes of several queries (prompts,
the batched next-token forward, perplexity) equal TransformerLens's logits bit for bit;
cached decoding steps, on SDPA, are within 2.9e-5 (the whole decode test: 2.7e-5).
"""

from __future__ import annotations

import gc
from contextlib import nullcontext

import pytest
import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

import actadd
from actadd import GREEDY, SteeringVector, steering
from actadd.core.generation import generate_tokens
from actadd.runtime.fast import StaticKVCache, fast_path, unsupported_reason
from actadd.runtime.forward import left_pad

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
    from actadd.models.hf_reference import add_at_front, hf_llama

    hf = hf_llama()
    vector = love2.tensor

    handle = add_at_front(hf.model.layers[2], vector)
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


# ------------------------------------------------------------ the batched next-token forward


def _cloze_ids(model, n=24):
    from actadd.studies.capability.kind import load_cloze

    items = load_cloze()["items"][:n]
    return [model.to_tokens(it["prompt"])[0].tolist() for it in items]


@pytest.mark.parametrize("padding", ["left", "by_length"])
def test_batched_next_token_forward_within_1e_4_of_transformerlens(smollm2, padding):
    """The capability / sweep / token-injection forward: clean prefix, then several steered
    conditions per pass from their layer. Several queries per row keep TransformerLens's
    attention arithmetic, so the logits agree far inside 1e-4 (observed: bit for bit)."""
    from actadd.core.prefix import PrefixBatch
    from actadd.core.steering import Placement

    ids = _cloze_ids(smollm2)
    wed = {
        layer: SteeringVector.from_pair(smollm2, " weddings", "", layer=layer) for layer in (1, 4)
    }
    conds = [None, wed[1], wed[4] * 4, [Placement(wed[4], "back"), wed[1] * 2]]
    kw = dict(padding=padding, max_rows=64)
    fast = PrefixBatch(smollm2, ids, **kw).logits(conds)
    ref = PrefixBatch(smollm2, ids, fast=False, **kw).logits(conds)
    worst = max((a - b).abs().max().item() for a, b in zip(fast, ref))
    print(f"batched next-token forward ({padding}): max|logit diff| = {worst:.3g}")
    assert worst < LOGIT_TOL


def test_perplexity_within_1e_4_of_transformerlens(smollm2, love2):
    from actadd.core.metrics import perplexity

    texts = [
        "The bride and groom danced until midnight at their wedding.",
        "Container ships carry most of the world's goods across the oceans.",
        "Hi",
    ]
    with steering(smollm2, love2, on_short="clip"):
        fast = perplexity(smollm2, texts, batch_size=3)
        ref = perplexity(smollm2, texts, batch_size=3, fast=False)
    # perplexity = exp(mean NLL): a logit error e moves it by at most a factor exp(2e)
    assert abs(fast / ref - 1).max() < 2 * LOGIT_TOL


def test_sampled_copies_share_the_prompt_pass_and_match_transformerlens(smollm2, love2):
    """Eight samples of one steered prompt: the fast loop runs the prompt once and copies
    the cache; every sample is what TransformerLens's path draws."""
    from actadd import Sampling

    ids = [smollm2.to_tokens(PROMPTS[0])[0].tolist()] * 8
    runs = []
    for fast in (True, False):
        gens = [torch.Generator().manual_seed(i) for i in range(len(ids))]
        with steering(smollm2, love2):
            runs.append(
                generate_tokens(
                    smollm2, ids, gens, max_new_tokens=12, sampling=Sampling(), fast=fast
                )
            )
    assert runs[0] == runs[1]
    assert len({tuple(r) for r in runs[0]}) > 1  # the copies sample on their own
