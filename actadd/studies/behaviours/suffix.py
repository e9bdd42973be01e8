"""Steered next-token logits over a shared, unsteered prompt prefix: the CAA protocol's
forward (:mod:`actadd.studies.behaviours.protocol`).

A behaviour cell adds a vector on the last ``n_steer`` positions of each prompt only, so the
positions before them are the same in every cell, at every layer. :class:`SuffixBatch`
computes them once (their keys and values, a frozen KV cache) and each cell recomputes only
the last ``n_steer`` positions from the layer's clean residual plus the vector.

Two ways to attend to the cached prefix, with the same numbers (to float rounding, tested):

- **shared** (the default where the model allows it, :func:`shared_unsupported`): the
  prefix's keys are rotated once, kept in the layout the matmul wants, and every cell's
  queries attend to them through broadcasting (grouped-query heads grouped, never
  repeated); only the ``n_steer`` new keys and values are per cell. The blocks run as
  TransformerLens runs them (norms, MLP, hook points), with each attention module's
  ``forward`` replaced for the call (:func:`_shared_attention`) and restored after it.
- **repeat** (TransformerLens's own attention, the reference): the prefix cache is repeated
  once per cell and handed to ``model(..., start_at_layer=...)``, which concatenates it with
  the new keys, rotates every cached key and repeats the grouped heads, per cell and layer.
  On SmolLM2 that copying, not the matmuls, was most of the benchmark's time.

A cell whose additions are all zero is the unsteered forward: its logits are the clean
forward's, computed once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from actadd.errors import ConfigError
from actadd.runtime.backends import Model
from actadd.runtime.fast.policy import cfg_reason

__all__ = ["SuffixBatch", "letter_logits", "shared_unsupported"]

#: architectures whose attention does more than calculate_qkv_matrices (OLMo's QK norm)
_OWN_QK = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")
#: attention hook points the shared attention never fires (it has no full score matrix)
_UNFIRED = ("hook_attn_scores", "hook_pattern", "hook_rot_k")


def shared_unsupported(model: Model) -> str | None:
    """Why :class:`SuffixBatch` must use TransformerLens's own attention on ``model`` (a
    configuration the shared attention does not reproduce, or a hook on an attention point
    it does not fire), or ``None``."""
    from transformer_lens.components import Attention, GroupedQueryAttention

    cfg = model.cfg
    reason = cfg_reason(cfg)  # the fast path's attention assumptions, its check
    if reason is not None:
        return reason
    if cfg.original_architecture in _OWN_QK:
        return f"architecture {cfg.original_architecture}"
    for block in model.blocks:
        attn = block.attn
        if type(attn) not in (Attention, GroupedQueryAttention) or "forward" in vars(attn):
            return f"attention type {type(attn).__name__}"
        if attn._attention_dir_override not in (None, "causal"):
            return "overridden attention direction"
        points = [attn._modules.get(p) for p in _UNFIRED]
        if any(hp is not None and (hp._forward_hooks or hp._forward_pre_hooks) for hp in points):
            return "a hook on the attention scores, pattern or rotated keys"
    return None


@dataclass
class _Prefix:
    """One layer's cached prefix, as the shared attention reads it: ``keys`` [n, kv_heads,
    d_head, P] (rotated), ``values`` [n, kv_heads, P, d_head], ``mask`` bool [n, 1, 1, 1,
    k, P + k] (which key each of the k new queries sees) and ``full_mask`` [n, P + k] (the
    padding mask, for the rotary positions of the new tokens)."""

    keys: Tensor
    values: Tensor
    mask: Tensor
    full_mask: Tensor

    def __post_init__(self) -> None:
        self.masks: dict[int, Tensor] = {}

    def rows_mask(self, cells: int) -> Tensor:
        """``full_mask`` repeated for ``cells`` cells (rows ordered cell-major)."""
        if cells not in self.masks:
            self.masks = {cells: self.full_mask.repeat(cells, 1)}
        return self.masks[cells]


def _shared_attention(attn):
    """The ``forward`` of attention module ``attn`` over a :class:`_Prefix` (see the module
    docstring); TransformerLens's ``AbstractAttention.forward`` arithmetic, with the
    prefix's keys and values shared by every cell instead of copied into each."""
    from transformer_lens.utilities.activation_functions import apply_softcap

    def forward(
        query_input, key_input, value_input, past_kv_cache_entry=None, attention_mask=None, **_
    ):
        pre: _Prefix = past_kv_cache_entry
        q, k, v = attn.calculate_qkv_matrices(query_input, key_input, value_input)
        rows, kq, n_heads, d_head = q.shape
        n, g, _, p = pre.keys.shape
        c, r = rows // n, n_heads // g
        if attn.cfg.positional_embedding_type == "rotary":
            mask = pre.rows_mask(c)
            q = attn.hook_rot_q(attn.apply_rotary(q, p, mask))
            k = attn.apply_rotary(k, p, mask)
        # rows are (cell, prompt); heads h = kv_head * r + j (TransformerLens's repeat)
        qg = q.view(c, n, kq, g, r, d_head).permute(1, 3, 0, 4, 2, 5)  # n g c r kq d
        qg = qg.reshape(n, g, c * r * kq, d_head)
        kn = k.view(c, n, kq, g, d_head).permute(1, 3, 0, 4, 2)  # n g c d kq
        vn = v.view(c, n, kq, g, d_head).permute(1, 3, 0, 2, 4)  # n g c kq d
        s_old = (qg @ pre.keys / attn.attn_scale).view(n, g, c, r, kq, p)
        s_new = qg.view(n, g, c, r * kq, d_head) @ kn / attn.attn_scale
        scores = torch.cat([s_old, s_new.view(n, g, c, r, kq, kq)], dim=-1)
        scores = apply_softcap(scores, attn.cfg.attn_scores_soft_cap)
        scores = torch.where(pre.mask, scores, attn.IGNORE)
        pattern = F.softmax(scores, dim=-1)
        pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
        pattern = pattern.to(v.dtype)
        z = pattern[..., :p].reshape(n, g, c * r * kq, p) @ pre.values
        z = z.view(n, g, c, r * kq, d_head) + pattern[..., p:].reshape(n, g, c, r * kq, kq) @ vn
        z = z.view(n, g, c, r, kq, d_head).permute(2, 0, 4, 1, 3, 5)  # c n kq g r d
        z = attn.hook_z(z.reshape(rows, kq, n_heads, d_head))
        w = attn.W_O.permute(2, 0, 1).reshape(attn.W_O.shape[2], n_heads * d_head)
        return F.linear(z.reshape(rows, kq, n_heads * d_head), w, attn.b_O)

    return forward


@contextmanager
def _attention_over_prefix(model: Model) -> Iterator[None]:
    """Every attention module of ``model`` attends through :func:`_shared_attention` inside
    the block (the caller holds the model's lock); restored on exit, however it exits."""
    patched = []
    try:
        for block in model.blocks:
            block.attn.forward = _shared_attention(block.attn)
            patched.append(block.attn)
        yield
    finally:
        for attn in patched:
            del attn.forward


class SuffixBatch:
    """Steered next-token logits when a vector touches only the last ``n_steer`` positions
    of each prompt (the module docstring): exact, at ~``n_steer / length`` of a full
    forward's cost per cell. Prompts are left-padded; every prompt of one batch shares
    ``n_steer``. ``shared``: the shared attention where :func:`shared_unsupported` allows
    (``False``: TransformerLens's own, the reference). A backend that cannot start at a
    layer (the TransformerBridge) is refused."""

    def __init__(
        self,
        model: Model,
        token_lists: Sequence[Sequence[int]],
        n_steer: int,
        layers: Sequence[int],
        *,
        max_rows: int = 256,
        shared: bool = True,
    ) -> None:
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        from actadd.runtime.backends import backend_of
        from actadd.runtime.forward import left_pad
        from actadd.runtime.hooks import resid_pre
        from actadd.runtime.modellock import exclusive

        if not backend_of(model).restarts:
            raise ConfigError(
                "the suffix forward needs a backend that starts at a layer; "
                "use forward = 'prefix' on this model."
            )
        self.model, self.k, self.max_rows = model, int(n_steer), max(1, int(max_rows))
        tokens, mask = left_pad(model, token_lists)
        k = self.k
        self.n = len(token_lists)
        self.cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, self.n)
        self.mask = mask
        names = {resid_pre(model, layer): layer for layer in layers}
        with exclusive(model), torch.no_grad():
            # return_type None: the prefix's keys and values, never its logits
            model(
                tokens[:, :-k],
                attention_mask=mask[:, :-k],
                past_kv_cache=self.cache,
                return_type=None,
            )
            self.cache.freeze()
            logits, acts = model.run_with_cache(
                tokens[:, -k:],
                attention_mask=mask[:, -k:],
                past_kv_cache=self.cache,
                names_filter=list(names),
            )
            self.shared = shared and shared_unsupported(model) is None
            self.prefix = self._prefix(min(layers)) if self.shared and len(layers) else {}
        self.clean = logits[:, -1]
        self.resid = {layer: acts[name] for name, layer in names.items()}

    def _prefix(self, lowest: int) -> dict[int, _Prefix]:
        """Per layer from ``lowest`` on, the prefix as :func:`_shared_attention` reads it."""
        model, mask, k = self.model, self.mask, self.k
        p = mask.shape[1] - k
        key = torch.arange(p + k, device=mask.device)
        query = torch.arange(p, p + k, device=mask.device)
        sees = (key[None, :] <= query[:, None])[None] & mask.bool()[:, None, :]  # n k P+k
        out = {}
        for i in range(lowest, model.cfg.n_layers):
            attn, entry = model.blocks[i].attn, self.cache.entries[i]
            keys = entry.past_keys
            if model.cfg.positional_embedding_type == "rotary":
                keys = attn.apply_rotary(keys, 0, mask[:, :p])
            window = sees
            if attn.attn_type == "local":
                window = sees & (key[None, :] > query[:, None] - attn.cfg.window_size)[None]
            out[i] = _Prefix(
                keys.permute(0, 2, 3, 1).contiguous(),
                entry.past_values.permute(0, 2, 1, 3).contiguous(),
                window[:, None, None, None],
                mask,
            )
        return out

    def _cache(self, layer: int, copies: int):
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
        from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

        entries = [
            TransformerLensKeyValueCacheEntry(
                e.past_keys.repeat(copies, 1, 1, 1) if i >= layer else e.past_keys[:0],
                e.past_values.repeat(copies, 1, 1, 1) if i >= layer else e.past_values[:0],
                frozen=True,
            )
            for i, e in enumerate(self.cache.entries)
        ]
        mask = self.cache.previous_attention_mask.repeat(copies, 1)
        return TransformerLensKeyValueCache(entries, mask, frozen=True)

    def _final(self, layer: int, x: Tensor, cells: int) -> Tensor:
        """The final residual [cells · n, n_steer, d_model] of the rows ``x`` entering
        ``resid_pre`` of ``layer``."""
        model = self.model
        if self.shared and shared_unsupported(model) is None:
            with _attention_over_prefix(model):
                for i in range(layer, model.cfg.n_layers):
                    x = model.blocks[i](x, past_kv_cache_entry=self.prefix[i])
            return x
        return model(
            x,
            start_at_layer=layer,
            stop_at_layer=model.cfg.n_layers,
            attention_mask=self.mask.repeat(cells, 1),
            past_kv_cache=self._cache(layer, cells),
        )

    @torch.no_grad()
    def logits(self, layer: int, additions: Tensor, columns: Sequence[int]) -> Tensor:
        """Logits at ``columns`` of the final position, [cells, prompts, columns], with
        ``additions[c, i]`` (a d_model row) added at ``resid_pre`` ``layer`` on each of the
        last ``n_steer`` positions of prompt ``i`` in cell ``c``."""
        from actadd.runtime.modellock import exclusive

        model, n = self.model, self.n
        base = self.resid[layer]
        cols = torch.as_tensor(list(columns), device=base.device)
        out = torch.empty((len(additions), n, len(cols)), dtype=base.dtype, device=base.device)
        zero = ~additions.reshape(len(additions), -1).any(-1).to(base.device)
        out[zero] = self.clean[:, cols].to(out)
        todo = torch.nonzero(~zero).flatten()
        per = max(1, self.max_rows // n)
        for c0 in range(0, len(todo), per):
            idx = todo[c0 : c0 + per]
            add = additions[idx.to(additions.device)].to(base)
            c = len(add)
            x = (base[None] + add[:, :, None, :]).reshape(c * n, self.k, -1)
            with exclusive(model):
                final = self._final(layer, x, c)
            out[idx] = letter_logits(model, final[:, -1], cols).reshape(c, n, len(cols))
        return out


def letter_logits(model: Model, resid: Tensor, cols: Tensor) -> Tensor:
    """The logits at vocabulary ``cols`` of final residual rows [rows, d_model]: final
    norm, those columns of the unembedding (and the logit soft cap, if any); the same
    numbers as the full unembedding's columns, at a fraction of the cost."""
    logits = model.ln_final(resid[:, None])[:, 0] @ model.W_U[:, cols] + model.b_U[cols]
    cap = model.cfg.output_logits_soft_cap
    return cap * torch.tanh(logits / cap) if cap > 0 else logits
