"""The TransformerBridge backend: loading, parity with Hugging Face, and its clear errors.

The steering proofs themselves (exact additions, untouched positions, cache = no cache,
batch = alone, ``[v1, v2]`` = ``v1 + v2``, cleanup) run on both backends in
``core/test_steering.py`` through the ``any_model`` fixture.
"""

from __future__ import annotations

import json

import pytest
import torch

import actadd
from actadd import GREEDY, ModelLoadError, SteeringError, SteeringVector, steering
from actadd.core.generation import generate_tokens
from actadd.core.placement import Placement
from actadd.core.prefix import PrefixBatch
from actadd.models.bridge import tiny_hf_dir, tiny_hf_model
from actadd.models.hf_reference import add_at_front
from actadd.models.tokenizer import load_fast_tokenizer
from actadd.runtime.backends import BRIDGE, HOOKED, backend_of
from actadd.runtime.forward import last_logits

pytestmark = pytest.mark.bridge

PROMPT = "I hate you because"


def hf_layers(hf):
    return hf.model.layers if hasattr(hf, "model") else hf.transformer.h


def test_backend_of_tells_the_two_apart(tiny_llama, tiny_bridge):
    from actadd.lab.runinfo import env_info

    assert env_info(tiny_llama)["model"]["backend"] == "hooked"
    assert backend_of(tiny_llama) is HOOKED and backend_of(tiny_bridge) is BRIDGE
    assert (
        tiny_bridge.hook_dict["blocks.2.hook_resid_pre"]
        is tiny_bridge.hook_dict["blocks.2.hook_in"]
    )


def test_bridge_steering_equals_a_hugging_face_pre_hook(tiny_bridge):
    model = tiny_bridge
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=2, coeff=4)
    tokens = model.to_tokens(PROMPT)
    with steering(model, v):
        ours = model(tokens)
    hf = model.original_model
    handle = add_at_front(hf_layers(hf)[2], v.tensor)
    try:
        theirs = hf(tokens).logits
    finally:
        handle.remove()
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert not torch.allclose(ours, model(tokens), atol=1e-3)


def test_bridge_greedy_generation_equals_hf_generate_with_a_pre_hook(tiny_bridge):
    model = tiny_bridge
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=1, coeff=4)
    ids = model.to_tokens(PROMPT)
    with steering(model, v):
        ours = generate_tokens(
            model, [ids[0].tolist()], [torch.Generator()], max_new_tokens=12, sampling=GREEDY
        )[0]
    hf = model.original_model
    handle = add_at_front(hf_layers(hf)[1], v.tensor)
    try:
        out = hf.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=258,
        )
    finally:
        handle.remove()
    assert ours == out[0, ids.shape[1] :].tolist()


def test_bridge_last_logits_are_the_full_forwards_last_position(tiny_bridge):
    tokens = tiny_bridge.to_tokens([PROMPT, "Hello there you"], padding_side="left")
    torch.testing.assert_close(last_logits(tiny_bridge, tokens), tiny_bridge(tokens)[:, -1])


def test_bridge_prefix_batch_equals_a_steered_forward_per_condition(tiny_bridge):
    model = tiny_bridge
    v = SteeringVector.from_pair(model, "Love", "Hate", layer=2, coeff=3)
    texts = [PROMPT, "Short one", "Another longer text here"]
    ids = [model.to_tokens(t)[0].tolist() for t in texts]
    conditions = [None, v, 2 * v, Placement(v.mean(skip_first=True), "all")]
    batch = PrefixBatch(model, ids, max_rows=5)
    assert not batch.restarts  # TransformerLens 3.9's bridge has no start_at_layer
    got = batch.logits(conditions)
    for cond, logits in zip(conditions, got):
        for i, t in enumerate(texts):
            tokens = model.to_tokens(t)
            if cond is None:
                want = model(tokens)[0, -1]
            else:
                with steering(model, cond):
                    want = model(tokens)[0, -1]
            torch.testing.assert_close(logits[i], want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got[0], got[1], atol=1e-3)


def test_an_in_memory_hf_model_is_wrapped_in_place(tmp_path):
    hf = tiny_hf_model("tiny-gpt2", seed=3)
    d = tiny_hf_dir("tiny-gpt2", tmp_path / "m", seed=3)
    tok = load_fast_tokenizer(d)
    model = actadd.load_model(hf, backend="bridge", tokenizer=tok)
    assert model.original_model is hf
    from_dir = actadd.load_model(d, backend="bridge")
    tokens = model.to_tokens(PROMPT)
    torch.testing.assert_close(model(tokens), from_dir(tokens), atol=0, rtol=0)


def test_bridge_rejects_the_hooked_cache_keyword(tiny_bridge):
    v = SteeringVector.from_pair(tiny_bridge, "Love", "Hate", layer=1)
    with steering(tiny_bridge, v), pytest.raises(SteeringError, match="past_key_values"):
        tiny_bridge(tiny_bridge.to_tokens(PROMPT), past_kv_cache=object())


def test_directory_without_weights_is_one_clear_error(tmp_path):
    d = tiny_hf_dir("tiny-llama", tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights"):
        actadd.load_model(d, backend="bridge")


def test_architecture_the_bridge_cannot_wrap_is_one_clear_error(tmp_path):
    d = tiny_hf_dir("tiny-llama", tmp_path / "m")
    config = json.loads((d / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="NoSuchModelForCausalLM.*no adapter"):
        actadd.load_model(d, backend="bridge")


def test_hub_name_while_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hub is not reachable"):
        actadd.load_model("someone/some-model-not-cached", backend="bridge")


@pytest.mark.parametrize("bad", ["bridges", "hf", None])
def test_unknown_backend_is_rejected(bad):
    with pytest.raises(ModelLoadError, match="backend must be one of"):
        actadd.load_model("tiny-llama", backend=bad)


def test_in_memory_model_needs_the_bridge_and_a_tokenizer():
    hf = tiny_hf_model("tiny-llama")
    with pytest.raises(ModelLoadError, match="backend='bridge'"):
        actadd.load_model(hf)
    with pytest.raises(ModelLoadError, match="tokenizer="):
        actadd.load_model(hf, backend="bridge")


def test_every_run_records_its_backend(tiny_bridge):
    from actadd.lab.runinfo import env_info

    assert env_info(tiny_bridge)["model"]["backend"] == "bridge"
