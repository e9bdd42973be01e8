"""The fast path's transformer block: :class:`_FastBlock` is the ``forward`` one block
instance gets inside :func:`actadd.runtime.fast.fast_path`; it runs ``ln1``, attention
(:mod:`actadd.runtime.fast.attention`), ``ln2`` and the gated MLP (:class:`_FastMLP`) with
the hook points TransformerLens fires, and falls back to ``TransformerBlock.forward`` for a
call it cannot honour (see :mod:`actadd.runtime.fast.policy`). RMSNorm and the gated MLP
run bit for bit as TransformerLens computes them, in fewer operations.

Internal to the fast path (:mod:`actadd.runtime.fast`); nothing here is public.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from actadd.runtime.fast.attention import _FastAttention
from actadd.runtime.fast.components import GatedMLP, RMSNorm, TransformerBlock
from actadd.runtime.fast.geometry import _Shared
from actadd.runtime.fast.kvcache import _cached
from actadd.runtime.fast.policy import _patched, _Points

__all__: list[str] = []  # internal: the fast path's public names are in actadd.runtime.fast


def _rms_norm(norm: RMSNorm, x: Tensor, shared: _Shared, scale_hp, normalized_hp) -> Tensor:
    """``RMSNorm.forward``, bit for bit, in half the operations: ``mean`` is ``sum`` then
    ``div_`` in torch, the scalars are 0-d tensors made once (a Python scalar costs four
    conversions per use), and temporaries nothing else sees are updated in place. Hook
    points are called only when hooked, and then see exactly TransformerLens's tensors."""
    dtype = norm.cfg.dtype
    if dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)
    length = shared.scalar(float(x.shape[-1]), x)
    eps = shared.scalar(norm.eps, x)
    scale = (x * x).sum(-1, keepdim=True).div_(length).add_(eps).sqrt_()
    if scale_hp is not None:
        scale = scale_hp(scale)
    normed = torch.div(x, scale)
    if normalized_hp is not None:
        return normalized_hp(normed).to(dtype) * norm._parameters["w"]
    if normed.dtype != dtype:
        normed = normed.to(dtype)
    return normed.mul_(norm._parameters["w"])


def _norm(norm: nn.Module, x: Tensor, shared: _Shared, scale_hp=None, normalized_hp=None) -> Tensor:
    """``norm(x)``; RMS norms through :func:`_rms_norm` (``*_hp``: their hooked points)."""
    if type(norm) is RMSNorm and not _patched(norm):
        return _rms_norm(norm, x, shared, scale_hp, normalized_hp)
    return norm(x)


class _Transposed:
    """``W.T.contiguous()`` of a parameter (how TransformerLens's MLPs multiply). With
    :func:`actadd.models.layout.fast_layout`'s storage that is a view of the parameter, and
    is kept while the parameter and its storage stay the same; a copy is never kept (it
    would go stale if the weights were edited)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: Tensor | None = None

    def __call__(self, w: Tensor) -> Tensor:
        key = (id(w), w.data_ptr(), w.stride(), w.shape)
        if key == self.key:
            return self.value
        t = w.T
        if not t.is_contiguous():
            return t.contiguous()
        self.key, self.value, self.source = key, t, w  # source keeps id(w) unique
        return t


class _FastMLP:
    """``GatedMLP.forward`` bit for bit (hook points called only when hooked); any other
    MLP through its own ``forward``."""

    def __init__(self) -> None:
        self.w_gate, self.w_in, self.w_out = _Transposed(), _Transposed(), _Transposed()

    def __call__(self, mlp: nn.Module, x: Tensor, h: _Points) -> Tensor:
        if type(mlp) is not GatedMLP or _patched(mlp) or mlp.cfg.is_layer_norm_activation():
            return mlp(x)
        p = mlp._parameters
        if torch.is_grad_enabled():  # the cached transposes would not carry gradients
            w_gate, w_in, w_out = (p[n].T.contiguous() for n in ("W_gate", "W_in", "W_out"))
        else:
            w_gate, w_in, w_out = (
                self.w_gate(p["W_gate"]),
                self.w_in(p["W_in"]),
                self.w_out(p["W_out"]),
            )
        pre_act = F.linear(x, w_gate)
        if h.mlp_pre is not None:
            pre_act = h.mlp_pre(pre_act)
        pre_linear = F.linear(x, w_in)
        if h.mlp_pre_linear is not None:
            pre_linear = h.mlp_pre_linear(pre_linear)
        post_act = (mlp.act_fn(pre_act) * pre_linear) + p["b_in"]
        if h.mlp_post is not None:
            post_act = h.mlp_post(post_act)
        return F.linear(post_act, w_out, p["b_out"])


class _FastBlock:
    """The fast ``forward`` of one block instance; falls back to the class's per call."""

    def __init__(self, block: TransformerBlock, index: int, shared: _Shared) -> None:
        self.block, self.index, self.shared = block, index, shared
        self.original = TransformerBlock.forward.__get__(block)
        mods = block._modules
        self.attn, self.ln1, self.ln2, self.mlp = (mods[n] for n in ("attn", "ln1", "ln2", "mlp"))
        self.points = _Points(block)
        self.fast_attention = _FastAttention(self.attn, shared)
        self.fast_mlp = _FastMLP()

    def usable(self, resid_pre: Tensor, shortformer_pos_embed, entry) -> bool:
        if shortformer_pos_embed is not None or self.block.training:
            return False
        if threading.current_thread() is not self.shared.thread:
            return False  # a direct call from another thread: its memo is not this call's
        self.points.refresh()
        if self.points.fallback:
            return False
        mods = self.block._modules
        for name in ("attn", "ln1", "ln2", "mlp"):
            if mods[name] is not getattr(self, name) or _patched(mods[name]):
                return False  # a submodule swapped, or its forward patched
        if self.shared.rotary:
            kv_len = resid_pre.shape[1] + (_cached(entry) if entry is not None else 0)
            if kv_len > self.attn._buffers["rotary_cos"].shape[0]:
                return False  # TransformerLens extends its rotary tables
        return True

    def __call__(
        self,
        resid_pre: Tensor,
        shortformer_pos_embed: Tensor | None = None,
        past_kv_cache_entry: TransformerLensKeyValueCacheEntry | None = None,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        if not self.usable(resid_pre, shortformer_pos_embed, past_kv_cache_entry):
            return self.original(
                resid_pre,
                shortformer_pos_embed=shortformer_pos_embed,
                past_kv_cache_entry=past_kv_cache_entry,
                attention_mask=attention_mask,
            )
        h, shared = self.points, self.shared
        shared.enter(self.index)
        if h.resid_pre is not None:
            resid_pre = h.resid_pre(resid_pre)
        attn_out = self.fast_attention(
            _norm(self.ln1, resid_pre, shared), past_kv_cache_entry, attention_mask, h
        )
        if h.attn_out is not None:
            attn_out = h.attn_out(attn_out)
        resid_mid = resid_pre + attn_out
        if h.resid_mid is not None:
            resid_mid = h.resid_mid(resid_mid)
        normed = _norm(self.ln2, resid_mid, shared, h.ln2_scale, h.ln2_normalized)
        mlp_out = self.fast_mlp(self.mlp, normed, h)
        if h.mlp_out is not None:
            mlp_out = h.mlp_out(mlp_out)
        resid_post = resid_mid + mlp_out
        if h.resid_post is not None:
            resid_post = h.resid_post(resid_post)
        return resid_post
