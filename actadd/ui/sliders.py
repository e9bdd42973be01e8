"""Sliders that widen instead of clamping, for the playground's panel.

A value set past a slider's range (``panel.layer.value = 99``, ``playground(layer=99)``, a map
cell past the coefficient slider) widens the range instead of being clamped silently, so the
panel refuses it as typed, with one line, before any compute.
"""

from __future__ import annotations

import math

import ipywidgets as W
import traitlets

from actadd.errors import SteeringError

__all__ = ["WideFloatSlider", "WideIntSlider", "WideLogSlider", "numbers"]


class _Widening:
    """A slider that widens its range to a value set past it (``panel.layer.value = 99``,
    ``playground(layer=99)``) instead of clamping the value silently: the panel then refuses
    it with one line, before any compute. Mixed into :class:`WideIntSlider` and
    :class:`WideFloatSlider`."""

    @traitlets.validate("value")
    def _validate_value(self, proposal):
        value = proposal["value"]
        if value > self.max:
            self.max = value
        if value < self.min:
            self.min = value
        return value


class WideIntSlider(_Widening, W.IntSlider):
    """An ``IntSlider`` that widens instead of clamping (:class:`_Widening`)."""


class WideFloatSlider(_Widening, W.FloatSlider):
    """A ``FloatSlider`` that widens instead of clamping (:class:`_Widening`)."""


class WideLogSlider(W.FloatLogSlider):
    """A ``FloatLogSlider`` that widens its exponent range to a positive value set past it
    (see :class:`WideIntSlider`); 0 has no place on it (the panel refuses a log-scale
    coefficient of 0 itself)."""

    @traitlets.validate("value")
    def _validate_value(self, proposal):
        value = proposal["value"]
        if not value > 0:
            return self.base**self.min
        exponent = math.log(value, self.base)
        if exponent > self.max:
            self.max = math.ceil(exponent)
        if exponent < self.min:
            self.min = math.floor(exponent)
        return value


def numbers(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x.replace("−", "-")) for x in text.split(",") if x.strip())
    except ValueError:
        raise SteeringError(f"{what}: comma-separated numbers, got {text!r}.") from None
    if not values:
        raise SteeringError(f"{what}: give at least one number.")
    return values
