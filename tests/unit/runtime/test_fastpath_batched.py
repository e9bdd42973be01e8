"""The batched next-token forward (``PrefixBatch``) and the perplexity pass on the fast path
give TransformerLens's logits, honour the hooks a user attaches, and keep the steering
proofs; ``transformerlens_forward`` turns the fast path off everywhere."""

from __future__ import annotations

import pytest
import torch

from actadd import Sampling, SteeringVector, steering
from actadd.core.generation import generate_tokens
from actadd.core.metrics import perplexity
from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Placement
from actadd.runtime.fast import fast_path, transformerlens_forward

TEXTS = ["I hate you because", "Hello", "The movie was great", "Hi there"]
TOL = 1e-5  # tiny models: logits of order 1


def _conditions(model):
    v2 = SteeringVector.from_pair(model, "Love", "Hate", layer=2, coeff=3)
    v1 = SteeringVector.from_pair(model, "ab", "cd", layer=1)
    return [None, v2, [Placement(v2 * -2, "back"), v1], Placement(v1.mean(), "all")]


def _fast_blocks(model) -> int:
    return sum("forward" in vars(b) for b in model.blocks)


def _spy(model):
    """A hook that records, at each call, how many blocks run on the fast path."""
    seen: list[int] = []

    def spy(resid, hook):
        seen.append(_fast_blocks(model))
        return resid

    return seen, spy


@pytest.mark.parametrize(
    "padding, positions", [("left", "last"), ("by_length", "last"), ("left", "all")]
)
def test_prefix_batch_on_the_fast_path_gives_transformerlens_logits(tiny_model, padding, positions):
    ids = [tiny_model.to_tokens(t)[0].tolist() for t in TEXTS]
    conds = _conditions(tiny_model)
    kw = dict(padding=padding, positions=positions, max_rows=6)  # chunked
    fast = PrefixBatch(tiny_model, ids, **kw).logits(conds)
    ref = PrefixBatch(tiny_model, ids, fast=False, **kw).logits(conds)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_prefix_batch_runs_its_blocks_on_the_fast_path(tiny_llama):
    seen, spy = _spy(tiny_llama)
    ids = [tiny_llama.to_tokens(t)[0].tolist() for t in TEXTS]
    batch = PrefixBatch(tiny_llama, ids)
    with tiny_llama.hooks(fwd_hooks=[("blocks.3.hook_resid_pre", spy)]):
        batch.logits([SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2)])
        assert seen and set(seen) == {tiny_llama.cfg.n_layers}
        seen.clear()
        PrefixBatch(tiny_llama, ids, fast=False).logits([None])
        assert seen == [0]


@pytest.mark.parametrize(
    "hook_name", ["blocks.3.mlp.hook_post", "blocks.2.attn.hook_pattern", "blocks.3.hook_z"]
)
def test_user_hooks_are_honoured_by_the_batched_forward(tiny_llama, hook_name):
    """A hook the fast path can call fires there; one it cannot (the attention pattern)
    sends that block to TransformerLens. Either way the edit lands, as without the fast
    path."""
    hook_name = hook_name.replace("blocks.3.hook_z", "blocks.3.attn.hook_z")
    calls = []

    def edit(x, hook):
        calls.append(hook.name)
        return x * 0.5

    ids = [tiny_llama.to_tokens(t)[0].tolist() for t in TEXTS]
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=2)
    plain = PrefixBatch(tiny_llama, ids).logits([v])[0]
    with tiny_llama.hooks(fwd_hooks=[(hook_name, edit)]):
        fast = PrefixBatch(tiny_llama, ids).logits([v])[0]
        n_fast = len(calls)
        ref = PrefixBatch(tiny_llama, ids, fast=False).logits([v])[0]
    assert n_fast > 0 and len(calls) == 2 * n_fast
    torch.testing.assert_close(fast, ref, atol=TOL, rtol=0)
    assert not torch.allclose(fast, plain, atol=1e-3)


def test_steered_batched_rows_equal_each_text_alone_on_the_fast_path(tiny_llama):
    """batch = alone, and the addition is exact at the steered positions only."""
    ids = [tiny_llama.to_tokens(t)[0].tolist() for t in TEXTS]
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2, coeff=3)
    (batched,) = PrefixBatch(tiny_llama, ids).logits([v])
    resid = {}

    def keep(x, hook):
        resid[hook.name] = x.clone()
        return x

    names = ["blocks.2.hook_resid_pre", "blocks.1.hook_resid_post"]
    for i, text in enumerate(TEXTS):
        tokens = tiny_llama.to_tokens(text)
        with fast_path(tiny_llama), steering(tiny_llama, v, on_short="clip"):
            with tiny_llama.hooks(fwd_hooks=[(n, keep) for n in names]):
                alone = tiny_llama(tokens)[0, -1]
        torch.testing.assert_close(batched[i], alone, atol=TOL, rtol=0)
        added = resid[names[0]] - resid[names[1]]  # the hook's addition at layer 2
        k = min(v.k, tokens.shape[1])
        torch.testing.assert_close(added[0, :k], v.tensor[:k], atol=1e-5, rtol=0)
        assert torch.equal(added[0, k:], torch.zeros_like(added[0, k:]))


def test_perplexity_on_the_fast_path_equals_transformerlens(tiny_model):
    texts = ["A wedding is a day to remember", "Cargo ships", "Hello there my friend"]
    v = SteeringVector.from_pair(tiny_model, "Love", "Hate", layer=1, coeff=2)
    for ctx in (None, v):
        with steering(tiny_model, ctx) if ctx is not None else torch.no_grad():
            fast = perplexity(tiny_model, texts, batch_size=2)
            ref = perplexity(tiny_model, texts, batch_size=2, fast=False)
        assert fast == pytest.approx(ref, rel=1e-5)


def test_transformerlens_forward_turns_the_fast_path_off_everywhere(tiny_llama):
    seen, spy = _spy(tiny_llama)
    ids = [tiny_llama.to_tokens(t)[0].tolist() for t in TEXTS]
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(len(ids))]  # noqa: E731
    sampling = Sampling(top_p=0.9)
    with tiny_llama.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", spy)]):
        fast = generate_tokens(tiny_llama, ids, gens(), max_new_tokens=4, sampling=sampling)
        assert set(seen) == {tiny_llama.cfg.n_layers}
        seen.clear()
        with transformerlens_forward(tiny_llama), transformerlens_forward(tiny_llama):
            with fast_path(tiny_llama) as on:
                assert not on
            tl = generate_tokens(tiny_llama, ids, gens(), max_new_tokens=4, sampling=sampling)
            PrefixBatch(tiny_llama, ids).logits([None])
        assert set(seen) == {0}
    assert fast == tl
    assert "_actadd_transformerlens_forward" not in vars(tiny_llama)
    with fast_path(tiny_llama) as on:
        assert on
