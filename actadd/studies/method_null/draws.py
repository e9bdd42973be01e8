"""The null of the ``method_null`` kind: random directions matched to an arm in norm per row
and in KL on neutral text.

A draw for an arm of ``k`` rows at layer ``L`` (:func:`draw_rows`):

1. each row ``z @ X_c`` with ``z ~ N(0, I_n)`` and ``X_c`` the centred residual rows at ``L``
   of the prompts (positions after the leading token) over ``sqrt(n − 1)``: exactly
   ``N(0, Σ̂)``, the residual stream's own distribution, drawn from a seeded generator;
2. each row rescaled to the norm of the arm's row at the same position (the leading-token
   row of a front ActAdd vector is ~0, so the draw's is too);
3. the whole draw multiplied by one scale ``s`` (:func:`match_kl`) so that its mean
   next-token KL over the neutral texts equals the arm's within ``rtol``: a secant search
   on ``log s`` against ``log KL``, kept inside the bracket found so far (bisection when a
   step leaves it), batched over the draws still unmatched. After step 3 the draw keeps the
   arm's row-norm *profile*; its overall norm is ``s ×`` the arm's (``s`` is recorded).

So a draw moves the model off its course on neutral text exactly as much as the arm does,
and sits at the same positions with the same relative row sizes: what is left to tell them
apart is the direction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from actadd.core.generation import sample_seed
from actadd.errors import SteeringError

__all__ = ["draw_rows", "match_kl", "residual_basis"]


def residual_basis(acts: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_model"]:
    """Residual rows centred and divided by ``sqrt(n − 1)`` (float64): ``z @ basis`` with
    ``z ~ N(0, I_n)`` is ``N(0, Σ̂)`` of the rows."""
    x = acts.detach().double().cpu()
    if x.ndim != 2 or x.shape[0] < 2:
        raise SteeringError(f"the residual null needs >= 2 rows, got shape {tuple(x.shape)}.")
    return (x - x.mean(0)) / (x.shape[0] - 1) ** 0.5


def draw_rows(
    basis: Float[Tensor, "n d_model"],
    row_norms: Float[Tensor, " k"],
    seed: int,
    layer: int,
    draw: int,
) -> Float[Tensor, "k d_model"]:
    """Draw ``draw`` of the null at ``layer``: ``k`` rows from ``N(0, Σ̂)`` (``basis``:
    :func:`residual_basis`), each rescaled to ``row_norms[i]`` (float64). The generator is
    seeded from ``(seed, layer, draw)`` alone, so every arm at a layer with the same number
    of rows gets the same directions (common random numbers); a row whose norm is ~0 stays 0."""
    g = torch.Generator().manual_seed(sample_seed(seed, layer, draw))
    k = len(row_norms)
    z = torch.randn((k, basis.shape[0]), generator=g, dtype=torch.float64)
    rows = z @ basis
    own = rows.norm(dim=-1, keepdim=True)
    want = torch.as_tensor(row_norms, dtype=torch.float64).reshape(k, 1)
    return torch.where(own > 0, rows * (want / own.clamp_min(1e-300)), torch.zeros_like(rows))


def match_kl(
    kl_of: Callable[[Sequence[int], np.ndarray], np.ndarray],
    n: int,
    target: float,
    *,
    rtol: float = 0.05,
    max_iter: int = 12,
    start: float = 1.0,
) -> dict[str, np.ndarray]:
    """The scales ``s_i`` at which ``n`` draws reach the KL ``target`` within ``rtol``.

    ``kl_of(indices, scales)`` returns the KL of draws ``indices`` at ``scales`` (one batch
    of forwards). KL grows with the scale (it is ~ quadratic near 0): each draw starts at
    ``s = start`` (1: norm-matched; a caller may pass the typical scale of earlier draws of
    the same arm, which only saves iterations), steps by the secant of ``log KL`` against
    ``log s`` (slope 2 at the first step), and keeps a bracket of scales below and above
    the target; a step that leaves the bracket is replaced by its geometric midpoint, and
    no step changes ``s`` by more than 8×. Returns ``scale``, ``kl`` (at that scale),
    ``converged`` (within ``rtol``) and ``iterations`` (forwards per draw), arrays of
    length ``n``.
    """
    if not target > 0:
        raise SteeringError(f"match_kl needs a positive target KL, got {target!r}.")
    log_t = np.log(target)
    if not start > 0:
        raise SteeringError(f"match_kl needs a positive start scale, got {start!r}.")
    x = np.full(n, np.log(start))  # log s, the next scale to measure
    mx = np.zeros(n)  # log s last measured (y is the log KL there)
    y = np.full(n, np.nan)  # log KL at x
    prev_x, prev_y = np.full(n, np.nan), np.full(n, np.nan)
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    done = np.zeros(n, bool)
    iters = np.zeros(n, int)
    todo = np.arange(n)
    for _ in range(max_iter):
        if not len(todo):
            break
        kl = np.asarray(kl_of(todo.tolist(), np.exp(x[todo])), float)
        iters[todo] += 1
        prev_x[todo], prev_y[todo] = mx[todo], y[todo]
        mx[todo] = x[todo]
        y[todo] = np.log(np.maximum(kl, 1e-30))
        done[todo] = np.abs(kl / target - 1) <= rtol
        below = y < log_t
        lo = np.where(below & ~done, np.maximum(lo, x), lo)
        hi = np.where(~below & ~done, np.minimum(hi, x), hi)
        todo = np.flatnonzero(~done)
        for i in todo:
            slope = 2.0
            if np.isfinite(prev_y[i]) and prev_x[i] != mx[i]:
                slope = (y[i] - prev_y[i]) / (mx[i] - prev_x[i])
            if not np.isfinite(slope) or slope <= 0.05:
                slope = 2.0
            step = float(np.clip((log_t - y[i]) / slope, -np.log(8), np.log(8)))
            new = mx[i] + step
            if not lo[i] < new < hi[i] and np.isfinite(lo[i] + hi[i]):
                new = (lo[i] + hi[i]) / 2
            x[i] = new
    # the last measured point of each draw (a draw not converged keeps its last try)
    return dict(scale=np.exp(mx), kl=np.exp(y), converged=done, iterations=iters)
