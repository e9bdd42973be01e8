"""A preallocated KV cache for the fast path: :class:`StaticKVCache` is a drop-in
``TransformerLensKeyValueCache`` whose entries (:class:`StaticKVCacheEntry`) write into
preallocated buffers instead of concatenating the whole cache at every step, and keep each
key's rotary-rotated form beside it, so a key is rotated once, not at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

__all__ = ["StaticKVCache", "StaticKVCacheEntry"]


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


def _cached(entry: TransformerLensKeyValueCacheEntry) -> int:
    return entry.cached if isinstance(entry, StaticKVCacheEntry) else entry.past_keys.size(1)
