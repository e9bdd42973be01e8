"""Directional ablation: exact projection, untouched positions and layers, composition."""

from __future__ import annotations

import pytest
import torch

import actadd
from actadd import GREEDY, SteeringError, SteeringVector, steering
from actadd.core.ablation import Ablation, ablate_then_add, ablations
from actadd.core.methods import caa
from actadd.runtime.hooks import resid_pre

PROMPT = "I hate you because"  # 19 tokens with the leading token (byte tokenizer)


def resid_pre_all(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_resid_pre"))
    return [cache[resid_pre(model, layer)] for layer in range(model.cfg.n_layers)]


def direction(model, layer):
    return SteeringVector.from_pair(model, "Love", "Hate", layer=layer).mean(skip_first=True)


@pytest.mark.parametrize(
    "align, span, covered",
    [
        ("all", None, list(range(19))),
        ("positions:2,5,-1", None, [2, 5, 18]),
        ("offset:3", 4, [3, 4, 5, 6]),
        ("back", 2, [17, 18]),
    ],
)
def test_projection_is_zero_where_ablated_and_bit_identical_elsewhere(
    tiny_model, align, span, covered
):
    layer = 2
    d = direction(tiny_model, layer)
    u = d.tensor[0] / d.tensor[0].norm()
    tokens = tiny_model.to_tokens(PROMPT)
    clean = resid_pre_all(tiny_model, tokens)
    with steering(tiny_model, Ablation(d, align, span)):
        ablated = resid_pre_all(tiny_model, tokens)
    h = ablated[layer][0]
    on = torch.zeros(19, dtype=torch.bool)
    on[covered] = True
    before = (clean[layer][0][on] @ u).abs()
    after = (h[on] @ u).abs()
    assert float(before.min()) > 1e-3  # there was something to remove
    assert float(after.max()) < 1e-5 * float(clean[layer][0].norm(dim=-1).max())
    # the orthogonal part is unchanged up to rounding: x - (x.u)u
    expected = clean[layer][0][on] - (clean[layer][0][on] @ u)[:, None] * u
    torch.testing.assert_close(h[on], expected)
    assert torch.equal(h[~on], clean[layer][0][~on])
    for earlier in range(layer):
        assert torch.equal(ablated[earlier], clean[earlier])


def test_ablating_twice_equals_ablating_once(tiny_llama):
    """Ablating the same direction twice equals ablating it once (to rounding)."""
    d = direction(tiny_llama, 1)
    tokens = tiny_llama.to_tokens(PROMPT)
    with steering(tiny_llama, Ablation(d)):
        once = tiny_llama(tokens)
    with steering(tiny_llama, [Ablation(d), Ablation(d)]):
        twice = tiny_llama(tokens)
    torch.testing.assert_close(once, twice, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(once, tiny_llama(tokens))


def test_ablate_then_add_sets_the_component_to_the_vector_norm(tiny_llama):
    layer = 2
    (v,) = caa(tiny_llama, [("I love it", "I hate it"), ("Kind", "Cruel")], layer).values()
    v = 4 * v
    u = v.tensor[0] / v.tensor[0].norm()
    tokens = tiny_llama.to_tokens(PROMPT)
    with steering(tiny_llama, ablate_then_add(v)):
        h = resid_pre_all(tiny_llama, tokens)[layer][0]
    torch.testing.assert_close(h @ u, torch.full((19,), float(v.tensor[0].norm())))
    # the order is ablate first whatever the list order: adding first would be wiped out
    with steering(tiny_llama, [v, Ablation(v)], align="all"):
        h2 = resid_pre_all(tiny_llama, tokens)[layer][0]
    torch.testing.assert_close(h2, h)


def test_ablation_at_every_layer_composes_with_nested_contexts(tiny_llama):
    d = direction(tiny_llama, 1)
    layers = list(range(tiny_llama.cfg.n_layers))
    tokens = tiny_llama.to_tokens(PROMPT)
    v = SteeringVector.from_pair(tiny_llama, "Calm", "Anger", layer=3)
    with steering(tiny_llama, ablations(d, layers) + [v]):
        together = tiny_llama(tokens)
    with steering(tiny_llama, ablations(d, layers)), steering(tiny_llama, v):
        nested = tiny_llama(tokens)
    assert torch.equal(together, nested)


def test_hooks_are_removed_on_exception(tiny_llama):
    with pytest.raises(RuntimeError, match="boom"):
        with steering(tiny_llama, Ablation(direction(tiny_llama, 1))):
            raise RuntimeError("boom")
    # the autouse fixture checks that no hook and no patched forward are left


@pytest.mark.parametrize("align", ["all", "generated", "from:e"])
def test_ablated_generation_is_the_same_with_and_without_cache(tiny_model, align):
    abl = Ablation(direction(tiny_model, 2).at_layer(2) * 50, align)
    prompts = [PROMPT, "Hi there"]
    runs = [
        actadd.generate(tiny_model, prompts, abl, sampling=GREEDY, max_new_tokens=12, use_cache=c)
        for c in (True, False)
    ]
    assert runs[0].completion.tolist() == runs[1].completion.tolist()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(align="front"), r"needs span=<number of positions>"),
        (dict(align="all", span=3), r"span is only for front/offset/back"),
    ],
)
def test_bad_ablations_are_one_clear_line(tiny_llama, kwargs, message):
    with pytest.raises(SteeringError, match=message):
        Ablation(direction(tiny_llama, 1), **kwargs)


def test_ablation_needs_a_one_row_nonzero_direction(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    with pytest.raises(SteeringError, match="one-row SteeringVector"):
        Ablation(v)
    with pytest.raises(SteeringError, match="all zeros"):
        Ablation(0 * v.mean())
