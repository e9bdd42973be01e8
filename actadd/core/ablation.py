"""Directional ablation: project a direction out of the residual stream.

``x ← x − (x · û) û`` with ``û = u / ‖u‖``, at ``resid_pre`` of the direction's layer, on the
positions its alignment names (default ``"all"``: every position, generated tokens
included, as Arditi et al. ablate a refusal direction). An :class:`Ablation` is an entry of
:func:`actadd.steering`, beside vectors, so it shares the context's position bookkeeping
(KV cache, padding, batch rows) and its cleanup:

    >>> with actadd.steering(model, [Ablation(d), v], align="all"):   # ablate, then add
    ...     model("...")

At a layer, every ablation runs first (in the order given), then the additions: so
:func:`ablate_then_add` sets each covered position's component along ``v`` to exactly
``‖v‖`` (up to float rounding), whatever it was. Two ablations at one layer project one
after the other; for directions that are not orthogonal, that is not the projection out of
their span (orthogonalize them first). Positions an ablation does not cover are left bit for
bit untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from actadd.core.placement import PHASE_KINDS, Align, AlignLike, Placement
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError, Validated

__all__ = [
    "Ablation",
    "ablate_then_add",
    "ablations",
]

# alignments that cover a run of positions, whose length an ablation must be told (`span`)
_SPAN_KINDS = ("front", "offset", "back")


@dataclass(frozen=True)
class Ablation:
    """Project ``direction`` (a one-row vector; its layer is where) out of the residual.

    ``align``: where, as for vectors (``"all"``, ``"generated[:k]"``, ``"from:<token>"``,
    ``"positions:..."``, or ``"front"``/``"offset:s"``/``"back"`` with ``span`` positions).
    ``rows``: only these batch rows (``None``: every row).
    """

    direction: Validated[SteeringVector]
    align: AlignLike = "all"  # parsed into an Align
    span: int | None = None
    rows: Sequence[int] | None = None  # stored as a tuple

    def __post_init__(self) -> None:
        d = self.direction
        if not isinstance(d, SteeringVector) or d.k != 1:
            raise SteeringError(
                "Ablation needs a one-row SteeringVector as its direction (e.g. a CAA vector, "
                f"or v.mean(skip_first=True)); got {d!r}."
            )
        if float(d.tensor.norm()) == 0:
            raise SteeringError(f"Cannot ablate {d.describe()}: it is all zeros (no direction).")
        align = Align.parse(self.align)
        object.__setattr__(self, "align", align)
        if align.kind in _SPAN_KINDS:
            span = self.span
            if isinstance(span, bool) or not isinstance(span, int) or span < 1:
                raise SteeringError(
                    f"An ablation with align={align} needs span=<number of positions> (an int "
                    f">= 1), got {span!r}; 'all', 'generated', 'from:' and 'positions:' need none."
                )
        elif self.span is not None:
            raise SteeringError(f"span is only for front/offset/back ablations, not align={align}.")
        if self.rows is not None:
            object.__setattr__(self, "rows", Placement(d, None, self.rows).rows)

    @property
    def layer(self) -> int:
        return self.direction.layer

    @property
    def positions(self) -> int:
        """Rows of the notional vector whose placement gives the covered prompt positions."""
        return self.span if self.align.kind in _SPAN_KINDS else 1

    def describe(self) -> str:
        return f"ablate {self.direction.describe()} at {self.align}"


def ablations(
    direction: SteeringVector, layers: Sequence[int], align: AlignLike = "all"
) -> list[Ablation]:
    """One :class:`Ablation` of the same direction at each of ``layers`` (``align`` must
    need no span: ``"all"``, ``"generated[:k]"``, ``"from:..."``, ``"positions:..."``)."""
    return [Ablation(direction.at_layer(layer), align) for layer in layers]


def ablate_then_add(vector: SteeringVector, align: AlignLike = "all") -> list:
    """Ablate ``vector``'s direction, then add ``vector``, at the same positions: each
    covered position's component along ``vector`` becomes exactly ``‖vector‖``.
    ``vector`` is one row; ``align`` needs no span (``"all"``, ``"generated"``, ...)."""
    if align is not None and Align.parse(align).kind not in (*PHASE_KINDS, "positions"):
        raise SteeringError(
            f"ablate_then_add takes align 'all', 'generated[:k]', 'from:<token>' or "
            f"'positions:...', got {align!r}."
        )
    return [Ablation(vector, align), Placement(vector, align)]
