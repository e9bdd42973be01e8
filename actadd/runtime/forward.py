"""Forward-pass primitives every other module shares: padding, residual streams, unembedding.

Nothing here steers; :mod:`actadd.core.prefix` builds the batched, steered forward on top of
these, and :mod:`actadd.core.generation` the decoding loop.

- :func:`left_pad` — token lists → ``(tokens, attention_mask)``, padded on the left;
- :func:`residuals` — the unsteered ``resid_pre`` at several layers from one forward pass;
- :func:`unembed_last` / :func:`last_logits` — logits of the final position only;
- :func:`unembed` — ``model.unembed``, bit for bit, faster for small batches;
- :func:`typical_norm` — the typical residual norm of real positions, leading token left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from actadd.runtime.backends import HAS_HOOKED

if HAS_HOOKED:
    from transformer_lens.components import Unembed
else:  # TransformerLens 4.x: only the bridge, whose logits never come through unembed()
    Unembed = None

from actadd.errors import SteeringError
from actadd.runtime.backends import Model, backend_of
from actadd.runtime.hooks import check_layer, resid_pre
from actadd.runtime.modellock import exclusive

__all__ = [
    "UNEMBED_CHUNK",
    "last_logits",
    "left_pad",
    "real_positions",
    "residuals",
    "typical_norm",
    "unembed",
    "unembed_last",
]


def left_pad(
    model: Model, token_lists: Sequence[Sequence[int]]
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Left-pad token lists into ``(tokens, attention_mask)``, both [batch, max_len]."""
    if not len(token_lists):
        raise SteeringError("left_pad needs at least one token list.")
    pad_id = model.tokenizer.pad_token_id if model.tokenizer is not None else 0
    n = max(len(t) for t in token_lists)
    tokens = torch.full((len(token_lists), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), n), dtype=torch.long)
    for i, ids in enumerate(token_lists):
        if len(ids):
            tokens[i, n - len(ids) :] = torch.as_tensor(list(ids))
            mask[i, n - len(ids) :] = 1
    return tokens.to(model.cfg.device), mask.to(model.cfg.device)


@torch.no_grad()
def residuals(
    model: Model,
    tokens: Int[Tensor, "batch pos"],
    layers: Sequence[int],
    attention_mask: Int[Tensor, "batch pos"] | None = None,
) -> dict[int, Float[Tensor, "batch pos d_model"]]:
    """The unsteered residual streams entering blocks ``layers`` (``resid_pre``):
    ``{layer: [batch, pos, d_model]}``.

    One forward pass, stopped after the deepest layer asked for (never unembedded).
    ``layer == n_layers`` is the final residual stream (see :func:`actadd.runtime.hooks.resid_pre`).
    """
    layers = sorted({check_layer(model, layer) for layer in layers})
    if not layers:
        raise SteeringError("No layers given.")
    names = {resid_pre(model, layer): layer for layer in layers}
    stop = min(max(layers) + 1, model.cfg.n_layers)
    with exclusive(model):  # run_with_cache hooks the model for the call
        _, cache = model.run_with_cache(
            tokens, attention_mask=attention_mask, names_filter=list(names), stop_at_layer=stop
        )
    return {layer: cache[name] for name, layer in names.items()}


def unembed_last(
    model: Model, resid: Float[Tensor, "batch pos d_model"]
) -> Float[Tensor, "batch d_vocab"]:
    """Logits of the final position of a final residual stream (final norm, unembedding and
    the model's logit soft cap, if any)."""
    logits = unembed(model, model.ln_final(resid[:, -1:]))[:, 0]
    cap = model.cfg.output_logits_soft_cap
    return cap * torch.tanh(logits / cap) if cap > 0 else logits


# Vocabulary columns per matmul when unembedding a few rows: on the development machine's
# MKL, [16, 576] x [576, 49152] takes ~25% longer than 96 [16, 576] x [576, 512] products
# (the output no longer fits the cache); each logit is the same dot product either way.
UNEMBED_CHUNK = 512
_CHUNKED_ROWS = range(4, 33)


def unembed(
    model: Model, x: Float[Tensor, "batch pos d_model"]
) -> Float[Tensor, "batch pos d_vocab"]:
    """``model.unembed(x)``, bit for bit; for 4 to 32 rows, in vocabulary chunks of
    ``UNEMBED_CHUNK`` (faster, see above). Hooked or unusual unembeddings go through the
    module."""
    u = model.unembed
    w = u.W_U.T  # [d_vocab, d_model]: contiguous with actadd.models.layout.fast_layout
    if (
        x.shape[0] * x.shape[1] not in _CHUNKED_ROWS
        or type(u) is not Unembed
        or not w.is_contiguous()
        or torch.is_grad_enabled()
        or any(m._forward_hooks or m._forward_pre_hooks for m in (u, u.hook_in, u.hook_out))
        or "forward" in vars(u)
    ):
        return u(x)
    b = u.b_U
    step = UNEMBED_CHUNK
    return torch.cat(
        [F.linear(x, w[i : i + step], b[i : i + step]) for i in range(0, w.shape[0], step)],
        dim=-1,
    )


def last_logits(model: Model, x: Tensor, **kwargs) -> Float[Tensor, "batch d_vocab"]:
    """Logits at the final position only: [batch, d_vocab].

    Runs the blocks through ``model(...)`` (so hooks and steering apply) and unembeds just
    the last position, instead of all of them as ``model(...)[:, -1]`` would. ``x`` is a
    token batch, or a residual stream with ``start_at_layer`` in ``kwargs``.
    """
    backend = backend_of(model)
    with exclusive(model):
        out = backend.final(model, x, **kwargs)
    return out[:, -1] if backend.final_is_logits else unembed_last(model, out)


def real_positions(mask: Int[Tensor, "batch pos"], *, skip_leading: bool) -> Tensor:
    """Boolean [batch, pos]: the real (unpadded) positions, without each row's first real
    (leading) token when ``skip_leading``."""
    real = mask.bool().clone()
    if skip_leading:
        real[torch.arange(len(real)), real.int().argmax(-1)] = False
    return real


def typical_norm(groups: Sequence[tuple[Tensor, Tensor | None]]) -> float:
    """Mean L2 norm of the residual stream over the real positions of ``groups``
    (``(resid [batch, pos, d_model], attention_mask [batch, pos] or None)`` pairs, each
    group of its own shape), the leading token left out.

    The leading token's residual is an outlier ("attention sink") on most models, and a
    pair's vector is ≈ 0 there anyway. Falls back to every real position if the texts are
    one token long.
    """
    rest, every = [], []
    for resid, mask in groups:
        if mask is None:
            mask = torch.ones(resid.shape[:2], dtype=torch.long)
        norms = resid.norm(dim=-1)
        for skip, out in ((True, rest), (False, every)):
            out.append(norms[real_positions(mask, skip_leading=skip).to(norms.device)])
    rest_t = torch.cat(rest)
    return float(rest_t.mean() if rest_t.numel() else torch.cat(every).mean())
