"""The fast path's attention: ``AbstractAttention.forward`` for one attention module, with
Q, K and V from one matmul when their weights share a buffer (:func:`_fused_qkv`), rotary
applied from sign-folded tables (:class:`_Rotary`), SDPA for decoding steps and
TransformerLens's own arithmetic for several queries (:class:`_FastAttention`).

Internal to the fast path (:mod:`actadd.runtime.fast`); nothing here is public.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from actadd.runtime.fast.components import GroupedQueryAttention
from actadd.runtime.fast.geometry import _CallGeometry, _Shared
from actadd.runtime.fast.kvcache import StaticKVCacheEntry, _cached
from actadd.runtime.fast.policy import _Points

__all__: list[str] = []  # internal: the fast path's public names are in actadd.runtime.fast


def _project(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """TransformerLens's ``simple_attn_linear``: [batch, pos, d_model] -> [batch, pos, n, d_h]."""
    n, d_model, d_head = w.shape
    flat = w.permute(0, 2, 1).reshape(n * d_head, d_model)
    return F.linear(x, flat, b.reshape(n * d_head)).view(x.shape[0], x.shape[1], n, d_head)


def _fused_qkv(params: tuple[Tensor, ...]) -> tuple[Tensor, Tensor] | None:
    """``(weight [(n_q + 2 n_kv) d_head, d_model], bias)`` viewing W_Q, W_K, W_V and b_Q,
    b_K, b_V (``params``, in that order) as one projection, if their storage is laid out
    that way (:func:`actadd.models.layout.fast_layout` does); else ``None``. One matmul then
    computes all three projections, each output element exactly as its own would be."""
    w_q, w_k, w_v, b_q, b_k, b_v = params
    n_q, d_model, d_head = w_q.shape
    rows = (n_q + w_k.shape[0] + w_v.shape[0]) * d_head
    for group, stride, step in (
        ((w_q, w_k, w_v), (d_model * d_head, 1, d_model), d_model * d_head),
        ((b_q, b_k, b_v), (d_head, 1), d_head),
    ):
        storage = group[0].untyped_storage().data_ptr()
        offset = group[0].storage_offset()
        for t in group:
            if (
                t.untyped_storage().data_ptr() != storage
                or t.storage_offset() != offset
                or t.stride() != stride
                or t.shape[-1] != d_head
            ):
                return None
            offset += t.shape[0] * step
    return (
        w_q.as_strided((rows, d_model), (d_model, 1), w_q.storage_offset()),
        b_q.as_strided((rows,), (1,), b_q.storage_offset()),
    )


class _Rotary:
    """One layer's rotary tables, in the form the fast path applies them.

    ``AbstractAttention.apply_rotary`` computes ``x * cos + flip(x) * sin`` with
    ``flip(x) = [-x2, x1]`` (halves; adjacent pairs for GPT-J-style models). Here the sign
    lives in the table instead, ``swap(x) * signed_sin`` with ``swap(x) = [x2, x1]``:
    ``(-a) * b == a * (-b)`` exactly in IEEE arithmetic, so the result is bit-for-bit the
    same with one operation fewer. The tables are rebuilt whenever the layer's own change.
    """

    def __init__(self, attn) -> None:
        self.attn = attn
        self.dim = attn.cfg.rotary_dim
        self.adjacent = bool(attn.cfg.rotary_adjacent_pairs)
        self.source: tuple | None = None

    def tables(self) -> tuple[Tensor, Tensor]:
        buffers = self.attn._buffers
        cos, sin = buffers["rotary_cos"], buffers["rotary_sin"]
        # the ids stay unique while self.tables_of keeps both tensors alive
        source = (id(cos), id(sin), cos._version, sin._version)
        if source != self.source:
            signed = sin.clone()
            if self.adjacent:
                signed[:, ::2] = -sin[:, ::2]
            else:
                signed[:, : self.dim // 2] = -sin[:, : self.dim // 2]
            self.tables_of, self.cos, self.signed_sin = (cos, sin), cos, signed
            self.source = source
        return self.cos, self.signed_sin

    def swap(self, x: Tensor) -> Tensor:
        if self.adjacent:
            return x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
        return x.roll(self.dim // 2, -1)  # [x2, x1]: the halves swapped

    def angles(self, positions: Tensor | slice, lo: int, hi: int) -> tuple[Tensor, Tensor]:
        """(cos, signed sin) of key positions [lo, hi): [batch or 1, hi - lo, 1, dim]."""
        cos, sin = self.tables()
        if isinstance(positions, slice):
            shape = (1, hi - lo, 1, cos.shape[-1])
            return cos.narrow(0, lo, hi - lo).view(shape), sin.narrow(0, lo, hi - lo).view(shape)
        ids = positions[:, lo:hi].to(cos.device)
        return cos[ids].unsqueeze(2), sin[ids].unsqueeze(2)

    def __call__(self, x: Tensor, cos: Tensor, signed_sin: Tensor) -> Tensor:
        """``apply_rotary`` of ``x`` [batch, pos, heads, d_head] at the given angles."""
        if self.dim == x.shape[-1]:
            return x * cos + self.swap(x) * signed_sin
        x_rot = x.narrow(-1, 0, self.dim)
        rotated = x_rot * cos + self.swap(x_rot) * signed_sin
        return torch.cat((rotated, x.narrow(-1, self.dim, x.shape[-1] - self.dim)), dim=-1)


class _FastAttention:
    """``AbstractAttention.forward`` through SDPA, for one attention module."""

    def __init__(self, attn, shared: _Shared) -> None:
        self.attn, self.shared = attn, shared
        self.grouped = isinstance(attn, GroupedQueryAttention)
        names = ("W_Q", "_W_K", "_W_V", "b_Q", "_b_K", "_b_V")
        self.names = names if self.grouped else tuple(n.lstrip("_") for n in names)
        self.rotary = _Rotary(attn) if shared.rotary else None
        self.fused_key: tuple | None = None
        self.fused: tuple[Tensor, Tensor] | None = None
        self.w_o_key: tuple | None = None
        self.w_o: Tensor | None = None

    def qkv_weights(self) -> tuple[tuple[Tensor, ...], tuple[Tensor, Tensor] | None]:
        params = self.attn._parameters
        ws = tuple(params[n] for n in self.names)
        if torch.is_grad_enabled():  # as_strided views would route gradients wrongly
            return ws, None
        key = tuple(w.data_ptr() for w in ws) + tuple(map(id, ws))
        if key != self.fused_key:
            # self.fused_params keeps the ids in the key unique
            self.fused_key, self.fused, self.fused_params = key, _fused_qkv(ws), ws
        return ws, self.fused

    def out_weight(self) -> Tensor:
        """W_O as TransformerLens's ``rearrange(W_O, "h d m -> m (h d)")``: a view with
        :func:`actadd.models.layout.fast_layout`'s storage, kept while the parameter and its
        storage stay the same (a copy is never kept)."""
        w_o = self.attn._parameters["W_O"]
        key = (id(w_o), w_o.data_ptr(), w_o.stride())
        if key == self.w_o_key:
            return self.w_o
        n, d_head, d_model = w_o.shape
        flat = w_o.permute(2, 0, 1)
        if not flat.is_contiguous():
            return flat.reshape(d_model, n * d_head)
        self.w_o_key, self.w_o, self.w_o_source = key, flat.view(d_model, n * d_head), w_o
        return self.w_o

    def __call__(
        self,
        x: Tensor,
        entry: TransformerLensKeyValueCacheEntry | None,
        mask: Tensor | None,
        h: _Points,
    ) -> Tensor:
        attn, rotary = self.attn, self.rotary
        ws, fused = self.qkv_weights()
        batch, q_len = x.shape[:2]
        n_q, n_kv, d_head = ws[0].shape[0], ws[1].shape[0], ws[0].shape[2]
        static = isinstance(entry, StaticKVCacheEntry) and not entry.frozen
        hooked_qk = h.q is not None or h.k is not None
        qk = kv = None  # q|k and k|v side by side, when nothing hooks them
        if fused is not None:
            qkv = F.linear(x, *fused).view(batch, q_len, n_q + 2 * n_kv, d_head)
            unhooked = not hooked_qk and h.v is None
            if not (unhooked and static and rotary is not None):
                q, k, v = qkv.split_with_sizes((n_q, n_kv, n_kv), dim=2)
            if not hooked_qk:
                qk = qkv.narrow(2, 0, n_q + n_kv)
            if unhooked and static and rotary is not None:
                kv = qkv.narrow(2, n_q, 2 * n_kv)
        else:
            q, k, v = (_project(x, ws[i], ws[i + 3]) for i in range(3))
        if h.q is not None:
            q = h.q(q)
        if h.k is not None:
            k = h.k(k)
        if h.v is not None:
            v = h.v(v)
        offset = _cached(entry) if entry is not None else 0
        kv_len = offset + q_len
        geo = self.shared.geometry_for(mask, offset, q_len, kv_len, batch)
        # TransformerLens caches keys unrotated; so does StaticKVCacheEntry (plus rotated)
        if kv is not None:
            keys, values = None, entry.append_kv(kv)  # keys: the rotated ones, below
        else:
            keys, values = entry.append(k, v) if entry is not None else (k, v)
        if rotary is not None:
            cos, sin = rotary.angles(geo.positions, offset, kv_len)
            if qk is not None:
                qk = rotary(qk, cos, sin)
                q, k = qk.narrow(2, 0, n_q), qk.narrow(2, n_q, n_kv)
            else:
                q, k = rotary(q, cos, sin), rotary(k, cos, sin)
            if h.rot_q is not None:
                q = h.rot_q(q)
            if static:
                keys = entry.rotated_keys(k, lambda lo, hi: self.rotate_keys(entry, geo, lo, hi))
            elif entry is not None:
                keys = self.rotate_keys(entry, geo, 0, kv_len, keys)
            else:
                keys = k
            if h.rot_k is not None:  # the hook gets a tensor of its own, as in TL
                keys = h.rot_k(keys.clone() if static else keys)
        if q_len > 1:
            z = self.exact_attention(q, keys, values, geo, offset)
        else:
            z = F.scaled_dot_product_attention(
                q.transpose(1, 2),
                keys.transpose(1, 2),
                values.transpose(1, 2),
                attn_mask=geo.mask,
                is_causal=geo.is_causal,
                scale=1.0 / attn.attn_scale,
                enable_gqa=self.grouped,
            ).transpose(1, 2)  # [batch, q_len, n_heads, d_head]
        if geo.dead is not None:
            z = z.masked_fill(geo.dead, 0.0)
        if h.z is not None:
            z = h.z(z)
        z = z.reshape(batch, q_len, n_q * d_head)
        return F.linear(z, self.out_weight(), attn._parameters["b_O"])

    def exact_attention(
        self, q: Tensor, keys: Tensor, values: Tensor, geo: _CallGeometry, offset: int
    ) -> Tensor:
        """Attention of several queries with TransformerLens's own arithmetic (grouped K/V
        heads repeated, ``q @ k / attn_scale``, the mask as ``-inf``, softmax, ``pattern @
        v``), so a prompt pass or a next-token forward gives TransformerLens's logits bit
        for bit (tested). Those passes are matmul-bound (the score matrix is [q_len,
        kv_len] per head), so SDPA would save little there, and its other rounding reaches
        ~1.3e-4 in SmolLM2's logits through the massive activations of its first token.
        Decoding steps (one query) take SDPA. Returns z [batch, q_len, n_heads, d_head]."""
        n_rep = q.shape[2] // keys.shape[2]
        if n_rep > 1:
            keys = keys.repeat_interleave(n_rep, dim=2)
            values = values.repeat_interleave(n_rep, dim=2)
        scores = q.permute(0, 2, 1, 3) @ keys.permute(0, 2, 3, 1) / self.attn.attn_scale
        mask = geo.mask
        if mask is None:  # unpadded: causal only
            q_len, kv_len = q.shape[1], keys.shape[1]
            mask = self.shared.causal(q_len, kv_len, offset, scores.device)
        scores = scores.masked_fill(~mask, float("-inf"))
        pattern = torch.softmax(scores, dim=-1)
        return (pattern @ values.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)

    def rotate_keys(
        self, entry, geo: _CallGeometry, lo: int, hi: int, keys: Tensor | None = None
    ) -> Tensor:
        """Rotated keys of cached positions [lo, hi) (``keys``: those positions' unrotated
        keys, default the entry's)."""
        cos, sin = self.rotary.angles(geo.positions, lo, hi)
        return self.rotary(entry.past_keys[:, lo:hi] if keys is None else keys, cos, sin)
