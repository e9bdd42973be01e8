"""Store weights in the memory layout TransformerLens 3.9 asks for at every forward.

TransformerLens 3.9 computes ``W.T.contiguous()`` (gated MLP, unembed) and
``rearrange(W_Q/W_K/W_V/W_O, ...)`` + copy inside every forward pass, so each call copies
every weight matrix — for SmolLM2 about 200 MB per forward, most of the forward's time on a
CPU. :func:`fast_layout` keeps each parameter's shape and values but lays its storage out
so that those expressions are views: the same tensors reach ``F.linear`` (outputs are
bit-for-bit unchanged) without the copies.

Each layer's W_Q, W_K, W_V (and b_Q, b_K, b_V) also share one buffer, laid out as the
``[(n_q + 2 n_kv) d_head, d_model]`` matrix of a fused QKV projection, so that
:mod:`actadd.runtime.fast` computes all three with one matmul. Every parameter keeps its own
shape, values and identity; only its storage moves. (So ``model.state_dict()`` holds
tensors that share memory: ``safetensors.torch.save_file`` refuses those, ``torch.save``
and ``save_model`` do not. ``model.to(...)`` gives each parameter its own storage again;
the fast path then projects Q, K and V separately.)
"""

from __future__ import annotations

import torch

from actadd.errors import ModelLoadError
from actadd.runtime.backends import HookedTransformer, Model

__all__ = ["fast_layout", "load_all_parameters"]

# parameter leaf name -> storage order (a permutation of the parameter's dims)
_STORAGE_ORDER = {
    "W_Q": (0, 2, 1),  # [n, d_model, d_head] stored as [n, d_head, d_model]
    "W_K": (0, 2, 1),
    "W_V": (0, 2, 1),
    "_W_K": (0, 2, 1),
    "_W_V": (0, 2, 1),
    "W_O": (2, 0, 1),  # [n, d_head, d_model] stored as [d_model, n, d_head]
}
_GATED_MLP_ORDER = {"W_gate": (1, 0), "W_in": (1, 0), "W_out": (1, 0)}


def _restride(p: torch.nn.Parameter, order: tuple[int, ...]) -> None:
    if p.ndim != len(order):
        return
    stored = p.data.permute(*order).contiguous()
    inverse = sorted(range(len(order)), key=order.__getitem__)
    p.data = stored.permute(*inverse)


def _share_qkv_storage(attn: torch.nn.Module) -> None:
    """Move W_Q, W_K, W_V (and their biases) into one buffer each: the rows of a fused
    ``[(n_q + 2 n_kv) d_head, d_model]`` projection (and its bias), in that order."""
    names = ("W_Q", "_W_K", "_W_V") if "_W_K" in attn._parameters else ("W_Q", "W_K", "W_V")
    weights = [attn._parameters.get(n) for n in names]
    biases = [attn._parameters.get(n.replace("W_", "b_")) for n in names]
    if any(p is None or p.ndim != 3 for p in weights) or any(
        b is None or b.ndim != 2 for b in biases
    ):
        return
    d_model, d_head = weights[0].shape[1:]
    if any(p.shape[1:] != (d_model, d_head) for p in weights):
        return
    rows = [p.data.permute(0, 2, 1).reshape(-1, d_model) for p in weights]
    fused_w, fused_b = torch.cat(rows), torch.cat([b.data.reshape(-1) for b in biases])
    start = 0
    for p, b in zip(weights, biases):
        n = p.shape[0]
        stop = start + n * d_head
        p.data = fused_w[start:stop].view(n, d_head, d_model).permute(0, 2, 1)
        b.data = fused_b[start:stop].view(n, d_head)
        start = stop


def fast_layout(model: HookedTransformer) -> HookedTransformer:
    """Re-lay out the weights of ``model`` in place (see module docstring); returns it."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            parent, _, leaf = name.rpartition(".")
            if parent.endswith(".attn") and leaf in _STORAGE_ORDER:
                _restride(p, _STORAGE_ORDER[leaf])
            elif parent.endswith(".mlp") and model.cfg.gated_mlp and leaf in _GATED_MLP_ORDER:
                _restride(p, _GATED_MLP_ORDER[leaf])
            elif name == "unembed.W_U":
                _restride(p, (1, 0))
        for block in model.blocks:
            _share_qkv_storage(block.attn)
    return model


def load_all_parameters(model: Model, sd: dict[str, torch.Tensor]) -> None:
    """Load ``sd`` and insist that every parameter was set (init_weights=False leaves garbage)."""
    missing, unexpected = model.load_state_dict(sd, strict=False)
    params = {n for n, _ in model.named_parameters()}
    missing_params = sorted(set(missing) & params)
    if missing_params or unexpected:
        raise ModelLoadError(
            f"Weight mapping mismatch: missing {missing_params[:5]}, unexpected {unexpected[:5]}"
        )
