"""Model loading without the embedded model's weights: errors, synthetic GGUFs and tiny models
(actadd.models.loaders). The converted-model cache: test_gguf_cache.py.

Every test that could write converted weights points ``ACTADD_CACHE_DIR`` at ``tmp_path`` (the
``cache`` fixture, conftest.py).
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch
from unit.models.synthetic_gguf import (
    _cache_entries,
    hf_llama_from_gguf,
    write_tiny_llama_gguf,
)

import actadd
from actadd import ModelLoadError
from actadd.models import smollm2_path

# --------------------------------------------------------------------------- bad names and files


def test_unknown_name_fails_fast_listing_what_is_accepted():
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        actadd.load_model("no-such-model")
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert "no-such-model" in message
    for accepted in ("smollm2", ".gguf", "tiny-llama", "tiny-gpt2", "gpt2-small"):
        assert accepted in message
    assert elapsed < 5.0


def test_official_name_offline_fails_fast_naming_offline_alternatives(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # an empty HF cache, so the result does not depend on what this machine has downloaded
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        actadd.load_model("gpt2-small")
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert "Offline alternatives" in message
    assert "load_model()" in message and ".gguf" in message and "tiny-llama" in message
    assert elapsed < 3.0


def test_non_gguf_file_is_rejected(tmp_path, cache):
    path = tmp_path / "x.gguf"
    path.write_bytes(b"hello")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        actadd.load_model(path)
    assert _cache_entries(cache) == []


def test_missing_gguf_path_is_reported(tmp_path, cache):
    with pytest.raises(ModelLoadError, match="not found"):
        actadd.load_model(tmp_path / "absent.gguf")


def test_gguf_of_unsupported_architecture_is_rejected(tmp_path, cache):
    from gguf import GGUFWriter

    path = tmp_path / "gpt2.gguf"
    writer = GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="unsupported GGUF architecture 'gpt2'"):
        actadd.load_model(path)
    assert _cache_entries(cache) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "keep",
    [64 << 10, 1 << 20, -100],
    ids=["cut-in-metadata", "cut-after-1MB", "last-100-bytes-missing"],
)
def test_truncated_gguf_fails_with_a_clear_message_and_caches_nothing(tmp_path, cache, keep):
    source = smollm2_path()
    size = keep if keep > 0 else source.stat().st_size + keep
    path = tmp_path / "truncated.gguf"
    with open(source, "rb") as src:
        path.write_bytes(src.read(size))
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        actadd.load_model(path)
    assert _cache_entries(cache) == []


def test_gguf_missing_a_tensor_names_it(tmp_path, cache):
    path = tmp_path / "incomplete.gguf"
    write_tiny_llama_gguf(path, skip=("blk.1.ffn_down.weight",))
    with pytest.raises(ModelLoadError, match="blk.1.ffn_down.weight"):
        actadd.load_model(path)
    assert _cache_entries(cache) == []


# --------------------------------------------------------------------------- a synthetic Llama


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_tiny_llama_gguf_loads_and_matches_transformers_llama(tmp_path, cache, tied):
    path = tmp_path / "tiny.gguf"
    write_tiny_llama_gguf(path, tied=tied)
    model = actadd.load_model(path)

    cfg = model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_key_value_heads) == (2, 32, 4, 2)
    assert (cfg.d_mlp, cfg.d_vocab, cfg.n_ctx, cfg.model_name) == (64, 257, 128, "tiny-llama-gguf")
    assert len(_cache_entries(cache)) == 1

    tokens = model.to_tokens("Hello, world!")
    assert tokens[0, 0].item() == 256  # the leading token is <|endoftext|>
    assert tokens.shape == (1, 1 + len("Hello, world!"))
    logits = model(tokens)
    assert logits.shape == (1, tokens.shape[1], 257)

    reference = hf_llama_from_gguf(path)(input_ids=tokens).logits
    diff = (logits - reference).abs().max().item()
    print(f"tiny GGUF ({'tied' if tied else 'untied'}) parity max|diff| = {diff:.3g}")
    assert diff < 1e-5
    if not tied:
        assert not torch.equal(model.W_U, model.W_E.T)


def test_tiny_llama_gguf_round_trips_bytes_through_its_tokenizer(tmp_path, cache):
    path = tmp_path / "tiny.gguf"
    write_tiny_llama_gguf(path)
    tok = actadd.load_model(path).tokenizer
    text = "naïve café 12 🙂"
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text.encode("utf-8"))  # no merges: one token per byte
    assert tok.decode(ids) == text


# --------------------------------------------------------------------------- tiny random models


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_tiny_model_weights_are_a_function_of_the_seed(name, cache):
    assert _same_weights(actadd.load_model(name, seed=0), actadd.load_model(name, seed=0))
    assert not _same_weights(actadd.load_model(name, seed=0), actadd.load_model(name, seed=1))


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_loading_a_tiny_model_leaves_the_global_rng_alone(name, cache):
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    actadd.load_model(name, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_tiny_model_tokenizer_is_rebuilt_into_an_empty_cache(cache):
    model = actadd.load_model("tiny-llama")
    assert (cache / "tokenizers" / "byte-level-v1" / "tokenizer.json").exists()
    shutil.rmtree(cache)
    again = actadd.load_model("tiny-llama")
    assert torch.equal(model.to_tokens("Love"), again.to_tokens("Love"))
    assert model.to_tokens("Love").shape == (1, 5)
