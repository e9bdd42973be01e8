"""The batched, steered forward from a shared clean prefix: one row per steering condition.

A vector added at ``resid_pre`` of layer ``L`` changes nothing below ``L``, so the clean
residual stream of a set of texts is computed once, and a steered forward restarts at ``L``
from it (``start_at_layer``) instead of at the embedding. Many conditions (a coefficient,
an alignment, a control vector, ...) then share one forward pass: the clean residual is
repeated once per condition and each condition's vectors go to its own batch rows through
:func:`actadd.steering` placements. The sweep engine, the capability kind, the
token-injection analysis and the diagnostics all run through :class:`PrefixBatch`.

Results equal a full hooked forward per condition up to float rounding (tested).

A backend that cannot start a forward at a layer (:attr:`actadd.runtime.backends.Backend.restarts`
is ``False``: the TransformerBridge, whose ``start_at_layer`` is missing in TransformerLens
3.9 and still runs the lower blocks in 4.x) runs each steered forward from the tokens
instead; the conditions are batched all the same.

Both forwards (the clean residuals and the steered passes) run the model's blocks through
:func:`actadd.runtime.fast.fast_path` unless ``fast=False``: SDPA attention, hook points called
only when hooked. Every hook point still fires where TransformerLens fires it, so steering
and any hooks a user attached apply; a block whose hooks the fast path cannot honour
(attention pattern or scores, ``ln1``, plain PyTorch module hooks) runs TransformerLens's
own forward for that call, and a model the fast path does not cover runs TransformerLens's
throughout. Logits agree with ``fast=False`` to float rounding (< 1e-4 on SmolLM2, tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from actadd.core.steering import OnShort, Placement, as_placement, steering
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError
from actadd.runtime.backends import Model, backend_of
from actadd.runtime.fast import forward_mode
from actadd.runtime.forward import last_logits, left_pad, residuals, typical_norm
from actadd.runtime.hooks import check_layer

__all__ = [
    "Condition",
    "Padding",
    "Positions",
    "PrefixBatch",
]

Padding = Literal["left", "by_length"]
Positions = Literal["last", "all"]
# A condition: the vectors (or placements) one set of rows is steered with; [] = unsteered.
Condition = SteeringVector | Placement | Sequence[SteeringVector | Placement | tuple] | None


@dataclass
class _Group:
    """Texts that share one forward pass: their rows in the batch, tokens and mask."""

    index: list[int]
    tokens: Tensor
    mask: Tensor | None
    resid: dict[int, Tensor] = field(default_factory=dict)


def _as_condition(cond: Condition) -> list[Placement]:
    if cond is None:
        return []
    if isinstance(cond, (SteeringVector, Placement)):
        return [as_placement(cond)]
    return [as_placement(p) for p in cond]


class PrefixBatch:
    """Texts with their clean residual streams, ready for many steered forwards.

    Args:
        model: the ``HookedTransformer``.
        token_lists: the texts' token ids, leading token first.
        padding: ``"left"`` — one left-padded batch with an attention mask;
            ``"by_length"`` — texts of equal length share a forward and nothing is padded
            (each row is then exactly a plain forward on its tokens).
        positions: ``"last"`` — logits of the final position only ([n, d_vocab]);
            ``"all"`` — logits at every position ([n, pos, d_vocab], left padding only).
        max_rows: at most this many rows per forward pass.
        fast: run the blocks through :func:`actadd.runtime.fast.fast_path` (see above);
            ``False`` is TransformerLens's own forward, for comparison.

    Attributes:
        clean: the unsteered logits of every text (computed on first use).
    """

    def __init__(
        self,
        model: Model,
        token_lists: Sequence[Sequence[int]],
        *,
        padding: Padding = "left",
        positions: Positions = "last",
        max_rows: int = 64,
        fast: bool = True,
    ) -> None:
        if not len(token_lists) or any(len(t) == 0 for t in token_lists):
            raise SteeringError("PrefixBatch needs at least one non-empty token list.")
        if padding not in ("left", "by_length") or positions not in ("last", "all"):
            raise SteeringError(
                f"padding must be 'left' or 'by_length' and positions 'last' or 'all'; got "
                f"{padding!r}, {positions!r}."
            )
        if positions == "all" and padding != "left":
            raise SteeringError("positions='all' needs padding='left' (one shape for all rows).")
        self.model, self.positions, self.max_rows = model, positions, max(1, int(max_rows))
        self.fast = fast
        # whether steered forwards restart at a layer from the clean residual there
        # (HookedTransformer), or run from the tokens (TransformerBridge on TransformerLens 3.9)
        self.restarts = backend_of(model).restarts
        self.n = len(token_lists)
        device = model.cfg.device
        if padding == "left":
            tokens, mask = left_pad(model, token_lists)
            self.groups = [_Group(list(range(self.n)), tokens, mask)]
        else:
            by_len: dict[int, list[int]] = {}
            for i, ids in enumerate(token_lists):
                by_len.setdefault(len(ids), []).append(i)
            self.groups = [
                _Group(idx, torch.tensor([list(token_lists[i]) for i in idx]).to(device), None)
                for _, idx in sorted(by_len.items())
            ]
        self._clean: Tensor | None = None

    @property
    def clean(self) -> Tensor:
        """The unsteered logits of every text (computed on first use)."""
        if self._clean is None:
            self._clean = self.logits([None])[0]
        return self._clean

    @property
    def mask(self) -> Tensor:
        """The attention mask of a left-padded batch."""
        if len(self.groups) != 1 or self.groups[0].mask is None:
            raise SteeringError("mask is defined for padding='left' only.")
        return self.groups[0].mask

    # ------------------------------------------------------------------ clean residuals

    def prefetch(self, layers: Sequence[int]) -> None:
        """Compute (once) the clean residual streams at ``layers``, one forward per group."""
        for g in self.groups:
            missing = [layer for layer in layers if layer not in g.resid]
            if missing:
                with self._blocks():
                    g.resid.update(residuals(self.model, g.tokens, missing, g.mask))

    def resid(self, layer: int) -> list[Float[Tensor, "batch pos d_model"]]:
        """The clean ``resid_pre`` at ``layer`` of each group."""
        self.prefetch([layer])
        return [g.resid[layer] for g in self.groups]

    def typical_norm(self, layer: int) -> float:
        """Typical residual norm of these texts at ``layer`` (see
        :func:`actadd.runtime.forward.typical_norm`)."""
        layer = check_layer(self.model, layer)
        self.prefetch([layer])
        return typical_norm([(g.resid[layer], g.mask) for g in self.groups])

    # ------------------------------------------------------------------ steered forwards

    def _blocks(self):
        """The context the blocks run in: the fast path, or TransformerLens's forward."""
        return forward_mode(self.model, self.fast)

    def _forward(self, x: Tensor, start: int | None, mask: Tensor | None) -> Tensor:
        kw = {} if mask is None else dict(attention_mask=mask)
        if start is not None:
            kw["start_at_layer"] = start
        if self.positions == "all":
            return self.model(x, **kw)
        return last_logits(self.model, x, **kw)

    @torch.no_grad()
    def logits(
        self, conditions: Sequence[Condition], *, on_short: OnShort = "error"
    ) -> list[Tensor]:
        """The logits of every text under each condition (a vector, a placement, a list of
        them, or ``None`` for unsteered): one tensor per condition, rows in text order.
        A placement with ``rows`` steers only those texts (indices into ``token_lists``):
        a condition may give each text its own vector.

        The forward restarts at the lowest layer any condition steers, from the clean
        residual there; conditions are batched ``max_rows // group size`` at a time.
        """
        model, n_layers = self.model, self.model.cfg.n_layers
        conds = [_as_condition(c) for c in conditions]
        layers = [p.vector.layer for c in conds for p in c]
        start = min(layers + [n_layers - 1]) if layers else None
        out: list[Tensor | None] = [None] * len(conds)
        for g in self.groups:
            rows = len(g.index)
            per = max(1, self.max_rows // rows)
            if start is None:
                with self._blocks():
                    logits = self._forward(g.tokens, None, g.mask)
                self._scatter(out, [0], logits, g)
                continue
            if self.restarts:
                base, begin = self.resid(start)[self.groups.index(g)], start
            else:  # the backend cannot start at a layer: run from the tokens
                base, begin = g.tokens, None
            for c0 in range(0, len(conds), per):
                chunk = conds[c0 : c0 + per]
                placements = [
                    p.on_rows(local)
                    for j, c in enumerate(chunk)
                    for p in c
                    if (local := self._block_rows(p, g, j))
                ]
                x = base.repeat(len(chunk), *[1] * (base.ndim - 1))
                mask = None if g.mask is None else g.mask.repeat(len(chunk), 1)
                with steering(model, placements, on_short=on_short), self._blocks():
                    logits = self._forward(x, begin, mask)
                self._scatter(out, range(c0, c0 + len(chunk)), logits, g)
        if start is None:
            return [out[0]] * len(conds)
        return out

    def _block_rows(self, p: Placement, g: _Group, j: int) -> list[int]:
        """The batch rows of block ``j`` of group ``g`` that placement ``p`` steers: all of
        them, or, when ``p.rows`` names texts, those texts' rows in this group."""
        rows = len(g.index)
        if p.rows is None:
            return list(range(j * rows, (j + 1) * rows))
        if max(p.rows) >= self.n:
            raise SteeringError(
                f"A placement names text rows {list(p.rows)}, but there are {self.n} texts."
            )
        where = {t: r for r, t in enumerate(g.index)}
        return [j * rows + where[t] for t in p.rows if t in where]

    def _scatter(self, out: list, which: Sequence[int], logits: Tensor, g: _Group) -> None:
        """Put each condition's slice of a group's ``logits`` into its rows of ``out``."""
        rows = len(g.index)
        for j, c in enumerate(which):
            if out[c] is None:
                shape = (self.n, *logits.shape[1:])
                out[c] = logits.new_empty(shape)
            out[c][g.index] = logits[j * rows : (j + 1) * rows]
