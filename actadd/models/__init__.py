"""Model loading: the embedded SmolLM2, any Llama GGUF, TransformerLens names, tiny test models."""

from actadd.models.loaders import load_gguf, load_model, tiny_model
from actadd.models.sources import SMOLLM2_NAME, TINY_MODELS, smollm2_path

__all__ = ["SMOLLM2_NAME", "TINY_MODELS", "load_gguf", "load_model", "smollm2_path", "tiny_model"]
