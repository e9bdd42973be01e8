"""Hook-point names, built in one place.

Every other module asks here for the name of a residual-stream site instead of formatting
``blocks.{L}.hook_resid_pre`` itself.
"""

from __future__ import annotations

from actadd.errors import SteeringError
from actadd.runtime.backends import Model

__all__ = ["attn_pattern", "attn_scores", "check_layer", "resid_pre"]


def check_layer(model: Model, layer: int) -> int:
    """Validate a ``resid_pre`` layer index: 0 <= layer <= n_layers.

    ``layer == n_layers`` names the residual stream after the last block
    (``ln_final.hook_normalized``'s input), exposed here as ``blocks.{n-1}.hook_resid_post``.
    """
    n = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise SteeringError(f"layer must be an int, got {layer!r} ({type(layer).__name__}).")
    if not 0 <= layer <= n:
        raise SteeringError(
            f"layer {layer} is out of range for {model.cfg.model_name}: allowed 0..{n} "
            f"(resid_pre of blocks 0..{n - 1}; {n} is the final residual stream)."
        )
    return layer


def resid_pre(model: Model, layer: int) -> str:
    """Name of the residual stream entering block ``layer`` (``layer == n_layers``: the end)."""
    check_layer(model, layer)
    if layer == model.cfg.n_layers:
        return f"blocks.{layer - 1}.hook_resid_post"
    return f"blocks.{layer}.hook_resid_pre"


def attn_pattern(model: Model, layer: int) -> str:
    """Name of block ``layer``'s attention pattern ``[batch, head, query, key]`` (after the
    softmax): ``blocks.{layer}.attn.hook_pattern``; ``layer`` is a block, ``0..n_layers-1``."""
    n = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
        raise SteeringError(f"attention layer {layer!r} out of range: blocks 0..{n - 1}.")
    return f"blocks.{layer}.attn.hook_pattern"


def attn_scores(model: Model, block: int) -> str:
    """Name of the pre-softmax attention scores of ``block`` ([batch, head, query, key],
    causal mask already applied)."""
    n = model.cfg.n_layers
    if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block < n:
        raise SteeringError(f"block must be an int in 0..{n - 1}, got {block!r}.")
    return f"blocks.{block}.attn.hook_attn_scores"
