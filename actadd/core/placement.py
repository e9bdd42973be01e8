"""Where a steering vector goes: :func:`prompt_positions` (the prompt positions an
:class:`~actadd.core.align.Align` puts a vector's rows on) and :class:`Placement` (a vector
with its alignment and the batch rows it applies to). ``Align`` itself is pure data in
:mod:`actadd.core.align`, re-exported here.

See :mod:`actadd.core.steering` for how the steering context uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Align and the alignment kinds live in the torch-free actadd.core.align (configs parse them
# without torch); they are re-exported here, where the steering code has always found them
from actadd.core import align as _align
from actadd.core.align import Align, AlignLike, OnShort
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError, Validated

__all__ = [*_align.__all__, "Placement", "as_placement", "prompt_positions"]

ALIGN_KINDS = _align.ALIGN_KINDS
PHASE_KINDS = _align.PHASE_KINDS
ONE_ROW_KINDS = _align.ONE_ROW_KINDS
AlignKind = _align.AlignKind
default_align = _align.default_align
expand_align = _align.expand_align


def prompt_positions(
    align: Align, k: int, n_prompt: int, on_short: OnShort = "error"
) -> tuple[Tensor, Tensor]:
    """Which vector rows go to which prompt positions, for a prompt of ``n_prompt`` tokens.

    Returns ``(rows, positions)``: long tensors of equal length, positions counted from the
    prompt's first (leading) token. ``on_short="clip"`` drops rows that fall outside the
    prompt instead of raising.
    """
    rows = torch.arange(k)
    if align.kind == "span":
        if k != 1:
            raise SteeringError(
                f"align={align} adds one d_model vector at each of its positions, but the "
                f"vector has {k} rows. Use v.mean() (or v.mean(skip_first=True)) or v.rows([i])."
            )
        pos = torch.arange(align.offset, max(align.offset, n_prompt - align.end))
        if len(pos) == 0:
            raise SteeringError(
                f"align={align} covers no position of a {n_prompt}-token prompt (leading token "
                "included): the span is empty."
            )
        return torch.zeros(len(pos), dtype=torch.long), pos
    if align.kind == "positions":
        pos = torch.tensor(align.positions)
        if k == 1:
            rows = torch.zeros(len(pos), dtype=torch.long)
        elif len(pos) != k:
            raise SteeringError(
                f"Align.at got {len(pos)} positions for a vector with {k} rows; give one "
                "position per row, or use a single-row vector."
            )
        pos = torch.where(pos < 0, pos + n_prompt, pos)
    elif align.kind == "back":
        pos = rows + (n_prompt - k)
    else:
        pos = rows + (align.offset if align.kind == "offset" else 0)
    inside = (pos >= 0) & (pos < n_prompt)
    if not bool(inside.all()):
        if on_short != "clip":
            raise SteeringError(
                f"Prompt has {n_prompt} tokens (leading token included) but a {k}-row vector "
                f"with align={align} needs positions {pos.tolist()}. Use a longer prompt, a "
                "shorter vector (v.rows(...)), or on_short='clip' to drop the rows that do not fit."
            )
        rows, pos = rows[inside], pos[inside]
    return rows, pos


@dataclass(frozen=True)
class Placement:
    """One vector placed in a forward pass: where its rows go (``align``; ``None``: the
    context's default, or the vector's own, :func:`~actadd.core.align.default_align`) and
    which batch rows receive it (``rows``; ``None``: every row).

    The tuples ``(vector, align)`` and ``(vector, align, rows)`` are shorthand for it.
    Sweeps batch many steering settings into one forward this way: each setting's
    placements name its own batch rows.
    """

    vector: Validated[SteeringVector]
    align: AlignLike | None = None  # parsed into an Align
    rows: Sequence[int] | None = None  # stored as a tuple

    def __post_init__(self) -> None:
        if not isinstance(self.vector, SteeringVector):
            raise SteeringError(f"Expected SteeringVector, got {type(self.vector).__name__}.")
        if self.align is not None:
            object.__setattr__(self, "align", Align.parse(self.align))
        if self.rows is not None:
            rows = tuple(int(r) for r in self.rows)
            if not rows or min(rows) < 0:
                raise SteeringError(f"rows must be non-empty batch indices >= 0, got {rows}.")
            object.__setattr__(self, "rows", rows)

    def on_rows(self, rows: Sequence[int]) -> Placement:
        """The same placement, applied to batch ``rows`` only."""
        return Placement(self.vector, self.align, tuple(rows))


def as_placement(item: SteeringVector | Placement | tuple) -> Placement:
    """A :class:`Placement` from a vector, a placement, ``(vector, align)`` or
    ``(vector, align, rows)``."""
    if isinstance(item, Placement):
        return item
    if isinstance(item, SteeringVector):
        return Placement(item)
    if isinstance(item, tuple) and len(item) in (2, 3):
        return Placement(*item)
    if isinstance(item, tuple):
        raise SteeringError(
            f"Entries are vector, (vector, align) or (vector, align, rows); "
            f"got a tuple of {len(item)}."
        )
    raise SteeringError(f"Expected SteeringVector or Placement, got {type(item).__name__}.")
