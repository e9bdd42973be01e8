"""What a steering vector says it is: a label from its provenance, for reprs, tables and files.

One rule for every vector, whatever made it (:func:`describe`):

- a pair is :func:`actadd.config.pair_label` (``Love − Hate``, U+2212 with spaces, the same
  label as the ``pair`` column of results tables) and its coefficient when it is not 1
  (``Love − Hate ×5``; relative: ``Love − Hate (0.5× resid)``);
- algebra reads as algebra: ``0.5·(Love − Hate) + (Calm − Angry)``, ``−(Love − Hate)``,
  ``mean(…)`` (``mean[1:](…)`` without the leading-token row), ``rows[…](…)``;
- a vector read from a file names the file: ``mean(Love − Hate ×5) from lh.gguf``, or
  ``direction.5 from other.gguf`` for a control vector actadd did not write;
- a ``label`` in the provenance (methods set one; :meth:`with_label`) is used as written.

A vector's size is printed against the typical residual norm at its layer; the text it is
measured on (:data:`REFERENCE_TEXT`) and its name in files (:data:`REFERENCE`) live here,
torch-free, so ``actadd vector show`` reads them without loading torch; the measurement is
:mod:`actadd.core.sizes`.
"""

from __future__ import annotations

import json
import numbers
from importlib import resources
from pathlib import Path
from typing import Any

from actadd.config import pair_label

__all__ = ["NO_RESID_NORM", "REFERENCE", "REFERENCE_TEXT", "describe"]

_DATA = json.loads((resources.files("actadd.data") / "reference_text.json").read_text("utf-8"))
#: the neutral paragraph the typical residual norm is measured on (actadd.core.sizes)
REFERENCE_TEXT: str = _DATA["text"]
#: names the yardstick in vector files (``resid_norm_reference``), so a norm measured on
#: another version of the text is recognisable (and not used)
REFERENCE = f"median ||resid_pre|| over positions >= 1 of actadd reference text v{_DATA['version']}"
#: what ``actadd vector show`` says of a vector with no recorded typical residual norm
NO_RESID_NORM = (
    "no typical residual norm recorded (vectors built from a model record it); measure it "
    "with `actadd vector show FILE --model NAME`, or in Python "
    "SteeringVector.load(FILE, model).relative_norm"
)


def describe(provenance: dict[str, Any]) -> str:
    """The label of a vector with this provenance (the module docstring's rule), no layer."""
    return _label(provenance)[0]


def _coeff(value: Any) -> str:
    return f"{value:g}" if isinstance(value, numbers.Real) else str(value)


def _wrap(part: tuple[str, bool]) -> str:
    """A term as an operand: parenthesized when it is itself a sum or a difference."""
    text, compound = part
    return f"({text})" if compound else text


def _label(p: dict[str, Any]) -> tuple[str, bool]:
    """``(label, compound)``: ``compound`` when the label has a top-level ``+`` or ``−``."""
    text, compound = _body(p)
    source = p.get("imported_from")
    if source:
        # compound: an operand reads (… from f.gguf)
        text, compound = f"{_wrap((text, compound))} from {Path(str(source)).name}", True
    return text, compound


def _body(p: dict[str, Any]) -> tuple[str, bool]:
    if not isinstance(p, dict):
        return "vector", False
    if p.get("label"):
        return str(p["label"]), False
    kind = p.get("kind")
    of = p.get("of") if isinstance(p.get("of"), dict) else {}
    sides = (p.get("positive"), p.get("negative"))
    if kind == "pair" and all(isinstance(side, str) for side in sides):
        text, coeff = pair_label(*sides), p.get("coeff", 1.0)
        if not isinstance(coeff, numbers.Real) or isinstance(coeff, bool):
            return text, True  # a record from elsewhere: no coefficient to show
        if p.get("coeff_mode") == "relative":
            text += f" ({coeff:g}× resid)"
        elif coeff != 1:
            text += f" ×{coeff:g}"
        return text, True
    if kind == "derived":
        op = p.get("op")
        if op == "scale":
            scale = p.get("scale", 1.0)
            if scale == -1:
                return f"−{_wrap(_label(of))}", False
            return f"{_coeff(scale)}·{_wrap(_label(of))}", False
        if op == "scaled_to":
            return f"{_wrap(_label(of))} at {_coeff(p.get('relative'))}× resid", False
        if op == "mean":
            name = "mean[1:]" if p.get("skip_first") else "mean"
            return f"{name}({_label(of)[0]})", False
        if op == "rows":
            return f"rows[{p.get('index')}]({_label(of)[0]})", False
        return f"{op}({_label(of)[0]})", False
    if kind in ("sum", "difference") and isinstance(p.get("terms"), list) and len(p["terms"]) == 2:
        a, b = (_label(t) for t in p["terms"])
        sign = "+" if kind == "sum" else "−"
        return f"{_wrap(a)} {sign} {_wrap(b)}", True
    if kind == "gguf" and "direction" in p:
        return f"direction.{p['direction']} from {Path(str(p.get('file', '?'))).name}", True
    return str(kind or "vector"), False
