"""Gemma 3 270M on both backends: the HookedTransformer and a TransformerBridge around an HF
``Gemma3ForCausalLM`` holding the same converted tensors (norm weights minus 1, the embedding
unscaled: see actadd.models.gemma3_hf). Logits and steered logits agree; steering through the
bridge adds exactly the vector's rows, and equals an HF forward pre-hook."""

from __future__ import annotations

import pytest
import torch

import actadd
from actadd import SteeringVector, steering
from actadd.models.gemma3 import GEMMA3_NAME, LICENSE
from actadd.models.hf_reference import add_at_front
from actadd.runtime.backends import BRIDGE, HAS_HOOKED, backend_of

pytestmark = pytest.mark.bridge

PROMPTS = [
    "The capital of France is",
    "I hate you because",
    "I went up to my friend and said",
    "In 1492, Columbus sailed across the Atlantic Ocean, hoping to find a new route to India.",
]
LAYER = 9  # the middle of 18


@pytest.fixture(scope="module")
def gemma3():
    if not HAS_HOOKED:
        pytest.skip("this TransformerLens (4.x) has no HookedTransformer")
    return actadd.load_model("gemma3-270m")


@pytest.fixture(scope="module")
def gemma3_bridge():
    return actadd.load_model("gemma3-270m", backend="bridge")


def test_bridge_gemma3_is_gemma3_with_its_file_and_license(gemma3_bridge):
    model = gemma3_bridge
    assert backend_of(model) is BRIDGE
    assert type(model.original_model).__name__ == "Gemma3ForCausalLM"
    assert model.cfg.model_name == GEMMA3_NAME and model.cfg.n_layers == 18
    src = model.actadd_source
    assert src["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert src["quantization"] == "Q4_K_M" and src["license"] == LICENSE
    hf = model.original_model
    assert hf.config.sliding_window == 512 and hf.config.layer_types.count("full_attention") == 3
    assert hf.lm_head.weight is hf.model.embed_tokens.weight


def test_bridge_gemma3_has_the_same_tokens_and_provenance(gemma3, gemma3_bridge):
    assert gemma3_bridge.actadd_source == gemma3.actadd_source
    assert gemma3_bridge.cfg.n_ctx == gemma3.cfg.n_ctx
    for p in PROMPTS:
        assert torch.equal(gemma3.to_tokens(p), gemma3_bridge.to_tokens(p))


@pytest.mark.parametrize("prompt", PROMPTS, ids=range(len(PROMPTS)))
def test_bridge_logits_equal_the_hooked_transformers(gemma3, gemma3_bridge, prompt):
    tokens = gemma3.to_tokens(prompt)
    hooked, bridge = gemma3(tokens), gemma3_bridge(tokens)
    torch.testing.assert_close(bridge, hooked, atol=1e-4, rtol=0)


def test_steered_logits_agree_between_backends(gemma3, gemma3_bridge):
    v = SteeringVector.from_pair(gemma3, "Love", "Hate", layer=LAYER, coeff=1)
    for p in PROMPTS[:2]:
        tokens = gemma3.to_tokens(p)
        clean = gemma3(tokens)
        with steering(gemma3, v):
            hooked = gemma3(tokens)
        with steering(gemma3_bridge, v):
            bridge = gemma3_bridge(tokens)
        assert float((hooked - clean).abs().max()) > 1  # the steering moved something
        torch.testing.assert_close(bridge, hooked, atol=1e-4, rtol=0)


def test_bridge_steering_adds_exactly_the_rows_at_the_steered_positions(gemma3_bridge):
    """At the steered layer: positions [0, k) are clean + rows, bit for bit; the rest of the
    layer and every earlier layer are untouched, bit for bit."""
    model = gemma3_bridge
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=LAYER, coeff=1)
    k = v.tensor.shape[0]
    tokens = model.to_tokens(PROMPTS[2])
    names = [f"blocks.{i}.hook_resid_pre" for i in range(LAYER + 1)]

    def acts():
        return model.run_with_cache(tokens, names_filter=lambda n: n in names)[1]

    clean = acts()
    with steering(model, v):
        steered = acts()
    here = f"blocks.{LAYER}.hook_resid_pre"
    assert torch.equal(steered[here][0, :k], clean[here][0, :k] + v.tensor)
    assert torch.equal(steered[here][0, k:], clean[here][0, k:])
    for name in names[:-1]:
        assert torch.equal(steered[name], clean[name]), name


def test_bridge_gemma3_steering_equals_an_hf_pre_hook(gemma3_bridge):
    """Runs on TransformerLens 3.9 and 4.x alike (no HookedTransformer involved)."""
    model = gemma3_bridge
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=LAYER, coeff=1)
    tokens = model.to_tokens(PROMPTS[0])
    with steering(model, v):
        ours = model(tokens)
    handle = add_at_front(model.original_model.model.layers[LAYER], v.tensor)
    try:
        theirs = model.original_model(tokens).logits
    finally:
        handle.remove()
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert float((ours - model(tokens)).abs().max()) > 1


def test_a_gemma3_gguf_path_loads_on_the_bridge_too(gemma3_bridge):
    from actadd.models.gemma3 import gemma3_path

    model = actadd.load_model(str(gemma3_path()), backend="bridge")
    assert type(model.original_model).__name__ == "Gemma3ForCausalLM"
    assert model.actadd_source["sha256"] == gemma3_bridge.actadd_source["sha256"]
    tokens = model.to_tokens(PROMPTS[0])
    assert torch.equal(model(tokens), gemma3_bridge(tokens))
