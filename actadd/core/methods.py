"""Steering vectors from many contrast pairs: mean difference (CAA) and PCA (repeng).

ActAdd takes one pair and keeps every position. The dataset methods reduce each prompt of
many pairs to one residual vector at ``resid_pre`` ``L`` (``position``):

- ``"last"``: the prompt's last token (CAA, repeng, llama.cpp's ``cvector-generator``);
- ``"mean"``: the mean over the prompt's tokens after the leading token (the leading token is
  the attention sink and the same in both prompts; a prompt with no other token uses it).

Each prompt is tokenized on its own with the model's leading token; there is no padding of
one side to the other's length, so the two prompts of a pair may differ in length.
With ``h⁺_i``, ``h⁻_i`` the vectors of pair ``i`` and ``d_i = h⁺_i − h⁻_i``:

- ``caa``: ``coeff · mean_i d_i`` (Rimsky et al.'s CAA; llama.cpp ``--method mean``);
- ``pca_diff`` (repeng): the first principal component of the ``d_i`` (centred, as
  scikit-learn's PCA centres), unit norm times ``coeff``;
- ``pca_center`` (repeng): the first principal component of the ``2n`` vectors
  ``h±_i − (h⁺_i + h⁻_i)/2`` (each pair centred on its midpoint), unit norm times ``coeff``.

**Degenerate pairs.** A principal component needs spread: when the vectors it is taken of
(the centred ``d_i`` for ``pca_diff``, the ``±d_i/2`` for ``pca_center``) spread by less than
``PCA_RTOL`` (1e-4) times the activations' RMS norm, any direction is "first" (pairs whose
sides are identical, or for ``pca_diff`` pairs that all differ by the same vector), so the
PCA methods refuse them with one line where CAA would give its (zero or common) difference.

**Sign of a PCA direction** (a principal component has none of its own): as repeng, the
direction points so that ``h⁺_i`` projects higher than ``h⁻_i`` in more pairs than the other
way round; a tie is broken by the mean difference (``mean_i d_i · u > 0``). So a positive
coefficient always steers towards the positive side.

Every result is an ordinary one-row :class:`~actadd.core.vectors.SteeringVector` per layer,
``{layer: vector}`` (as :meth:`SteeringVector.from_pair_layers` returns): steer with
``align="all"``, save with ``.save()``, export with
:func:`actadd.interop.gguf.write_control_vector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from actadd.config import Pair, parse_layers, parse_pairs
from actadd.core.datasets import load_pairs
from actadd.core.sizes import check_coeff as _check_coeff
from actadd.core.sizes import check_coeff_mode, reference_norms
from actadd.core.vectors import SteeringVector
from actadd.errors import ConfigError, SteeringError, Validated
from actadd.runtime.backends import Model
from actadd.runtime.forward import left_pad, real_positions, residuals
from actadd.runtime.hooks import check_layer
from actadd.runtime.tokens import encode

__all__ = [
    "DATASET_METHODS",
    "PCA_RTOL",
    "POSITIONS",
    "PairsLike",
    "Position",
    "caa",
    "dataset_pairs",
    "dataset_vectors",
    "pair_activations",
    "pca",
    "pca_direction",
    "with_norm",
]

Position = Literal["last", "mean"]
POSITIONS: tuple[str, ...] = ("last", "mean")
DATASET_METHODS: tuple[str, ...] = ("caa", "pca_diff", "pca_center")
# a PCA direction needs a first component this large, relative to the activations' RMS norm
PCA_RTOL = 1e-4
PairsLike = str | Sequence[Pair | Sequence[str] | dict]


def dataset_pairs(pairs: Validated[PairsLike]) -> tuple[Pair, ...]:
    """Pairs from a dataset source (``"builtin:<name>"`` or a ``.jsonl``/``.csv`` path) or a
    list of :class:`Pair` / ``[positive, negative]`` / tables."""
    if isinstance(pairs, str) or hasattr(pairs, "__fspath__"):
        return load_pairs(pairs)
    return parse_pairs(pairs, "pairs")


def _layers(model: Model, layers: Validated[int | str | Sequence[int]]) -> list[int]:
    if isinstance(layers, int) and not isinstance(layers, bool):
        return [check_layer(model, layers)]
    try:
        chosen = parse_layers(layers, model.cfg.n_layers)
    except ConfigError as exc:
        raise SteeringError(str(exc)) from None
    if not chosen:
        raise SteeringError(f"layers {layers!r} select no layer.")
    return [check_layer(model, layer) for layer in chosen]


@torch.no_grad()
def pair_activations(
    model: Model,
    pairs: Validated[PairsLike],
    layers: Validated[int | str | Sequence[int]],
    *,
    position: Validated[Position] = "last",
    batch_size: int = 32,
) -> dict[int, tuple[Float[Tensor, "n d_model"], Float[Tensor, "n d_model"]]]:
    """``{layer: (h_pos, h_neg)}``: one ``resid_pre`` vector per prompt (see the module
    docstring for ``position``), row ``i`` from pair ``i``."""
    if position not in POSITIONS:
        raise SteeringError(f"position {position!r} unknown; allowed: {', '.join(POSITIONS)}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SteeringError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    pairs = dataset_pairs(pairs)
    layers = _layers(model, layers)
    texts = [t for p in pairs for t in (p.positive, p.negative)]  # pos, neg, pos, neg, ...
    ids = [encode(model, t, prepend_bos=True, truncate=False) for t in texts]
    longest = max(len(t) for t in ids)
    if longest > model.cfg.n_ctx:
        raise SteeringError(
            f"A pair prompt is {longest} tokens, past the model's context of "
            f"{model.cfg.n_ctx}: shorten it."
        )
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(ids), batch_size):
        tokens, mask = left_pad(model, ids[start : start + batch_size])
        acts = residuals(model, tokens, layers, attention_mask=mask)
        if position == "mean":
            keep = real_positions(mask, skip_leading=True)
            keep[keep.sum(-1) == 0] = real_positions(mask, skip_leading=False)[keep.sum(-1) == 0]
            weights = (keep / keep.sum(-1, keepdim=True)).to(acts[layers[0]].dtype)
        for layer in layers:
            h = acts[layer]
            if position == "last":
                out[layer].append(h[:, -1])  # left-padded: the last column is real
            else:
                out[layer].append(torch.einsum("bp,bpd->bd", weights.to(h.device), h))
    stacked = {layer: torch.cat(chunks) for layer, chunks in out.items()}
    return {layer: (h[0::2], h[1::2]) for layer, h in stacked.items()}


def pca_direction(
    h_pos: Float[Tensor, "n d_model"],
    h_neg: Float[Tensor, "n d_model"],
    method: str = "pca_diff",
) -> Float[Tensor, " d_model"]:
    """The unit first principal direction of a method (``"pca_diff"`` or ``"pca_center"``),
    signed as the module docstring says. Computed in float64."""
    if method not in ("pca_diff", "pca_center"):
        raise SteeringError(f"PCA method {method!r} unknown; allowed: pca_diff, pca_center.")
    if h_pos.shape != h_neg.shape or h_pos.ndim != 2:
        raise SteeringError(
            f"h_pos and h_neg must both be [n, d_model], got {tuple(h_pos.shape)} and "
            f"{tuple(h_neg.shape)}."
        )
    pos, neg = h_pos.double(), h_neg.double()
    diff = pos - neg
    if method == "pca_diff":
        if len(diff) < 2:
            raise SteeringError(
                "pca_diff needs at least 2 pairs (it is the variance of the differences "
                "around their mean); use caa or pca_center for one pair."
            )
        train = diff
    else:
        mid = (pos + neg) / 2
        train = torch.cat([pos - mid, neg - mid])
    train = train - train.mean(0)
    svd = torch.linalg.svd(train, full_matrices=False)
    spread = float(svd.S[0]) / len(train) ** 0.5  # RMS of the data along the component
    scale = float(torch.cat([pos, neg]).norm(dim=-1).square().mean().sqrt())
    if not spread > PCA_RTOL * scale:
        what, why = (
            ("differences barely vary", "are identical or all differ by the same vector")
            if method == "pca_diff"
            else ("two sides barely differ", "are identical")
        )
        raise SteeringError(
            f"{method} has no first principal direction: the pairs' {what} (spread "
            f"{spread:.3g}, not above {PCA_RTOL:g} × the activations' RMS norm {scale:.3g}), "
            f"so any direction would do; their sides {why}. Use caa, or pairs that differ."
        )
    u = svd.Vh[0]
    proj = diff @ u  # h⁺·u − h⁻·u per pair
    votes = int((proj > 0).sum()) - int((proj < 0).sum())
    if votes < 0 or (votes == 0 and float(diff.mean(0) @ u) < 0):
        u = -u
    return u.to(h_pos.dtype)


def dataset_vectors(
    model: Model,
    pairs: Validated[PairsLike],
    layers: Validated[int | str | Sequence[int]],
    method: Validated[str] = "caa",
    *,
    position: Validated[Position] = "last",
    coeff: Validated[float] = 1.0,
    batch_size: int = 32,
    coeff_mode: Validated[str] = "absolute",
) -> dict[int, SteeringVector]:
    """``{layer: vector}``: a one-row vector per layer by ``method`` (``"caa"``,
    ``"pca_diff"``, ``"pca_center"``) over ``pairs`` (a dataset source or a list).

    Each records the typical residual norm at its layer (``resid_norm``,
    :mod:`actadd.core.sizes`). ``coeff_mode="relative"``: ``coeff`` is the vector's norm as
    a multiple of that norm (the direction is the method's, the size is ``coeff ×`` it).
    """
    if method not in DATASET_METHODS:
        raise SteeringError(
            f"dataset method {method!r} unknown; allowed: {', '.join(DATASET_METHODS)}."
        )
    coeff = _check_coeff(coeff)
    relative = check_coeff_mode(coeff_mode) == "relative"
    label = pairs if isinstance(pairs, str) else None
    pairs = dataset_pairs(pairs)
    acts = pair_activations(model, pairs, layers, position=position, batch_size=batch_size)
    norms = reference_norms(model, required=relative)
    size = f"({coeff:g}× resid)" if relative else f"×{coeff:g}"
    provenance = {
        "kind": method,
        "position": position,
        "coeff": coeff,
        **({"coeff_mode": "relative"} if relative else {}),
        "n_pairs": len(pairs),
        "dataset": label or f"{len(pairs)} pairs, first {pairs[0].name}",
    }
    out = {}
    for layer, (h_pos, h_neg) in acts.items():
        if method == "caa":
            row = (h_pos - h_neg).mean(0)
        else:
            try:
                row = pca_direction(h_pos, h_neg, method)
            except SteeringError as exc:
                raise SteeringError(f"At resid_pre {layer}: {exc}") from None
        name, norm = model.cfg.model_name, norms.get(layer)
        if relative:  # the direction's own norm is irrelevant: scaled to coeff × resid
            row = SteeringVector(row, layer, name, resid_norm=norm).scaled_to(coeff).tensor[0]
        else:
            row = coeff * row
        vec = SteeringVector(row, layer, name, dict(provenance), norm)
        out[layer] = vec.with_label(f"{method}({provenance['dataset']}, {position}) {size}")
    return out


def caa(model: Model, pairs: PairsLike, layers, **kwargs) -> dict[int, SteeringVector]:
    """Mean difference over pairs (CAA): :func:`dataset_vectors` with ``method="caa"``."""
    return dataset_vectors(model, pairs, layers, "caa", **kwargs)


def pca(
    model: Model, pairs: PairsLike, layers, method: str = "pca_diff", **kwargs
) -> dict[int, SteeringVector]:
    """repeng's PCA directions (``"pca_diff"`` or ``"pca_center"``), unit norm × ``coeff``."""
    if method not in ("pca_diff", "pca_center"):
        raise SteeringError(f"PCA method {method!r} unknown; allowed: pca_diff, pca_center.")
    return dataset_vectors(model, pairs, layers, method, **kwargs)


def with_norm(vector: SteeringVector, norm: Validated[float]) -> SteeringVector:
    """``vector`` rescaled so that its mean row norm (rows after the leading-token row, for a
    multi-row vector) is ``norm``: how methods are compared at matched norms."""
    norm = _check_coeff(norm)
    rows = vector.tensor[1:] if vector.k > 1 else vector.tensor
    current = float(rows.norm(dim=-1).mean())
    if current == 0:
        raise SteeringError(f"{vector.describe()} is all zeros: it has no norm to rescale.")
    return vector * (norm / current)
