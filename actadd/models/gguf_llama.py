"""Read a Llama-architecture GGUF file into TransformerLens form.

The file holds quantized weights in llama.cpp's layout. We dequantize them with the
``gguf`` package, undo llama.cpp's rotary permutation of the Q and K projections, and
map the result to the parameter names of a ``HookedTransformer`` built from a Llama-style
``HookedTransformerConfig``.

Two weight layouts come out of here:

- :func:`hf_state_dict` gives the weights under Hugging Face ``LlamaForCausalLM`` names
  (the layout the GGUF converter started from). Tests use it to build an independent
  reference implementation.
- :func:`hf_to_tl_state_dict` gives the same weights under TransformerLens names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import einops
import numpy as np
import torch

from actadd.errors import ModelLoadError

__all__ = [
    "GGUF_MAGIC",
    "SUPPORTED_ARCHITECTURES",
    "GGUFVocab",
    "LlamaHParams",
    "dequantized",
    "hf_state_dict",
    "hf_to_tl_state_dict",
    "open_reader",
    "read_hparams",
    "read_quantization",
    "read_vocab",
    "unpermute_rotary",
]

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHITECTURES = ("llama",)


@dataclass(frozen=True)
class LlamaHParams:
    """Hyper-parameters of a Llama model, as read from GGUF metadata."""

    name: str
    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    n_kv_heads: int
    d_vocab: int
    n_ctx: int
    rope_base: float
    rope_dim: int
    eps: float
    tied_embeddings: bool

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class GGUFVocab:
    """The tokenizer description stored in a GGUF file."""

    model: str  # "gpt2" for byte-level BPE
    pre: str  # pre-tokenizer flavour, e.g. "smollm"
    tokens: list[str]
    token_types: list[int]  # 1 normal, 3 control, 4 user-defined, ...
    merges: list[str]
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None
    add_bos: bool | None


def _check_is_gguf(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(f"GGUF file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"Not a file: {path}. Expected a .gguf model file.")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF file (its first bytes are {magic!r}, a GGUF file starts "
            f"with {GGUF_MAGIC!r}). load_model accepts: None (the embedded SmolLM2), a path to "
            "a Llama-architecture .gguf file, a TransformerLens model name, or 'tiny-gpt2' / "
            "'tiny-llama'."
        )


def open_reader(path: str | Path):
    """Open a GGUF file, turning the reader's low-level failures into clear errors."""
    from gguf import GGUFReader

    path = Path(path)
    _check_is_gguf(path)
    try:
        return GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError/IndexError/OSError on damage
        raise ModelLoadError(
            f"Could not read GGUF file {path}: {type(exc).__name__}: {exc}. "
            "The file may be truncated or corrupt; re-download or reinstall it."
        ) from exc


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def read_hparams(reader, path: str | Path = "") -> LlamaHParams:
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelLoadError(
            f"{path}: unsupported GGUF architecture {arch!r}. Supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} (Llama-style models such as SmolLM2, "
            "TinyLlama, Llama 2/3)."
        )

    def need(key: str):
        value = _field(reader, f"{arch}.{key}")
        if value is None:
            raise ModelLoadError(f"{path}: GGUF metadata is missing '{arch}.{key}'.")
        return value

    n_heads = int(need("attention.head_count"))
    d_model = int(need("embedding_length"))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    d_vocab = int(_field(reader, f"{arch}.vocab_size", len(tokens.data) if tokens else 0))
    tensor_names = {t.name for t in reader.tensors}
    return LlamaHParams(
        name=str(_field(reader, "general.name", Path(path).stem)),
        n_layers=int(need("block_count")),
        d_model=d_model,
        d_mlp=int(need("feed_forward_length")),
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, f"{arch}.attention.head_count_kv", n_heads)),
        d_vocab=d_vocab,
        n_ctx=int(_field(reader, f"{arch}.context_length", 2048)),
        rope_base=float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        rope_dim=int(_field(reader, f"{arch}.rope.dimension_count", d_model // n_heads)),
        eps=float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        tied_embeddings="output.weight" not in tensor_names,
    )


def read_quantization(reader) -> dict:
    """The file's quantization: ``{"quantization": "Q4_1", "tensor_types": {"Q4_1": 210, ...}}``.

    ``quantization`` is the file's declared ``general.file_type`` (``MOSTLY_Q4_1`` -> ``Q4_1``)
    or, when it declares none, the most common type among its matrices.
    """
    from collections import Counter

    from gguf import LlamaFileType

    counts = Counter(t.tensor_type.name for t in reader.tensors)
    name = None
    file_type = _field(reader, "general.file_type")
    if file_type is not None:
        try:
            name = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
            name = name.removeprefix("ALL_")
        except ValueError:
            name = None
    if name is None or name == "GUESSED":
        matrices = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) >= 2)
        name = (matrices or counts).most_common(1)[0][0] if counts else None
    return {"quantization": name, "tensor_types": dict(sorted(counts.items()))}


def read_vocab(reader) -> GGUFVocab:
    if "tokenizer.ggml.tokens" not in reader.fields:
        raise ModelLoadError("GGUF file carries no tokenizer (tokenizer.ggml.tokens missing).")
    return GGUFVocab(
        model=str(_field(reader, "tokenizer.ggml.model", "")),
        pre=str(_field(reader, "tokenizer.ggml.pre", "")),
        tokens=list(_field(reader, "tokenizer.ggml.tokens")),
        token_types=[int(t) for t in _field(reader, "tokenizer.ggml.token_type", [])],
        merges=list(_field(reader, "tokenizer.ggml.merges", [])),
        bos_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_id=_field(reader, "tokenizer.ggml.eos_token_id"),
        pad_id=_field(reader, "tokenizer.ggml.padding_token_id"),
        unk_id=_field(reader, "tokenizer.ggml.unknown_token_id"),
        add_bos=_field(reader, "tokenizer.ggml.add_bos_token"),
    )


def unpermute_rotary(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's Q/K permutation: [n_heads*d_head, d_model] back to HF's layout.

    llama.cpp stores each head's rows interleaved (adjacent rotary pairs); Hugging Face's
    Llama keeps the two rotary halves in separate blocks. Per head: reshape
    (head_dim/2, 2) -> (2, head_dim/2).
    """
    out, d_in = w.shape
    return w.reshape(n_heads, out // n_heads // 2, 2, d_in).swapaxes(1, 2).reshape(out, d_in)


def dequantized(reader) -> dict[str, np.ndarray]:
    """Every tensor of the file, dequantized to float32 numpy arrays, by name."""
    from gguf.quants import dequantize

    tensors: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        try:
            tensors[t.name] = dequantize(t.data, t.tensor_type)
        except Exception as exc:
            raise ModelLoadError(
                f"Could not dequantize tensor {t.name} ({t.tensor_type.name}): {exc}"
            ) from exc
    return tensors


def hf_state_dict(reader, hp: LlamaHParams) -> dict[str, torch.Tensor]:
    """Dequantized weights under Hugging Face ``LlamaForCausalLM`` parameter names."""
    raw = dequantized(reader)

    def get(name: str) -> torch.Tensor:
        if name not in raw:
            raise ModelLoadError(f"GGUF file is missing tensor '{name}'.")
        return torch.from_numpy(np.array(raw[name], dtype=np.float32, order="C", copy=True))

    sd = {"model.embed_tokens.weight": get("token_embd.weight")}
    sd["model.norm.weight"] = get("output_norm.weight")
    sd["lm_head.weight"] = (
        sd["model.embed_tokens.weight"] if hp.tied_embeddings else get("output.weight")
    )
    for i in range(hp.n_layers):
        b, p = f"blk.{i}.", f"model.layers.{i}."
        q = unpermute_rotary(get(b + "attn_q.weight").numpy(), hp.n_heads)
        k = unpermute_rotary(get(b + "attn_k.weight").numpy(), hp.n_kv_heads)
        sd[p + "self_attn.q_proj.weight"] = torch.from_numpy(np.ascontiguousarray(q))
        sd[p + "self_attn.k_proj.weight"] = torch.from_numpy(np.ascontiguousarray(k))
        sd[p + "self_attn.v_proj.weight"] = get(b + "attn_v.weight")
        sd[p + "self_attn.o_proj.weight"] = get(b + "attn_output.weight")
        sd[p + "mlp.gate_proj.weight"] = get(b + "ffn_gate.weight")
        sd[p + "mlp.up_proj.weight"] = get(b + "ffn_up.weight")
        sd[p + "mlp.down_proj.weight"] = get(b + "ffn_down.weight")
        sd[p + "input_layernorm.weight"] = get(b + "attn_norm.weight")
        sd[p + "post_attention_layernorm.weight"] = get(b + "ffn_norm.weight")
    expected = (hp.d_vocab, hp.d_model)
    if tuple(sd["model.embed_tokens.weight"].shape) != expected:
        raise ModelLoadError(
            f"token_embd.weight has shape {tuple(sd['model.embed_tokens.weight'].shape)}, "
            f"metadata says {expected}."
        )
    return sd


def hf_to_tl_state_dict(hf: dict[str, torch.Tensor], hp: LlamaHParams) -> dict[str, torch.Tensor]:
    """Rename and reshape HF Llama weights into TransformerLens parameter names.

    ``unembed.W_U`` is left out: for tied embeddings it is ``embed.W_E.T`` and the loader
    fills it in, so the on-disk cache stores the big matrix once.
    """
    sd: dict[str, torch.Tensor] = {"embed.W_E": hf["model.embed_tokens.weight"]}
    sd["ln_final.w"] = hf["model.norm.weight"]
    if not hp.tied_embeddings:
        sd["unembed.W_U"] = hf["lm_head.weight"].T.contiguous()
    d_head = hp.d_head
    for i in range(hp.n_layers):
        p, t = f"model.layers.{i}.", f"blocks.{i}."

        def w(name: str, p: str = p) -> torch.Tensor:
            return hf[p + name]

        def heads(proj: str, pattern: str, n: int, p: str = p) -> torch.Tensor:
            """An attention projection split into its ``n`` heads."""
            return einops.rearrange(hf[f"{p}self_attn.{proj}.weight"], pattern, n=n).contiguous()

        sd[t + "attn.W_Q"] = heads("q_proj", "(n h) m -> n m h", hp.n_heads)
        sd[t + "attn._W_K"] = heads("k_proj", "(n h) m -> n m h", hp.n_kv_heads)
        sd[t + "attn._W_V"] = heads("v_proj", "(n h) m -> n m h", hp.n_kv_heads)
        sd[t + "attn.W_O"] = heads("o_proj", "m (n h) -> n h m", hp.n_heads)
        sd[t + "attn.b_Q"] = torch.zeros(hp.n_heads, d_head)
        sd[t + "attn._b_K"] = torch.zeros(hp.n_kv_heads, d_head)
        sd[t + "attn._b_V"] = torch.zeros(hp.n_kv_heads, d_head)
        sd[t + "attn.b_O"] = torch.zeros(hp.d_model)
        sd[t + "mlp.W_gate"] = w("mlp.gate_proj.weight").T.contiguous()
        sd[t + "mlp.W_in"] = w("mlp.up_proj.weight").T.contiguous()
        sd[t + "mlp.W_out"] = w("mlp.down_proj.weight").T.contiguous()
        sd[t + "mlp.b_in"] = torch.zeros(hp.d_mlp)
        sd[t + "mlp.b_out"] = torch.zeros(hp.d_model)
        sd[t + "ln1.w"] = w("input_layernorm.weight")
        sd[t + "ln2.w"] = w("post_attention_layernorm.weight")
    return sd
