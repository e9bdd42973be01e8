"""What a steering context takes, checked: :data:`Steerable` and :func:`resolve_steerable`.

:func:`actadd.steering` takes a :class:`~actadd.core.vectors.SteeringVector`, a
:class:`~actadd.core.placement.Placement` (or its tuple shorthand ``(vector, align)`` /
``(vector, align, rows)``), an :class:`~actadd.core.ablation.Ablation`, or a list of them.
:func:`resolve_steerable` turns that into placements with their alignment resolved and the
ablations apart, each checked against the model before anything is computed.
"""

from __future__ import annotations

from collections.abc import Sequence

from actadd.core.ablation import Ablation
from actadd.core.placement import (
    ONE_ROW_KINDS,
    Align,
    AlignLike,
    Placement,
    as_placement,
    default_align,
)
from actadd.core.vectors import SteeringVector, check_compatible
from actadd.errors import SteeringError, Validated
from actadd.runtime.backends import Model

__all__ = ["Steerable", "resolve_steerable"]

# what a steering context takes: vectors, placements (or their tuple shorthand), ablations
Steerable = (
    SteeringVector | Placement | Ablation | Sequence[SteeringVector | Placement | Ablation | tuple]
)


def resolve_steerable(
    model: Model,
    vectors: Validated[Steerable],
    align: Validated[AlignLike | None],
    *,
    allow_other_model: bool,
) -> tuple[list[Placement], list[Ablation]]:
    """``(placements, ablations)``: every placement with its alignment resolved (``align``
    is the default; ``None``: each vector's own, :func:`~actadd.core.align.default_align`),
    ablations apart (they run first), all checked against ``model``."""
    default = None if align is None else Align.parse(align)
    single = (SteeringVector, Placement, Ablation)
    if not isinstance(vectors, (*single, Sequence)) or isinstance(vectors, (str, bytes)):
        hint = " (for a {layer: vector} dict, pass list(d.values()))"
        hint = hint if isinstance(vectors, dict) else ""
        raise SteeringError(
            "steering takes a SteeringVector, a Placement, an Ablation, or a list of them "
            f"(items may be (vector, align) tuples); got {type(vectors).__name__}{hint}."
        )
    items = [vectors] if isinstance(vectors, single) else list(vectors)
    entries: list[Placement] = []
    ablations: list[Ablation] = []
    for item in items:
        if isinstance(item, Ablation):
            check_compatible(item.direction, model, allow_other_model=allow_other_model)
            ablations.append(item)
            continue
        p = as_placement(item)
        vec, al, rows = p.vector, p.align or default or default_align(p.vector.k), p.rows
        check_compatible(vec, model, allow_other_model=allow_other_model)
        if al.kind in ONE_ROW_KINDS and vec.k != 1:
            raise SteeringError(
                f"align={al} adds one d_model vector at each of its positions, but "
                f"{vec.describe()} has {vec.k} rows. Use v.mean() (or v.mean(skip_first=True)"
                ") or v.rows([i])."
            )
        entries.append(Placement(vec, al, rows))
    return entries, ablations
