"""Claims shared by the paper's sweep kinds: arm A against arm B in every cell.

:func:`paired_cell_claims` makes one exploratory claim per (layer, coefficient) cell of a
sweep's tidy table, comparing two arms of the cell on the same (prompt, sample) seeds; the
``alignment`` kind compares two alignments with it, the ``failures`` kind two pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from actadd.studies.sweep.kind import _experiment, _pad_tag

__all__ = ["paired_cell_claims"]


def paired_cell_claims(
    run,
    df: pd.DataFrame,
    metric: str,
    cells: Iterable[dict[str, Any]],
    arms: tuple[dict[str, Any], dict[str, Any]],
    claim: Callable,
    *,
    id: Callable[[dict[str, Any]], str],
    statement: Callable[[dict[str, Any], str], str],
    **kw,
) -> list:
    """One exploratory ``claim`` per cell: arm A against arm B of ``metric``, paired on the
    same seeds (:class:`actadd.lab.claims.Paired`).

    ``cells`` are dicts of column values with at least ``layer``, ``coeff`` and ``pad`` (the
    pair-length rule: a cell is one rule); ``arms`` are the extra column values of A and B
    (``{"align": "front"}``, ``{"pair": "love_hate"}``). A cell where either arm has no rows
    is left out. ``id(cell)`` and ``statement(cell, where)`` (``where``: the cell's label,
    ``"L2, c = 4"``, plus its rule where the sweep has several) name the claim; ``kw``
    (``family``, ``margin``, ...) go to ``claim``."""
    from actadd.lab.claims import Paired, arm, cell_label

    out = []
    for cell in cells:
        a, b = (arm(df, metric, **side, **cell) for side in arms)
        if a.empty or b.empty:
            continue
        id_tag, label_tag = _pad_tag(run.config, cell.get("pad", ""))
        where = cell_label(int(cell["layer"]), float(cell["coeff"])) + label_tag
        out.append(
            claim(
                Paired.join(a, b),
                confirmatory=False,
                experiment=_experiment(run),
                id=id(cell) + id_tag,
                statement=statement(cell, where),
                **kw,
            )
        )
    return out
