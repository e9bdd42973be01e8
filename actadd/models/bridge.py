"""Loading a TransformerLens ``TransformerBridge`` (``load_model(..., backend="bridge")``).

The bridge wraps a Hugging Face model in place. What it can wrap:

- a local Hugging Face directory (``config.json`` plus weights, as ``save_pretrained``
  writes them);
- an in-memory ``transformers`` model (``PreTrainedModel``), with its tokenizer;
- a Llama-architecture GGUF, the embedded SmolLM2 by default: its dequantized tensors go
  into a ``transformers.LlamaForCausalLM`` (:func:`actadd.models.hf_reference.hf_llama`,
  eager attention) and its tokenizer is the one the HookedTransformer path rebuilds, so
  both backends see the same weights, the same tokens and the same leading token;
- a ``gemma3`` GGUF, the embedded Gemma 3 270M for ``"gemma3-270m"``: the tensors
  :mod:`actadd.models.gemma3` converted into the cache, in an HF ``Gemma3ForCausalLM``
  (:mod:`actadd.models.gemma3_hf`, eager attention), with the same tokenizer and provenance
  (license included) as the HookedTransformer;
- ``"tiny-llama"`` / ``"tiny-gpt2"`` / ``"tiny-gemma3"``: small random HF models saved with
  ``save_pretrained`` (:func:`tiny_hf_dir`), for tests.

Every failure before compute is one :class:`~actadd.errors.ModelLoadError` line: an
architecture the bridge has no adapter for, a directory without weights, a hub name with
no hub.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from actadd.errors import ModelLoadError
from actadd.models import gemma3, gguf_cache, gguf_llama, sources
from actadd.models.hf_reference import hf_llama
from actadd.models.tokenizer import byte_tokenizer, load_fast_tokenizer
from actadd.runtime.backends import route_hf_cache

__all__ = [
    "WEIGHT_FILES",
    "check_architecture",
    "load_gemma3_bridge",
    "load_gguf_bridge",
    "load_hf_dir",
    "load_hf_model",
    "supported_architectures",
    "tiny_hf_dir",
    "tiny_hf_model",
]

# the files a Hugging Face checkpoint directory may hold its weights in
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def supported_architectures() -> set[str]:
    """The Hugging Face architectures (``config.architectures``) the bridge can wrap."""
    from transformer_lens.factories.architecture_adapter_factory import (
        ArchitectureAdapterFactory,
    )

    ArchitectureAdapterFactory.discover_entry_points()
    return set(ArchitectureAdapterFactory._adapters)


def check_architecture(arch: str | None, what: str) -> None:
    supported = supported_architectures()
    if arch not in supported:
        near = sorted(a for a in supported if a.endswith(("ForCausalLM", "LMHeadModel")))[:6]
        raise ModelLoadError(
            f"TransformerBridge cannot wrap {what}: architecture {arch!r} has no adapter in "
            f"this TransformerLens ({len(supported)} supported, e.g. {', '.join(near)}); use "
            "backend='hooked' for GGUF / TransformerLens models."
        )


def _bridge_class():
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge


def load_hf_dir(directory: str | os.PathLike, *, device="cpu", dtype=torch.float32, **kw):
    """Boot a bridge on a local Hugging Face checkpoint directory (no hub)."""
    d = Path(directory)
    config = d / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"{d} is not a Hugging Face model directory: no config.json.")
    if not any((d / f).is_file() for f in WEIGHT_FILES):
        raise ModelLoadError(
            f"{d} has a config.json but no weights ({' / '.join(WEIGHT_FILES)}); save the "
            "model with save_pretrained."
        )
    archs = json.loads(config.read_text()).get("architectures") or [None]
    check_architecture(archs[0], str(d))
    bridge = _bridge_class().boot_transformers(str(d), device=device, dtype=dtype, **kw)
    route_hf_cache(bridge)
    return bridge


def load_hf_model(hf_model, *, tokenizer, name: str | None = None, **kw):
    """Wrap an in-memory ``transformers`` model (in place) with ``tokenizer``."""
    if tokenizer is None:
        raise ModelLoadError("An in-memory Hugging Face model needs tokenizer= as well.")
    archs = getattr(hf_model.config, "architectures", None) or [type(hf_model).__name__]
    check_architecture(archs[0], type(hf_model).__name__)
    name = name or getattr(hf_model.config, "name_or_path", "") or type(hf_model).__name__
    bridge = _bridge_class().boot_transformers(name, hf_model=hf_model, tokenizer=tokenizer, **kw)
    route_hf_cache(bridge)
    return bridge


def load_gguf_bridge(path: Path, *, model_name: str | None = None, n_ctx: int | None = None):
    """A Llama GGUF on the bridge: the dequantized tensors in an HF ``LlamaForCausalLM``
    (eager attention, float32) and the tokenizer actadd rebuilds from the file. A ``gemma3``
    GGUF goes to :func:`load_gemma3_bridge`."""
    gguf_llama._check_is_gguf(path)
    if gemma3.is_gemma3(path):
        return load_gemma3_bridge(path, model_name=model_name, n_ctx=n_ctx)
    entry = gguf_cache.ensure_entry(path, sources.convert)
    converted = entry.directory
    hp = sources.converted_hparams(converted)
    hf = hf_llama(path, attn_implementation="eager")
    hf.config.architectures = ["LlamaForCausalLM"]
    tokenizer = load_fast_tokenizer(converted / "tokenizer")
    bridge = load_hf_model(hf, tokenizer=tokenizer, name=model_name or hp.name)
    # the same context length as the HookedTransformer path (the rotary tables do not
    # depend on it; only actadd's length checks read it)
    bridge.cfg.n_ctx = n_ctx or min(hp.n_ctx, sources.DEFAULT_N_CTX)
    setattr(bridge, sources.SOURCE_ATTR, sources.licensed(entry.source_info(path), model_name))
    return bridge


def load_gemma3_bridge(
    path: Path | None = None, *, model_name: str | None = None, n_ctx: int | None = None
):
    """Gemma 3 (the embedded 270M by default, or a ``gemma3`` GGUF path) on the bridge: an HF
    ``Gemma3ForCausalLM`` holding the weights :mod:`actadd.models.gemma3` converted into the
    verified cache, with the HookedTransformer's tokenizer, context length and provenance."""
    from actadd.models.gemma3_hf import gemma3_hf_model

    if path is None:
        path, model_name = gemma3.gemma3_path(), model_name or gemma3.GEMMA3_NAME
    entry = gguf_cache.ensure_entry(Path(path), gemma3.convert)
    hp, tokenizer, sd = gemma3.read_converted(entry.directory)
    hf = gemma3_hf_model(hp, sd, tokenizer)
    # booted under the file's own name: TransformerLens takes "gemma-3-270m" for an alias of
    # the hub's google/gemma-3-270m (and says so); actadd's name is set afterwards
    bridge = load_hf_model(hf, tokenizer=tokenizer, name=hp["name"])
    bridge.cfg.model_name = model_name or hp["name"]
    bridge.cfg.n_ctx = n_ctx or min(hp["n_ctx"], gemma3.DEFAULT_N_CTX)
    info = entry.source_info(Path(path))
    if model_name == gemma3.GEMMA3_NAME:
        info["license"] = gemma3.LICENSE
    setattr(bridge, sources.SOURCE_ATTR, info)
    return bridge


def tiny_hf_model(name: str = "tiny-llama", seed: int = 0):
    """A small random Hugging Face model shaped like actadd's tiny HookedTransformers
    (:data:`~actadd.models.sources.TINY_SHAPE`: 4 layers, d_model 64, the 259-token byte
    vocabulary). Weights from an explicit seed."""
    import transformers

    s = sources.TINY_SHAPE
    # the byte tokenizer's <|bos|>, <|eos|>, <|pad|> (actadd.models.tokenizer.BYTE_SPECIALS)
    specials = dict(bos_token_id=256, eos_token_id=257, pad_token_id=258)
    common = dict(vocab_size=s["d_vocab"], attn_implementation="eager", **specials)
    if name == "tiny-llama":
        config = transformers.LlamaConfig(
            hidden_size=s["d_model"],
            intermediate_size=s["d_mlp"],
            num_hidden_layers=s["n_layers"],
            num_attention_heads=s["n_heads"],
            num_key_value_heads=sources.TINY_KV_HEADS,
            max_position_embeddings=s["n_ctx"],
            tie_word_embeddings=False,
            **common,
        )
        cls = transformers.LlamaForCausalLM
    elif name == "tiny-gpt2":  # its MLP is transformers' default, 4 × d_model wide
        shape = dict(n_embd=s["d_model"], n_layer=s["n_layers"], n_head=s["n_heads"])
        config = transformers.GPT2Config(**shape, n_positions=s["n_ctx"], **common)
        cls = transformers.GPT2LMHeadModel
    elif name == "tiny-gemma3":
        from actadd.models.gemma3_hf import tiny_gemma3_hf_config

        config = tiny_gemma3_hf_config(s, specials)
        cls = transformers.Gemma3ForCausalLM
    else:
        raise ModelLoadError(f"Unknown tiny model {name!r}; choose one of {sources.TINY_MODELS}.")
    gen = torch.Generator().manual_seed(seed)
    model = cls(config)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim >= 2:  # 1/sqrt(d_model) keeps the residual stream's scale
                p.copy_(noise / 8.0)
            elif pname.endswith("bias"):
                p.copy_(0.02 * noise)
            elif name == "tiny-gemma3":  # Gemma's norms multiply by 1 + weight
                p.copy_(0.1 * noise)
            else:  # norm scales
                p.copy_(1.0 + 0.1 * noise)
    return model.eval()


def tiny_hf_dir(name: str, directory: str | os.PathLike, seed: int = 0) -> Path:
    """Save :func:`tiny_hf_model` and the byte-level tokenizer to ``directory`` with
    ``save_pretrained``; returns the directory."""
    d = Path(directory)
    byte_tokenizer(d / "tokenizer")
    load_fast_tokenizer(d / "tokenizer").save_pretrained(str(d))
    tiny_hf_model(name, seed).save_pretrained(str(d))
    return d
