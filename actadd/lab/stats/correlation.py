"""Correlations: Pearson along the last dimension of tensors, and Spearman's rank
correlation. Pure functions.

- :func:`pearson` — Pearson correlation along the last dimension of two tensors;
- :func:`ranks` / :func:`spearman` — average ranks and the Spearman rank correlation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["pearson", "ranks", "spearman"]


def pearson(a: Float[Tensor, "... n"], b: Float[Tensor, "... n"]) -> Float[Tensor, "..."]:
    """Pearson correlation of ``a`` and ``b`` along the last dimension, in float64.

    Broadcasts over the leading dimensions (e.g. one correlation per batch row of two
    ``[batch, d_vocab]`` log-prob shifts). NaN where either side is constant (zero variance).
    """
    a = a.double() - a.double().mean(-1, keepdim=True)
    b = b.double() - b.double().mean(-1, keepdim=True)
    den = a.norm(dim=-1) * b.norm(dim=-1)
    num = (a * b).sum(-1)
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.full_like(num, float("nan")))


def ranks(x: np.ndarray | Sequence[float]) -> Float[Tensor, " n"]:
    """Average ranks of ``x``, from 1 (ties share their mean rank), as a float64 tensor."""
    return torch.tensor(pd.Series(x).rank(method="average").to_numpy(float, copy=True))


def spearman(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Spearman rank correlation of ``x`` and ``y``: :func:`pearson` of their average
    :func:`ranks`. NaN with fewer than two values or when either side is constant."""
    if len(x) <= 1:
        return float("nan")
    return float(pearson(ranks(x), ranks(y)))
