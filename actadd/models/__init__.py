"""Model loading: the embedded SmolLM2, any Llama GGUF, TransformerLens names, tiny test models.

The loaders import torch; they are imported on first use, so that the config checks, which
need only the names (:mod:`actadd.models.names`), run before torch loads.
"""

from __future__ import annotations

from actadd._lazy import lazy_module

__all__ = ["SMOLLM2_NAME", "TINY_MODELS", "load_gguf", "load_model", "smollm2_path", "tiny_model"]

_WHERE = {
    "load_gguf": "actadd.models.loaders",
    "load_model": "actadd.models.loaders",
    "tiny_model": "actadd.models.loaders",
    "smollm2_path": "actadd.models.sources",
    "SMOLLM2_NAME": "actadd.models.names",
    "TINY_MODELS": "actadd.models.names",
}


__getattr__, __dir__ = lazy_module(__name__, _WHERE, globals())
