"""What every layer of one forward call shares on the fast path: the rotary positions of
the keys and the attention mask (:class:`_CallGeometry`), computed once per call and
memoised by :class:`_Shared` (with the 0-d scalars and causal masks it makes once).

Internal to the fast path (:mod:`actadd.runtime.fast`); nothing here is public.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import Tensor

from actadd.runtime.backends import HookedTransformer

__all__: list[str] = []  # internal: the fast path's public names are in actadd.runtime.fast


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
