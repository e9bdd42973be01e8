"""A leaner forward pass through TransformerLens 3.9 blocks, with every hook point intact.

``with fast_path(model):`` gives each of the model's block *instances* (never the classes) a
``forward`` that computes what ``TransformerBlock.forward`` computes with far fewer tensor
operations, and takes it away again on exit, normal or by exception. Decoding one token
through SmolLM2 on a CPU, TransformerLens dispatches ~410 torch operations per layer (~220
that are not views); the fast path ~160 (~50). At batch 1 that overhead, not the matmuls,
is what separated TransformerLens from Hugging Face. What changes:

- Q, K and V come from one matmul when their weights share a buffer (as
  :func:`actadd.models.layout.fast_layout` lays them out);
- a decoding step (one query per row) calls ``torch.nn.functional.scaled_dot_product_attention``
  with grouped K/V heads (``enable_gqa``) instead of materialising scores, repeating the
  K/V heads, building a causal mask, masking, softmax, NaN-cleaning and a second matmul;
  a pass of several queries (a prompt, a next-token forward, a perplexity pass) keeps
  TransformerLens's attention arithmetic, in fewer operations (see Numerics);
- the positions and the attention mask depend only on the forward call, so they are
  computed once per call and shared by every layer; each key is rotated once (a
  :class:`StaticKVCache` keeps the rotated keys), not at every step;
- ``ln1`` runs once per block (TransformerLens normalises the same residual three times,
  for the query, key and value inputs); RMSNorm, the gated MLP and rotary run bit for bit
  as TransformerLens computes them, with fewer operations;
- a hook point is called only when something is attached to it (an empty ``HookPoint`` is
  the identity); which ones are hooked is re-read whenever torch registers a hook.

**Hooks.** Every hook point on the path fires exactly where TransformerLens fires it, in
the same order, with the same tensor: ``hook_resid_pre`` (steering adds there),
``attn.hook_q/k/v``, ``hook_rot_q/k``, ``hook_z``, ``hook_attn_out``, ``hook_resid_mid``,
``ln2.hook_*``, ``mlp.hook_*``, ``hook_mlp_out``, ``hook_resid_post``. The fast path does
not hook the attention scores or pattern (SDPA never materialises them), so a block whose
``attn.hook_attn_scores`` / ``attn.hook_pattern`` is hooked — or whose ``ln1`` is hooked
(it fires three times per block in TransformerLens), or whose submodules carry plain
PyTorch hooks or their own patched ``forward`` — runs TransformerLens's own ``forward`` for
that call, as does every block while a global module hook is registered. ``run_with_cache``
therefore sees what it sees without the fast path.

**Scope.** Configurations the fast path does not cover (see :func:`unsupported_reason`:
alibi, local or bidirectional attention, soft caps, attention sinks, QK norm, split QKV
inputs, post-norm or parallel blocks, several devices, ...) are left entirely to
TransformerLens.

**Numerics.** A forward of several queries per row computes what TransformerLens computes
in the same order, and its logits equal TransformerLens's bit for bit on the development
machine (tested against TransformerLens on tiny models and SmolLM2 to 1e-4, observed 0).
Decoding steps agree to float rounding: SDPA scales and accumulates in another order
(max |diff| 2.9e-5 on SmolLM2's logits, which reach ~40; SDPA on a whole prompt would reach
1.3e-4 through the massive activations of SmolLM2's first token).
Exact additions, cache = no cache and batch = alone hold within the fast path as they hold
within TransformerLens's (``tests/unit/test_fastpath.py``, ``tests/unit/test_steer.py``).

:class:`StaticKVCache` is a drop-in ``TransformerLensKeyValueCache`` whose entries write
into preallocated buffers instead of concatenating the whole cache at every step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from actadd.runtime.backends import HAS_HOOKED, HookedTransformer, Model, backend_of
from actadd.runtime.modellock import exclusive

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
    "StaticKVCache",
    "StaticKVCacheEntry",
    "fast_allowed",
    "fast_path",
    "transformerlens_forward",
    "unsupported_reason",
]

# cfg attribute -> the value the fast path assumes (anything else: TransformerLens's forward)
_REQUIRED_CFG = {
    "attention_dir": "causal",
    "use_attn_in": False,
    "use_split_qkv_input": False,
    "use_hook_mlp_in": False,
    "use_attn_result": False,
    "use_normalization_before_and_after": False,
    "attn_only": False,
    "parallel_attn_mlp": False,
    "use_attention_sinks": False,
    "use_qk_norm": False,
    "clip_qkv": None,
    "use_logn_attn": False,
    "use_dynamic_ntk_rope": False,
    "load_in_4bit": False,
    "ungroup_grouped_query_attention": False,
    "n_devices": 1,
}


def unsupported_reason(model: HookedTransformer) -> str | None:
    """Why :func:`fast_path` leaves ``model`` to TransformerLens, or ``None`` if it covers it."""
    cfg = model.cfg
    for name, wanted in _REQUIRED_CFG.items():
        if getattr(cfg, name, wanted) != wanted:
            return f"cfg.{name} = {getattr(cfg, name)!r}"
    if cfg.positional_embedding_type not in ("standard", "rotary"):
        return f"positional_embedding_type {cfg.positional_embedding_type!r}"
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        return f"post-norm architecture {cfg.original_architecture}"
    if getattr(cfg, "attn_scores_soft_cap", -1.0) not in (None, -1.0, 0.0):
        return "attention score soft cap"
    if any(t != "global" for t in (getattr(cfg, "attn_types", None) or [])):
        return "local attention"
    for block in model.blocks:
        if type(block) is not TransformerBlock:
            return f"block type {type(block).__name__}"
        attn = block.attn
        if type(attn) not in (Attention, GroupedQueryAttention):
            return f"attention type {type(attn).__name__}"
        if attn.attn_type != "global" or attn._attention_dir_override not in (None, "causal"):
            return "non-global or overridden attention direction"
    return None


# --------------------------------------------------------------------------- hooks


def _hooked(module: nn.Module) -> bool:
    """Whether calling ``module`` could run anything besides its ``forward``."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _global_hooks() -> bool:
    m = nn.modules.module
    return bool(
        m._global_forward_hooks
        or m._global_forward_pre_hooks
        or m._global_backward_hooks
        or m._global_backward_pre_hooks
    )


def _patched(module: nn.Module) -> bool:
    """Whether someone put an instance-level ``forward`` on ``module``."""
    return "forward" in module.__dict__


def _hook_stamp() -> int | None:
    """Changes whenever torch registers a hook anywhere (every registration takes a new
    ``RemovableHandle`` id); ``None`` if this torch does not expose the counter."""
    return getattr(RemovableHandle, "next_id", None)


class _Points:
    """A block's hook points the fast path runs through: each attribute is the
    ``HookPoint`` if something is attached to it, else ``None`` (an empty hook point is the
    identity, so it is skipped). ``fallback`` says the block must run TransformerLens's own
    forward: a hook on what SDPA never materialises (``attn.hook_attn_scores``,
    ``attn.hook_pattern``), on ``ln1`` (TransformerLens runs it three times per block), or
    a plain PyTorch hook on a submodule or anywhere globally.

    Re-read only when torch has registered a hook since the last read (removing one can
    only leave a hook point empty, and calling an empty hook point is still exact)."""

    NAMES = {
        "resid_pre": "hook_resid_pre",
        "attn_out": "hook_attn_out",
        "resid_mid": "hook_resid_mid",
        "mlp_out": "hook_mlp_out",
        "resid_post": "hook_resid_post",
        "q": "attn.hook_q",
        "k": "attn.hook_k",
        "v": "attn.hook_v",
        "rot_q": "attn.hook_rot_q",
        "rot_k": "attn.hook_rot_k",
        "z": "attn.hook_z",
        "ln2_scale": "ln2.hook_scale",
        "ln2_normalized": "ln2.hook_normalized",
        "mlp_pre": "mlp.hook_pre",
        "mlp_pre_linear": "mlp.hook_pre_linear",
        "mlp_post": "mlp.hook_post",
    }

    def __init__(self, block: TransformerBlock) -> None:
        self.modules = dict(block.named_modules())
        self.stamp: object = object()  # never equal to a stamp: read on first use
        self.fallback = True

    def refresh(self) -> None:
        stamp = _hook_stamp()
        if stamp is not None and stamp == self.stamp:
            return
        self.stamp = stamp
        mods = self.modules
        for attr, name in self.NAMES.items():
            hp = mods.get(name)
            setattr(self, attr, hp if hp is not None and _hooked(hp) else None)
        attn, ln1 = mods["attn"], mods["ln1"]
        self.fallback = (
            _global_hooks()
            or any(_hooked(mods[n]) for n in ("attn", "ln1", "ln2", "mlp"))
            or _hooked(attn.hook_attn_scores)
            or _hooked(attn.hook_pattern)
            or any(_hooked(m) for m in ln1.children())
        )


# --------------------------------------------------------------------------- per-call state


@dataclass
class _CallGeometry:
    """What every layer of one forward call shares: rotary angles and the attention mask."""

    positions: Tensor | slice | None  # rotary position of every key: [batch, kv_len] or a slice
    mask: Tensor | None  # bool [batch, 1, q_len, kv_len]; None with is_causal or no mask needed
    is_causal: bool
    dead: Tensor | None  # bool [batch, q_len, 1, 1]: query rows that may attend to nothing


class _Shared:
    """Memo of one forward call's :class:`_CallGeometry`.

    Within a call TransformerLens hands every block the same attention-mask object, and
    runs the blocks in increasing order; so the memo is forgotten whenever a block runs
    whose index is not above the previous one's (a new call), and is keyed on the mask's
    identity, the cache offset and the lengths (a call nested inside a hook).
    """

    def __init__(self, model: HookedTransformer) -> None:
        self.thread = threading.current_thread()  # the one thread the fast path serves
        self.rotary = model.cfg.positional_embedding_type == "rotary"
        self.last_block = -1
        self.key: tuple | None = None
        self.mask_ref: Tensor | None = None
        self.geometry: _CallGeometry | None = None
        self.scalars: dict[tuple, Tensor] = {}
        self.causal_masks: dict[tuple, Tensor] = {}

    def scalar(self, value: float, like: Tensor) -> Tensor:
        """``value`` as a 0-d tensor of ``like``'s dtype and device, made once."""
        key = (value, like.dtype, like.device)
        t = self.scalars.get(key)
        if t is None:
            t = self.scalars[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
        return t

    def causal(self, q_len: int, kv_len: int, offset: int, device) -> Tensor:
        """bool [q_len, kv_len]: query ``i`` (at position ``offset + i``) sees keys up to
        its own position; made once per shape."""
        key = (q_len, kv_len, offset, device)
        mask = self.causal_masks.get(key)
        if mask is None:
            q_pos = torch.arange(offset, offset + q_len, device=device)
            mask = torch.arange(kv_len, device=device)[None, :] <= q_pos[:, None]
            self.causal_masks[key] = mask
        return mask

    def enter(self, block_index: int) -> None:
        """Block ``block_index`` starts; a new forward call if the index did not increase."""
        if block_index <= self.last_block:
            self.geometry = self.mask_ref = self.key = None
        self.last_block = block_index

    def geometry_for(
        self, attention_mask: Tensor | None, offset: int, q_len: int, kv_len: int, batch: int
    ) -> _CallGeometry:
        key = (offset, q_len, kv_len, batch)
        if key == self.key and attention_mask is self.mask_ref and self.geometry is not None:
            return self.geometry
        self.geometry = self._compute(attention_mask, offset, q_len, kv_len)
        self.key, self.mask_ref = key, attention_mask
        return self.geometry

    def _compute(
        self, attention_mask: Tensor | None, offset: int, q_len: int, kv_len: int
    ) -> _CallGeometry:
        unpadded = attention_mask is None or bool(attention_mask.all())
        positions = None
        if self.rotary:
            if unpadded:  # TransformerLens's position ids are then 0, 1, 2, ...
                positions = slice(0, kv_len)
            else:
                # TransformerLens's get_offset_position_ids: real tokens count from 0 per row
                ids = attention_mask.cumsum(dim=1) - 1
                positions = ids.masked_fill(ids < 0, 0)
        device = attention_mask.device if attention_mask is not None else None
        if unpadded:
            if q_len == kv_len:
                return _CallGeometry(positions, None, q_len > 1, None)
            if q_len == 1:
                return _CallGeometry(positions, None, False, None)
            keys_ok = None
        else:
            keys_ok = attention_mask.bool()
        q_pos = torch.arange(offset, offset + q_len, device=device)
        mask = torch.arange(kv_len, device=device)[None, :] <= q_pos[:, None]  # [q, kv]
        mask = mask[None, None]  # [1, 1, q, kv]
        dead = None
        if keys_ok is not None:
            mask = mask & keys_ok[:, None, None, :]
            no_key = ~mask.any(-1)  # [batch, 1, q]: a pad query with no real key before it
            if bool(no_key.any()):
                # TransformerLens gives such rows an all -inf score row -> NaN -> pattern 0,
                # so z = 0; let SDPA attend anywhere (finite) and zero z afterwards
                mask = mask | no_key[..., None]
                dead = no_key.transpose(1, 2)[..., None]  # [batch, q, 1, 1]
        return _CallGeometry(positions, mask, False, dead)


# --------------------------------------------------------------------------- components


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


def _cached(entry: TransformerLensKeyValueCacheEntry) -> int:
    return entry.cached if isinstance(entry, StaticKVCacheEntry) else entry.past_keys.size(1)


_OFF = "_actadd_transformerlens_forward"  # instance attribute: depth of the contexts below


@contextmanager
def transformerlens_forward(model: Model) -> Iterator[None]:
    """Inside, every actadd forward on ``model`` runs TransformerLens's own forward, as
    ``fast=False`` does: :func:`fast_path` leaves the model alone, and
    :func:`actadd.core.generation.generate_tokens` decodes with TransformerLens's cache. For
    checking a result against TransformerLens, and for ``benchmarks/bench_suite.py``'s
    before/after timings of whole experiments. Nests; kept on the model instance."""
    vars(model)[_OFF] = vars(model).get(_OFF, 0) + 1
    try:
        yield
    finally:
        vars(model)[_OFF] -= 1
        if not vars(model)[_OFF]:
            del vars(model)[_OFF]


def fast_allowed(model: Model, fast: bool = True) -> bool:
    """Whether an actadd forward asked to run ``fast`` may (not inside
    :func:`transformerlens_forward`)."""
    return fast and backend_of(model).fast and not vars(model).get(_OFF, 0)


@contextmanager
def fast_path(model: Model) -> Iterator[bool]:
    """Run ``model``'s blocks through the fast path inside the ``with`` block (see the module
    docstring). Yields ``True`` if it applies, ``False`` if the model is left to
    TransformerLens (:func:`unsupported_reason`, or a block with a ``forward`` patched by
    someone else, or inside :func:`transformerlens_forward`). Nested uses on one model are
    fine: the outermost owns the patch.

    The blocks are patched for the calling thread only: it holds the model's lock
    (:mod:`actadd.runtime.modellock`) inside, and a block called from another thread meanwhile runs
    TransformerLens's own ``forward``.
    """
    with exclusive(model), _fast_path(model) as applied:
        yield applied


@contextmanager
def _fast_path(model: Model) -> Iterator[bool]:
    if not fast_allowed(model):
        yield False
        return
    blocks = list(model.blocks)
    if any(isinstance(vars(b).get("forward"), _FastBlock) for b in blocks):
        yield True
        return
    if unsupported_reason(model) is not None or any("forward" in vars(b) for b in blocks):
        yield False
        return
    shared = _Shared(model)
    patched: list[tuple[TransformerBlock, _FastBlock]] = []
    try:
        for index, block in enumerate(blocks):
            fast = _FastBlock(block, index, shared)
            block.forward = fast
            patched.append((block, fast))
        yield True
    finally:
        for block, fast in patched:
            if vars(block).get("forward") is fast:
                del block.forward


# --------------------------------------------------------------------------- KV cache


class StaticKVCacheEntry(TransformerLensKeyValueCacheEntry):
    """A ``TransformerLensKeyValueCacheEntry`` over preallocated buffers.

    ``append`` writes the new keys and values in place and returns views of everything
    cached so far, instead of concatenating the whole cache (a copy of every cached
    position, every layer, every step). Keys and values share one buffer
    ``[batch, capacity, 2 * n_heads, d_head]`` (keys first), so the fast path stores both
    with one copy (:meth:`append_kv`). Buffers grow by doubling if a sequence outruns the
    capacity. ``past_keys`` / ``past_values`` are views [batch, cached, n_heads, d_head]:
    unrotated keys, as TransformerLens caches them. Alongside, the fast path keeps the
    rotary-rotated keys (:meth:`rotated_keys`), so each key is rotated once, not once per
    step.
    """

    def __init__(self, kv: Tensor, cached: int = 0, frozen: bool = False) -> None:
        self.n_heads = kv.shape[2] // 2
        self._set_buffer(kv)
        self._rotated: Tensor | None = None  # [batch, capacity, n_heads, d_head]
        self.n_rotated = 0  # positions [0, n_rotated) of _rotated are valid
        self.cached = cached
        self.frozen = frozen

    @classmethod
    def allocate(
        cls, batch: int, capacity: int, n_heads: int, d_head: int, device, dtype
    ) -> StaticKVCacheEntry:
        return cls(
            torch.empty((batch, max(capacity, 1), 2 * n_heads, d_head), device=device, dtype=dtype)
        )

    def _set_buffer(self, kv: Tensor) -> None:
        self._kv = kv  # [batch, capacity, 2 * n_heads, d_head]
        self._keys = kv.narrow(2, 0, self.n_heads)
        self._values = kv.narrow(2, self.n_heads, self.n_heads)

    @property
    def past_keys(self) -> Tensor:  # type: ignore[override]
        return self._keys.narrow(1, 0, self.cached)

    @property
    def past_values(self) -> Tensor:  # type: ignore[override]
        return self._values.narrow(1, 0, self.cached)

    @property
    def capacity(self) -> int:
        return self._kv.shape[1]

    def append(self, new_keys: Tensor, new_values: Tensor) -> tuple[Tensor, Tensor]:
        """TransformerLens's ``append``: store, return all keys and values so far."""
        if self.frozen:
            return (
                torch.cat([self.past_keys, new_keys], dim=1),
                torch.cat([self.past_values, new_values], dim=1),
            )
        start = self.cached
        self._slot(new_keys.shape[1])
        self._keys.narrow(1, start, new_keys.shape[1]).copy_(new_keys)
        self._values.narrow(1, start, new_keys.shape[1]).copy_(new_values)
        return self.past_keys, self.past_values

    def append_kv(self, new: Tensor) -> Tensor:
        """Store keys and values given side by side, ``new`` [batch, n, 2 * n_heads,
        d_head] (keys first), with one copy; return every value so far (the fast path
        reads keys through :meth:`rotated_keys`). Not for frozen entries."""
        self._slot(new.shape[1]).copy_(new)
        return self.past_values

    def _slot(self, n: int) -> Tensor:
        """Room for ``n`` more positions: the view to write them into."""
        start, stop = self.cached, self.cached + n
        if stop > self.capacity:
            self._grow(max(stop, 2 * self.capacity))
        self.cached = stop
        return self._kv.narrow(1, start, n)

    def rotated_keys(self, new: Tensor, rotate_cached) -> Tensor:
        """Store the rotated keys ``new`` of the positions just appended and return every
        rotated key so far [batch, cached, n_heads, d_head]. ``rotate_cached(lo, hi)``
        rotates cached positions that arrived without rotated keys (appended by
        TransformerLens's own forward)."""
        hi = self.cached
        lo = hi - new.shape[1]
        shape = (self._kv.shape[0], self.capacity, self.n_heads, self._kv.shape[3])
        if self._rotated is None or self._rotated.shape != shape:
            old, self._rotated = self._rotated, self._kv.new_empty(shape)
            if old is not None:
                self._rotated[:, : self.n_rotated] = old[:, : self.n_rotated]
        if self.n_rotated < lo:
            self._rotated[:, self.n_rotated : lo] = rotate_cached(self.n_rotated, lo)
        self._rotated.narrow(1, lo, hi - lo).copy_(new)
        self.n_rotated = hi
        return self._rotated.narrow(1, 0, hi)

    def select_rows(self, index: Tensor) -> StaticKVCacheEntry:
        """A new entry whose row ``j`` is this entry's row ``index[j]`` (everything cached,
        rotated keys included; the capacity stays)."""
        out = StaticKVCacheEntry(self._kv.index_select(0, index), self.cached, self.frozen)
        if self._rotated is not None:
            out._rotated = self._rotated.index_select(0, index)
            out.n_rotated = self.n_rotated
        return out

    def _grow(self, capacity: int) -> None:
        old = self._kv
        new = old.new_empty((old.shape[0], capacity, *old.shape[2:]))
        new[:, : self.cached] = old[:, : self.cached]
        self._set_buffer(new)

    def __repr__(self) -> str:
        return (
            f"StaticKVCacheEntry(cached={self.cached}, capacity={self.capacity}, "
            f"heads={self.n_heads}, frozen={self.frozen})"
        )


class StaticKVCache(TransformerLensKeyValueCache):
    """A ``TransformerLensKeyValueCache`` whose entries are :class:`StaticKVCacheEntry`."""

    @classmethod
    def allocate(cls, cfg, device, batch_size: int, capacity: int) -> StaticKVCache:
        """Room for ``capacity`` positions per row (more grows the buffers)."""
        n_heads = cfg.n_key_value_heads if cfg.n_key_value_heads is not None else cfg.n_heads
        return cls(
            entries=[
                StaticKVCacheEntry.allocate(
                    batch_size, capacity, n_heads, cfg.d_head, device, cfg.dtype
                )
                for _ in range(cfg.n_layers)
            ],
            previous_attention_mask=torch.empty((batch_size, 0), device=device, dtype=torch.int),
        )

    def select_rows(self, index: Tensor) -> StaticKVCache:
        """A new cache whose row ``j`` is this cache's row ``index[j]``: a decoding loop
        computes the prompt once per distinct row and then gives each copy its own rows."""
        index = index.to(self.previous_attention_mask.device)
        return StaticKVCache(
            entries=[e.select_rows(index.to(e._kv.device)) for e in self.entries],
            previous_attention_mask=self.previous_attention_mask.index_select(0, index),
            frozen=self.frozen,
        )
