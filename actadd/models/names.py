"""The models actadd knows by name, as plain data: importing this module imports no torch.

The config checks (:mod:`actadd.cli.preflight`, :mod:`actadd.lab.retarget`) run before torch
loads and need only these names; the loaders (:mod:`actadd.models.sources`,
:mod:`actadd.models.gemma3`) re-export them.
"""

from __future__ import annotations

import os

__all__ = ["GEMMA3_ALIASES", "SMOLLM2_NAME", "TINY_MODELS", "TINY_SHAPE", "is_smollm2"]

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
#: the names ``load_model`` takes for the packaged Gemma 3 270M
GEMMA3_ALIASES = ("gemma3-270m", "gemma-3-270m", "gemma3")
TINY_MODELS = ("tiny-gpt2", "tiny-llama", "tiny-gemma3")
#: the tiny test models' shape, in ``HookedTransformerConfig`` names: the HookedTransformers
#: of :func:`actadd.models.loaders.tiny_model` and their Hugging Face twins
#: (:func:`actadd.models.bridge.tiny_hf_model`); 259 tokens = the byte tokenizer's vocabulary
TINY_SHAPE = dict(n_layers=4, d_model=64, d_head=16, n_heads=4, d_mlp=128, d_vocab=259, n_ctx=256)


def is_smollm2(name: str | os.PathLike | None) -> bool:
    """Whether ``name`` asks for the embedded SmolLM2 (``None``, ``"smollm2"`` or its name)."""
    return name is None or str(name).lower() in ("smollm2", SMOLLM2_NAME.lower())
