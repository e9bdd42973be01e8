"""The test suite runs actadd under a runtime type checker (jaxtyping + beartype, see
pyproject.toml), so every annotation in actadd is true for every call the tests make."""

from __future__ import annotations

import jaxtyping
import pytest
import torch

from actadd import SteeringError, SteeringVector
from actadd.runtime.forward import left_pad, typical_norm


def test_annotations_are_checked_at_runtime(tiny_llama):
    with pytest.raises(jaxtyping.TypeCheckError, match="groups"):
        typical_norm("not a list of tensors")
    with pytest.raises(jaxtyping.TypeCheckError):
        left_pad(tiny_llama, 3)


def test_shapes_are_checked_too(tiny_llama):
    from actadd.runtime.forward import unembed_last

    with pytest.raises(jaxtyping.TypeCheckError, match="d_model"):
        unembed_last(tiny_llama, torch.zeros(2, 3))  # [batch, pos, d_model] needed


def test_validated_arguments_get_our_error_not_a_type_error(tiny_llama):
    """Validated[T] arguments are checked by the function itself: a wrong type gets the
    same clear ActAddError a wrong value gets."""
    with pytest.raises(SteeringError, match="real number"):
        SteeringVector.from_pair(tiny_llama, "Love", "Hate", 1, coeff="2")
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", 1)
    assert torch.equal((v * 2).tensor, (v * 2.0).tensor)  # an int is a float (PEP 484)
