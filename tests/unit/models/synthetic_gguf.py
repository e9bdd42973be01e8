"""A synthetic Llama GGUF for the model-loading tests: random F32 weights in llama.cpp's tensor
names with a byte-level vocabulary, its transformers reference, and the cache's entries.
(test_loaders.py, test_gguf_cache.py and lab/test_run_integrity.py import it.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY = dict(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64, rope_base=10000.0, eps=1e-5)
ENDOFTEXT = "<|endoftext|>"


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
    """transformers' Llama built from a local config, holding ``hf_state_dict``'s weights
    (eager attention: the plain reference)."""
    from actadd.models.hf_reference import hf_llama

    return hf_llama(path, attn_implementation="eager")
