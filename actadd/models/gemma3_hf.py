"""Gemma 3 as a Hugging Face ``Gemma3ForCausalLM`` built from actadd's own conversion, for
the TransformerBridge (``load_model("gemma3-270m", backend="bridge")``).

The weights are the ones :mod:`actadd.models.gemma3` dequantized into the verified cache
(TransformerLens names, the embedding stored once, unscaled, as ``embed_raw``), put back
under Hugging Face names: only reshapes and transposes, and one convention:

- llama.cpp stores every RMSNorm weight (the four around attention and MLP, QK-norm, the
  final norm) with Gemma's ``+1`` added, as TransformerLens multiplies by it; HF's
  ``Gemma3RMSNorm`` adds the 1 itself, so the HF weight is the file's weight minus 1;
- HF's ``Gemma3TextScaledWordEmbedding`` scales by ``sqrt(d_model)`` in its forward, so
  ``embed_tokens`` holds the unscaled embedding, tied to ``lm_head``.

Nothing here comes from ``transformers``' GGUF loader
(:func:`actadd.models.hf_reference.hf_gemma3`), which stays the independent reference.
:func:`tiny_gemma3_hf_config` is the HF twin of ``tiny-gemma3``'s shape for unit tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from actadd.errors import ModelLoadError
from actadd.models import gemma3, gguf_cache
from actadd.models.gemma3 import LOCAL_ROPE_BASE, TINY_WINDOW, attn_types

__all__ = [
    "gemma3_270m_hf",
    "gemma3_hf_config",
    "gemma3_hf_from_cache",
    "hf_state_dict",
    "tiny_gemma3_hf_config",
]

_NORMS = {  # TransformerLens norm -> HF module, under blocks.{i} / model.layers.{i}
    "ln1.w": "input_layernorm",
    "ln1_post.w": "post_attention_layernorm",
    "ln2.w": "pre_feedforward_layernorm",
    "ln2_post.w": "post_feedforward_layernorm",
    "attn.q_norm.w": "self_attn.q_norm",
    "attn.k_norm.w": "self_attn.k_norm",
}


def _text_config(attn_implementation: str = "eager", **kw):
    import transformers

    return transformers.Gemma3TextConfig(
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        attn_implementation=attn_implementation,
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
        architectures=["Gemma3ForCausalLM"],
        **kw,
    )


def _rope(global_base: float, local_base: float) -> dict:
    return {
        "full_attention": {"rope_type": "default", "rope_theta": float(global_base)},
        "sliding_attention": {"rope_type": "default", "rope_theta": float(local_base)},
    }


def _layer_types(kinds: list[str]) -> list[str]:
    return ["full_attention" if k == "global" else "sliding_attention" for k in kinds]


def gemma3_hf_config(hp: dict[str, Any], *, bos=2, eos=1, pad=0, attn_implementation="eager"):
    """The ``Gemma3TextConfig`` of a converted ``gemma3`` GGUF (``hparams.json``): the same
    shape, window, rotary bases and local/global pattern as
    :func:`actadd.models.gemma3.gemma3_config`. ``attn_implementation``: ``"eager"`` (the
    default: the sliding window exactly as TransformerLens applies it) or ``"sdpa"``."""
    return _text_config(
        attn_implementation,
        vocab_size=hp["d_vocab"],
        hidden_size=hp["d_model"],
        intermediate_size=hp["d_mlp"],
        num_hidden_layers=hp["n_layers"],
        num_attention_heads=hp["n_heads"],
        num_key_value_heads=hp["n_kv_heads"],
        head_dim=hp["d_head"],
        query_pre_attn_scalar=hp["d_head"],
        max_position_embeddings=hp["n_ctx"],
        rms_norm_eps=hp["eps"],
        sliding_window=hp["window"],
        layer_types=_layer_types(attn_types(hp["n_layers"])),
        rope_parameters=_rope(hp["rope_base"], LOCAL_ROPE_BASE),
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )


def tiny_gemma3_hf_config(shape: dict[str, int], specials: dict[str, int]):
    """The HF twin of ``tiny-gemma3`` (:func:`actadd.models.gemma3.tiny_gemma3_config`):
    ``shape`` in TransformerLens names (the tiny models' shape), one KV head, a window of
    :data:`~actadd.models.gemma3.TINY_WINDOW` tokens on every layer but the last."""
    n = shape["n_layers"]
    return _text_config(
        vocab_size=shape["d_vocab"],
        hidden_size=shape["d_model"],
        intermediate_size=shape["d_mlp"],
        num_hidden_layers=n,
        num_attention_heads=shape["n_heads"],
        num_key_value_heads=1,
        head_dim=shape["d_head"],
        query_pre_attn_scalar=shape["d_head"],
        max_position_embeddings=shape["n_ctx"],
        rms_norm_eps=1e-6,
        sliding_window=TINY_WINDOW,
        layer_types=_layer_types(["local"] * (n - 1) + ["global"]),
        rope_parameters=_rope(1_000_000, 10_000),
        **specials,
    )


def hf_state_dict(sd: dict[str, torch.Tensor], hp: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The cached TransformerLens-named tensors of :func:`actadd.models.gemma3.tl_state_dict`
    under ``Gemma3ForCausalLM`` names (norm weights minus 1, the embedding unscaled)."""
    n, k, h, d = hp["n_heads"], hp["n_kv_heads"], hp["d_head"], hp["d_model"]
    out = {
        "model.embed_tokens.weight": sd["embed_raw"],
        "model.norm.weight": sd["ln_final.w"] - 1.0,
    }
    for i in range(hp["n_layers"]):
        p, q = f"blocks.{i}.", f"model.layers.{i}."
        for tl, hf in _NORMS.items():
            out[f"{q}{hf}.weight"] = sd[p + tl] - 1.0
        # [heads, d_model, d_head] -> [heads * d_head, d_model]
        out[q + "self_attn.q_proj.weight"] = sd[p + "attn.W_Q"].transpose(1, 2).reshape(n * h, d)
        out[q + "self_attn.k_proj.weight"] = sd[p + "attn._W_K"].transpose(1, 2).reshape(k * h, d)
        out[q + "self_attn.v_proj.weight"] = sd[p + "attn._W_V"].transpose(1, 2).reshape(k * h, d)
        # [heads, d_head, d_model] -> [d_model, heads * d_head]
        out[q + "self_attn.o_proj.weight"] = sd[p + "attn.W_O"].reshape(n * h, d).T
        out[q + "mlp.up_proj.weight"] = sd[p + "mlp.W_in"].T
        out[q + "mlp.gate_proj.weight"] = sd[p + "mlp.W_gate"].T
        out[q + "mlp.down_proj.weight"] = sd[p + "mlp.W_out"].T
    return {name: t.contiguous() for name, t in out.items()}


def gemma3_hf_from_cache(directory: Path, tokenizer=None, *, attn_implementation="eager"):
    """``Gemma3ForCausalLM`` (CPU, float32, eval mode) holding the weights converted into the
    cache entry ``directory`` by :func:`actadd.models.gemma3.convert`; the special tokens are
    ``tokenizer``'s when given. ``attn_implementation`` as in :func:`gemma3_hf_config`."""
    import transformers
    from safetensors.torch import load_file

    try:
        hp = json.loads((directory / "hparams.json").read_text())
        sd = load_file(str(directory / "weights.safetensors"))
    except Exception as exc:
        raise ModelLoadError(
            f"Could not read the converted model in {directory} ({type(exc).__name__}: {exc}); "
            "delete that directory and load again to rebuild it."
        ) from exc
    ids = {}
    if tokenizer is not None:
        t = tokenizer
        ids = dict(bos=t.bos_token_id, eos=t.eos_token_id, pad=t.pad_token_id)
    config = gemma3_hf_config(hp, **ids, attn_implementation=attn_implementation)
    model = transformers.Gemma3ForCausalLM(config)
    weights = hf_state_dict(sd, hp)
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    model.load_state_dict(weights, strict=True, assign=True)
    model.tie_weights()
    if model.lm_head.weight is not model.model.embed_tokens.weight:
        raise ModelLoadError("Gemma 3's unembedding must be tied to its embedding.")
    return model.eval()


def gemma3_270m_hf(*, attn_implementation: str = "sdpa"):
    """The embedded Gemma 3 270M as a ``Gemma3ForCausalLM`` from actadd's conversion (the
    same weights as ``load_model("gemma3-270m")``; converted on first use).
    ``attn_implementation`` defaults to transformers' own default, SDPA: the speed baseline
    of ``benchmarks/bench_vs_hf.py``."""
    entry = gguf_cache.ensure_entry(gemma3.gemma3_path(), gemma3.convert)
    return gemma3_hf_from_cache(entry.directory, attn_implementation=attn_implementation)
