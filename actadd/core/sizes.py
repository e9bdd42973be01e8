"""Sizes that mean something: a vector's norm relative to the residual stream at its layer.

A coefficient of 5 is a small push at one layer and a sledgehammer at another (the residual
stream grows through the layers, and methods make vectors of very different norms), so
actadd measures every vector against one yardstick per (model, layer):

**The typical residual norm** at ``resid_pre`` layer ``L`` is the median, over every
position after the leading token, of ``‖h_L‖`` (the L2 norm over ``d_model`` of the
unsteered residual stream entering block ``L``) on :data:`REFERENCE_TEXT`, a short neutral
paragraph shipped in ``actadd/data/reference_text.json``, tokenized with the model's leading
token (truncated to the context). The leading token is left out because it is a
massive-activation sink (its norm is many times the others'); the median, because a few
other sink positions would pull a mean. :func:`typical_resid_norm` computes it for every
layer in one forward pass and caches it per model object.

**A vector's norm** (:meth:`SteeringVector.norm <actadd.core.vectors.SteeringVector.norm>`)
is the root mean square of its row norms over the rows that steer: its one row, or for a
per-position vector the rows after row 0 (the leading-token row, ≈ 0 for a pair).
``relative_norm`` is that norm over the typical residual norm.

**Relative coefficients** (``coeff_mode = "relative"``): a coefficient ``r`` scales the
vector so that its norm is ``r ×`` the typical residual norm at its layer, whatever it was
before; ``"absolute"`` (the default) multiplies the vector by the coefficient, as the paper
does. See :data:`COEFF_MODES`.
"""

from __future__ import annotations

import math
import numbers
import statistics
import weakref
from typing import Any

import torch
from torch import Tensor

from actadd.config import COEFF_MODES, coeff_mode
from actadd.core.vector_labels import REFERENCE, REFERENCE_TEXT
from actadd.errors import ConfigError, SteeringError, Validated
from actadd.runtime.backends import Model
from actadd.runtime.forward import residuals
from actadd.runtime.hooks import check_layer
from actadd.runtime.tokens import encode

__all__ = [
    "COEFF_MODES",
    "check_coeff",
    "is_scalar",
    "reference_norms",
    "REFERENCE",
    "REFERENCE_TEXT",
    "check_coeff_mode",
    "typical_resid_norm",
    "typical_resid_norms",
]

_CACHE: weakref.WeakKeyDictionary[Model, dict[int, float]] = weakref.WeakKeyDictionary()


def check_coeff_mode(mode: object, where: str = "coeff_mode") -> str:
    """``mode`` if it is one of :data:`COEFF_MODES`; else one :class:`SteeringError` line
    listing them (:func:`actadd.config.coeff_mode` for configs)."""
    try:
        return coeff_mode(mode, where)
    except ConfigError as exc:
        raise SteeringError(str(exc)) from None


@torch.no_grad()
def typical_resid_norms(model: Model) -> dict[int, float]:
    """``{layer: typical residual norm}`` for every ``resid_pre`` layer ``0..n_layers`` of
    ``model`` (see the module docstring), from one forward pass, cached per model object."""
    cached = _CACHE.get(model)
    if cached is None:
        if vars(model).get("forward") is not None:  # actadd.steering patches it while active
            raise SteeringError(
                f"The typical residual norm of {model.cfg.model_name} is measured unsteered: "
                "call actadd.core.sizes.typical_resid_norms(model) (or build the vector) "
                "outside the steering context."
            )
        ids = encode(model, REFERENCE_TEXT, prepend_bos=True, truncate=True)
        if len(ids) < 2:
            raise SteeringError(
                f"{model.cfg.model_name} tokenizes the reference text to one token."
            )
        layers = list(range(model.cfg.n_layers + 1))
        tokens = torch.tensor([ids], device=model.cfg.device)
        acts = residuals(model, tokens, layers)
        cached = {
            layer: statistics.median(a[0, 1:].double().norm(dim=-1).tolist())
            for layer, a in acts.items()
        }
        _CACHE[model] = cached
    return dict(cached)


def typical_resid_norm(model: Model, layer: int) -> float:
    """The typical residual norm of ``model`` at ``resid_pre`` ``layer``: the median of
    ``‖h_layer‖`` over positions ≥ 1 of :data:`REFERENCE_TEXT` (module docstring)."""
    return typical_resid_norms(model)[check_layer(model, layer)]


def reference_norms(model: Model, *, required: bool = False) -> dict[int, float]:
    """:func:`typical_resid_norms`, or ``{}`` (nothing recorded) where it cannot be measured
    now (inside a steering context, nothing cached yet) unless ``required``."""
    try:
        return typical_resid_norms(model)
    except SteeringError:
        if required:
            raise
        return {}


def is_scalar(x: Any) -> bool:
    """A single number: Python or numpy scalars (bools included) or a one-element tensor."""
    if isinstance(x, Tensor):
        return x.numel() == 1
    if isinstance(x, numbers.Number):  # bool is an int: it gets here and is refused later
        return True
    return type(x).__module__ == "numpy" and getattr(x, "ndim", None) == 0


def check_coeff(coeff: Validated[float]) -> float:
    """A coefficient or scale as a float: any finite real number, Python or numpy.

    ``5``, ``0.5``, ``np.int64(3)``, ``np.float32(0.5)`` and one-element tensors are
    accepted; bools, strings, complex and non-finite numbers are refused with one message.
    """
    value = coeff
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    elif type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalars and 0-d arrays -> Python bool/int/float/complex
    try:
        real = not isinstance(value, bool) and isinstance(value, numbers.Real)
        value = float(value) if real else math.nan
    except OverflowError:  # an int beyond float range
        value = math.nan
    if not math.isfinite(value):
        raise SteeringError(
            f"coefficient must be a finite real number (int or float, numpy scalars "
            f"included; not a bool), got {coeff!r}."
        )
    return value
