"""Model loading without the embedded model's weights: errors, synthetic GGUFs, tiny models.

Every test that could write converted weights points ``ACTADD_CACHE_DIR`` at ``tmp_path``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import actadd
from actadd import ModelLoadError
from actadd.models import gguf_llama, smollm2_path

# --------------------------------------------------------------------------- helpers

TINY = dict(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64, rope_base=10000.0, eps=1e-5)
ENDOFTEXT = "<|endoftext|>"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(directory))
    return directory


def _cache_entries(cache: Path) -> list[Path]:
    return sorted((cache / "gguf").glob("*")) if (cache / "gguf").exists() else []


def byte_level_vocab() -> tuple[list[str], list[int]]:
    """The 256 ByteLevel alphabet characters plus an <|endoftext|> control token."""
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    assert len(alphabet) == 256
    return alphabet + [ENDOFTEXT], [1] * 256 + [3]


def write_tiny_llama_gguf(
    path: Path, *, tied: bool = True, seed: int = 0, skip: tuple[str, ...] = ()
) -> None:
    """A random F32 Llama GGUF in llama.cpp's tensor names (numpy shapes are [out, in])."""
    from gguf import GGUFWriter

    tokens, token_types = byte_level_vocab()
    d, d_mlp, n_layers = TINY["d_model"], TINY["d_mlp"], TINY["n_layers"]
    d_head = d // TINY["n_heads"]
    d_kv = TINY["n_kv_heads"] * d_head
    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm() -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32)

    tensors = {"token_embd.weight": mat(len(tokens), d), "output_norm.weight": norm()}
    if not tied:
        tensors["output.weight"] = mat(len(tokens), d)
    for i in range(n_layers):
        b = f"blk.{i}."
        tensors |= {
            b + "attn_norm.weight": norm(),
            b + "attn_q.weight": mat(d, d),
            b + "attn_k.weight": mat(d_kv, d),
            b + "attn_v.weight": mat(d_kv, d),
            b + "attn_output.weight": mat(d, d),
            b + "ffn_norm.weight": norm(),
            b + "ffn_gate.weight": mat(d_mlp, d),
            b + "ffn_up.weight": mat(d_mlp, d),
            b + "ffn_down.weight": mat(d, d_mlp),
        }

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-gguf")
    writer.add_block_count(n_layers)
    writer.add_context_length(128)
    writer.add_embedding_length(d)
    writer.add_feed_forward_length(d_mlp)
    writer.add_head_count(TINY["n_heads"])
    writer.add_head_count_kv(TINY["n_kv_heads"])
    writer.add_rope_freq_base(TINY["rope_base"])
    writer.add_layer_norm_rms_eps(TINY["eps"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    for name, array in tensors.items():
        if name not in skip:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def hf_llama_from_gguf(path: Path):
    """transformers' Llama built from a local config, holding ``hf_state_dict``'s weights."""
    import transformers

    reader = gguf_llama.open_reader(path)
    hp = gguf_llama.read_hparams(reader, path)
    config = transformers.LlamaConfig(
        vocab_size=hp.d_vocab,
        hidden_size=hp.d_model,
        intermediate_size=hp.d_mlp,
        num_hidden_layers=hp.n_layers,
        num_attention_heads=hp.n_heads,
        num_key_value_heads=hp.n_kv_heads,
        hidden_act="silu",
        rope_theta=hp.rope_base,
        rms_norm_eps=hp.eps,
        tie_word_embeddings=hp.tied_embeddings,
        max_position_embeddings=hp.n_ctx,
        attn_implementation="eager",
    )
    model = transformers.LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(gguf_llama.hf_state_dict(reader, hp), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return model.eval()


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
