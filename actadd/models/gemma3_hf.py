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

from typing import Any

import torch

from actadd.errors import ModelLoadError
from actadd.models import gemma3, gguf_cache
from actadd.models.gemma3 import LOCAL_ROPE_BASE, TINY_WINDOW, attn_types

__all__ = [
    "gemma3_270m_hf",
    "gemma3_hf_config",
    "gemma3_hf_model",
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


#: TransformerLens shape names -> Gemma3TextConfig names
_HF_NAMES = {
    "d_vocab": "vocab_size",
    "d_model": "hidden_size",
    "d_mlp": "intermediate_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "d_head": "head_dim",
    "n_ctx": "max_position_embeddings",
}


def _text_config(
    shape: dict[str, Any],
    *,
    n_kv_heads: int,
    eps: float,
    window: int,
    kinds: list[str],
    rope_bases: tuple[float, float],
    attn_implementation: str = "eager",
    **special_ids,
):
    """A ``Gemma3TextConfig`` from a shape in TransformerLens names, the local/global pattern
    ``kinds`` and ``rope_bases`` = (global, local); no soft-capping, tied embeddings."""
    import transformers

    global_base, local_base = rope_bases
    return transformers.Gemma3TextConfig(
        **{hf: shape[tl] for tl, hf in _HF_NAMES.items()},
        num_key_value_heads=n_kv_heads,
        query_pre_attn_scalar=shape["d_head"],
        rms_norm_eps=eps,
        sliding_window=window,
        layer_types=["full_attention" if k == "global" else "sliding_attention" for k in kinds],
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": float(global_base)},
            "sliding_attention": {"rope_type": "default", "rope_theta": float(local_base)},
        },
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        attn_implementation=attn_implementation,
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
        architectures=["Gemma3ForCausalLM"],
        **special_ids,
    )


def gemma3_hf_config(hp: dict[str, Any], *, bos=2, eos=1, pad=0, attn_implementation="eager"):
    """The ``Gemma3TextConfig`` of a converted ``gemma3`` GGUF (``hparams.json``): the same
    shape, window, rotary bases and local/global pattern as
    :func:`actadd.models.gemma3.gemma3_config`. ``attn_implementation``: ``"eager"`` (the
    default: the sliding window exactly as TransformerLens applies it) or ``"sdpa"``."""
    return _text_config(
        hp,
        n_kv_heads=hp["n_kv_heads"],
        eps=hp["eps"],
        window=hp["window"],
        kinds=attn_types(hp["n_layers"]),
        rope_bases=(hp["rope_base"], LOCAL_ROPE_BASE),
        attn_implementation=attn_implementation,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )


def tiny_gemma3_hf_config(shape: dict[str, int], specials: dict[str, int]):
    """The HF twin of ``tiny-gemma3`` (:func:`actadd.models.gemma3.tiny_gemma3_config`):
    ``shape`` in TransformerLens names (the tiny models' shape), one KV head, a window of
    :data:`~actadd.models.gemma3.TINY_WINDOW` tokens on every layer but the last;
    ``specials``: ``bos_token_id``, ``eos_token_id``, ``pad_token_id``."""
    return _text_config(
        shape,
        n_kv_heads=1,
        eps=1e-6,
        window=TINY_WINDOW,
        kinds=["local"] * (shape["n_layers"] - 1) + ["global"],
        rope_bases=(1_000_000, 10_000),
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


def gemma3_hf_model(
    hp: dict[str, Any], sd: dict[str, torch.Tensor], tokenizer=None, *, attn_implementation="eager"
):
    """``Gemma3ForCausalLM`` (CPU, float32, eval mode) holding ``sd``, the tensors
    :func:`actadd.models.gemma3.convert` wrote (:func:`~actadd.models.gemma3.read_converted`
    reads them with ``hp``); the special tokens are ``tokenizer``'s when given.
    ``attn_implementation`` as in :func:`gemma3_hf_config`."""
    import transformers

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
    hp, tokenizer, sd = gemma3.read_converted(entry.directory)
    return gemma3_hf_model(hp, sd, tokenizer, attn_implementation=attn_implementation)
