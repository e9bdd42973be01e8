"""llama.cpp's control-vector names: the GGUF keys, ``direction.N`` ↔ actadd's ``resid_pre``
layer, and ``controlvector.model_hint``.

llama.cpp adds ``direction.N`` to the *output* of block ``N``, the residual stream entering
block ``N + 1``: TransformerLens ``blocks.{N+1}.hook_resid_pre``. So an actadd vector at
``resid_pre`` layer ``L`` is ``direction.{L-1}``, and only layers ``L >= 2`` have a slot
(llama.cpp rejects ``direction.0``). See :mod:`actadd.interop.gguf` for the whole format.
"""

from __future__ import annotations

from actadd.errors import SteeringError

__all__ = [
    "ARCH",
    "KEY_ARCH",
    "KEY_HINT",
    "KEY_LAYER_COUNT",
    "KEY_PROVENANCE",
    "KNOWN_HINTS",
    "LAYER_CONVENTION",
    "PROVENANCE_FORMAT",
    "PROVENANCE_VERSION",
    "direction_for_layer",
    "layer_for_direction",
    "model_hint_for",
]

ARCH = "controlvector"
KEY_ARCH = "general.architecture"
KEY_HINT = f"{ARCH}.model_hint"
KEY_LAYER_COUNT = f"{ARCH}.layer_count"
KEY_PROVENANCE = "actadd.provenance"
PROVENANCE_FORMAT = "actadd.controlvector"
PROVENANCE_VERSION = 1
LAYER_CONVENTION = "direction.N is added to the output of block N = actadd resid_pre N+1"

# model_hint for the models actadd itself names (llama.cpp's architecture names)
KNOWN_HINTS = {
    "SmolLM2-135M-Instruct": "llama",
    "tiny-llama": "llama",
    "tiny-gpt2": "gpt2",
    "gemma-3-270m": "gemma3",
    "tiny-gemma3": "gemma3",
}


def direction_for_layer(layer: int) -> int:
    """The ``direction.N`` index for an actadd ``resid_pre`` layer ``L``: ``N = L - 1``."""
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise SteeringError(f"layer must be an int, got {layer!r}.")
    if layer <= 1:
        raise SteeringError(
            f"resid_pre layer {layer} cannot be written as a llama.cpp control vector: "
            "direction.N is added to the output of block N (resid_pre N+1) and N >= 1, so "
            "only resid_pre layers >= 2 are expressible. Use v.at_layer(2) to move the vector "
            "(a different intervention), or keep it in actadd."
        )
    return layer - 1


def layer_for_direction(index: int) -> int:
    """The actadd ``resid_pre`` layer that ``direction.N`` is added at: ``N + 1``."""
    return index + 1


def model_hint_for(model) -> str:
    """llama.cpp's architecture name for a ``HookedTransformer`` (``LlamaForCausalLM`` →
    ``"llama"``, ``GPT2LMHeadModel`` → ``"gpt2"``)."""
    arch = getattr(model.cfg, "original_architecture", None) or ""
    for suffix in ("ForCausalLM", "LMHeadModel", "Model"):
        if arch.endswith(suffix) and len(arch) > len(suffix):
            return arch[: -len(suffix)].lower()
    if model.cfg.model_name in KNOWN_HINTS:
        return KNOWN_HINTS[model.cfg.model_name]
    raise SteeringError(
        f"Cannot tell the architecture of {model.cfg.model_name!r} for controlvector.model_hint; "
        "pass model_hint= (e.g. 'llama')."
    )
