"""Contrast differences: ActAdd's ``coeff · (h_L(p+) − h_L(p−))`` from one pair of prompts.

Both prompts are tokenized with the model's leading token, made the same length by an
equalize rule (:func:`actadd.runtime.tokens.pair_token_ids`) and run in one forward pass; the
difference of their ``resid_pre`` activations is taken at every requested layer, one row per
token position. :meth:`SteeringVector.from_pair <actadd.core.vectors.SteeringVector.from_pair>`
and ``from_pair_layers`` wrap each difference in a vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from actadd.errors import SteeringError
from actadd.runtime.backends import Model
from actadd.runtime.forward import residuals
from actadd.runtime.hooks import check_layer
from actadd.runtime.tokens import pair_token_ids

__all__ = ["pair_differences"]


def pair_differences(
    model: Model,
    positive: str,
    negative: str,
    layers: Sequence[int],
    coeff: float,
    *,
    equalize: str,
    pad_token: str | int,
) -> tuple[dict[int, Float[Tensor, "pos d_model"]], dict[str, Any]]:
    """``({layer: coeff · (h_L(positive) − h_L(negative))}, provenance)`` from one forward pass.

    ``coeff`` is a checked float and ``equalize`` a resolved rule (``"right"``, ``"left"``
    or ``"truncate"``); the provenance records the prompts, both and their tokens.
    """
    layers = [check_layer(model, layer) for layer in layers]
    if not layers:
        raise SteeringError("No layers given.")
    pos_ids, neg_ids = pair_token_ids(model, positive, negative, equalize, pad_token)
    tokens = torch.tensor([pos_ids, neg_ids], device=model.cfg.device)
    acts = residuals(model, tokens, layers)
    provenance = {
        "kind": "pair",
        "positive": positive,
        "negative": negative,
        "coeff": coeff,
        "pad": equalize,
        "pad_token": pad_token if isinstance(pad_token, str) else int(pad_token),
        "tokens_positive": model.to_str_tokens(torch.tensor(pos_ids)),
        "tokens_negative": model.to_str_tokens(torch.tensor(neg_ids)),
    }
    differences = {layer: coeff * (acts[layer][0] - acts[layer][1]) for layer in layers}
    return differences, provenance
