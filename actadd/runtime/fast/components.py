"""The TransformerLens 3.x classes the fast path recognises and replaces the forward of.

On TransformerLens 4.x there is no ``HookedTransformer``, so nothing for the fast path to run:
the names are then ``nn.Module`` placeholders (no block is ever of that exact type) and
``POST_NORM_ARCHITECTURES`` is empty.
"""

from __future__ import annotations

from torch import nn

from actadd.runtime.backends import HAS_HOOKED

if HAS_HOOKED:
    from transformer_lens.components import (
        Attention,
        GroupedQueryAttention,
        RMSNorm,
        TransformerBlock,
    )
    from transformer_lens.components.mlps.gated_mlp import GatedMLP
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES
else:  # TransformerLens 4.x: no HookedTransformer, so nothing for the fast path to run
    Attention = GroupedQueryAttention = RMSNorm = TransformerBlock = GatedMLP = nn.Module
    POST_NORM_ARCHITECTURES = ()

__all__ = [
    "POST_NORM_ARCHITECTURES",
    "Attention",
    "GatedMLP",
    "GroupedQueryAttention",
    "RMSNorm",
    "TransformerBlock",
]
