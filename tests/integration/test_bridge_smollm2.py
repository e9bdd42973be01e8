"""SmolLM2 on both backends: the HookedTransformer from the GGUF and a TransformerBridge
around an HF LlamaForCausalLM holding the same dequantized tensors. Steered numbers agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from actadd import SteeringVector, steering
from actadd.models.hf_reference import add_at_front
from actadd.runtime.backends import BRIDGE, backend_of
from actadd.sweeps import SweepSpec, run_sweep, sort_results

pytestmark = pytest.mark.bridge

PROMPTS = ["I went up to my friend and said", "I hate you because"]


def test_bridge_smollm2_has_the_same_tokens_and_provenance(smollm2, smollm2_bridge):
    assert backend_of(smollm2_bridge) is BRIDGE
    assert smollm2_bridge.cfg.model_name == smollm2.cfg.model_name
    assert smollm2_bridge.actadd_source == smollm2.actadd_source
    for p in PROMPTS:
        assert torch.equal(smollm2.to_tokens(p), smollm2_bridge.to_tokens(p))


def test_steered_logits_agree_between_backends(smollm2, smollm2_bridge):
    v = SteeringVector.from_pair(smollm2, "Love", "Hate", layer=2, coeff=5)
    for p in PROMPTS:
        tokens = smollm2.to_tokens(p)
        clean = smollm2(tokens)
        with steering(smollm2, v):
            hooked = smollm2(tokens)
        with steering(smollm2_bridge, v):
            bridge = smollm2_bridge(tokens)
        # the steering moves logits by ~30; the backends differ by float rounding
        assert float((hooked - clean).abs().max()) > 10
        lp_h, lp_b = hooked.log_softmax(-1), bridge.log_softmax(-1)
        torch.testing.assert_close(lp_b, lp_h, atol=1e-4, rtol=0)
        torch.testing.assert_close(bridge, hooked, atol=2e-4, rtol=0)


def test_sweep_numbers_agree_between_backends(smollm2, smollm2_bridge):
    spec = SweepSpec.from_dict(
        dict(
            name="bridge-parity",
            pairs=[{"positive": "Love", "negative": "Hate"}],
            layers=[1, 6],
            coeffs=[1.0, 4.0],
            aligns=["front", "all"],
            equalize=["right"],
            prompts=PROMPTS,
            neutral_texts=["The weather today is mild and the shops are open."],
            target_words=[" love", " wedding"],
        )
    )
    hooked = sort_results(run_sweep(spec, smollm2, progress=False))
    bridge = sort_results(run_sweep(spec, smollm2_bridge, progress=False))
    keys = [c for c in hooked.columns if c != "value"]
    pd.testing.assert_frame_equal(hooked[keys], bridge[keys])
    assert hooked.value.abs().max() > 0.1  # the sweep measured something
    np.testing.assert_allclose(bridge.value, hooked.value, rtol=0, atol=1e-4)


def test_bridge_smollm2_steering_equals_an_hf_pre_hook(smollm2_bridge):
    """Runs on TransformerLens 3.9 and 4.x alike (no HookedTransformer involved)."""
    model = smollm2_bridge
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=3, coeff=4)
    tokens = model.to_tokens(PROMPTS[0])
    with steering(model, v):
        ours = model(tokens)
    rows = v.tensor

    handle = add_at_front(model.original_model.model.layers[3], rows)
    try:
        theirs = model.original_model(tokens).logits
    finally:
        handle.remove()
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert float((ours - model(tokens)).abs().max()) > 1
