"""Independent references: Hugging Face models holding a GGUF's weights.

- :func:`hf_gemma3`: ``transformers``' own GGUF loader (its dequantizer, its name map, its
  tokenizer conversion) on a Gemma 3 file: nothing shared with :mod:`actadd.models.gemma3`.
- :func:`hf_llama`: a ``LlamaForCausalLM``, built offline from a local config and
  :func:`actadd.models.gguf_llama.hf_state_dict` (the file's dequantized tensors under HF
  names): it shares no code with the TransformerLens conversion.

Tests use them for logit and greedy-text parity; ``benchmarks/bench_vs_hf.py`` uses them as
the speed baseline.
"""

from __future__ import annotations

import os
from pathlib import Path

from actadd.errors import ModelLoadError
from actadd.models import gguf_llama
from actadd.models.sources import smollm2_path

__all__ = ["add_at_front", "hf_gemma3", "hf_llama"]


def hf_llama(
    path: str | os.PathLike | None = None, *, attn_implementation: str = "sdpa"
):  # -> transformers.LlamaForCausalLM (imported lazily: transformers is slow to import)
    """``LlamaForCausalLM`` (CPU, float32, eval mode) with the dequantized weights of the
    Llama GGUF at ``path`` (default: the embedded SmolLM2).

    ``attn_implementation``: ``"sdpa"`` (transformers' default) or ``"eager"``.
    """
    import transformers

    path = Path(path) if path is not None else smollm2_path()
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
        attn_implementation=attn_implementation,
    )
    model = transformers.LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(gguf_llama.hf_state_dict(reader, hp), strict=False)
    if missing or unexpected:
        raise ModelLoadError(f"HF weight mismatch: missing {missing}, unexpected {unexpected}")
    if hp.tied_embeddings:
        model.tie_weights()
    return model.eval()


def hf_gemma3(path: str | os.PathLike | None = None, *, attn_implementation: str = "eager"):
    """``(Gemma3ForCausalLM, tokenizer)`` from ``transformers``' own GGUF loader on the Gemma 3
    file at ``path`` (default: the embedded 270M), CPU, float32, eval mode.

    ``attn_implementation="eager"`` (the default) applies the sliding window exactly as
    TransformerLens does; the GGUF quantization marker is cleared so the model is an ordinary
    float32 one.
    """
    import torch
    import transformers

    from actadd.models.gemma3 import gemma3_path

    path = Path(path) if path is not None else gemma3_path()
    kw = dict(gguf_file=path.name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), **kw)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), dtype=torch.float32, attn_implementation=attn_implementation, **kw
    )
    model.config.quantization_config = None
    return model.eval(), tokenizer


def add_at_front(layer_module, rows):
    """The steering an HF user writes, as an independent reference for actadd's: a forward
    pre-hook on ``layer_module`` (an HF decoder layer) adding ``rows`` [k, d_model] at
    positions [0, k) of its input on the prompt pass (cached decoding steps, seq_len 1, feel
    it through the keys and values). Returns the hook handle; call ``.remove()``."""

    def pre_hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        if hidden.shape[1] == 1:  # a decoding step: the prompt is in the KV cache
            return None
        hidden = hidden.clone()
        hidden[:, : len(rows)] += rows
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    return layer_module.register_forward_pre_hook(pre_hook, with_kwargs=True)
