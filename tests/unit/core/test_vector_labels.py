"""One pair label everywhere; algebra and files described as what they are."""

from __future__ import annotations

import pytest
import torch

from actadd.config import Pair, pair_label
from actadd.core.vectors import SteeringVector
from actadd.interop.gguf_read import describe_file
from tests.unit.interop.test_gguf import raw_file, rows64


@pytest.mark.parametrize(
    ("positive", "negative", "label"),
    [
        ("Love", "Hate", "Love − Hate"),
        (" weddings", "", "' weddings' − ''"),
        ("Love", " ", "Love − ' '"),
        ("I talk about weddings", "I do not", "I talk about weddings − I do not"),
        ("a−b", "it's", "'a−b' − \"it's\""),
    ],
)
def test_pair_label_is_the_one_rule(positive, negative, label):
    assert pair_label(positive, negative) == label
    assert Pair(positive, negative).name == label  # the results tables' pair column
    p = {"kind": "pair", "positive": positive, "negative": negative, "coeff": 1.0}
    assert SteeringVector(torch.ones(2, 4), 3, None, p).describe() == f"{label} @L3"


def test_algebra_describes_itself(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", 2)
    w = SteeringVector.from_pair(tiny_llama, "Calm", "Angry", 2)
    assert (0.5 * v + w).describe() == "0.5·(Love − Hate) + (Calm − Angry) @L2"
    assert (v - 2 * w).describe() == "(Love − Hate) − 2·(Calm − Angry) @L2"
    assert (-v).describe() == "−(Love − Hate) @L2"
    assert (v + w + v).describe() == "((Love − Hate) + (Calm − Angry)) + (Love − Hate) @L2"
    assert v.mean(skip_first=True).describe() == "mean[1:](Love − Hate) @L2"
    assert "sum" not in repr(0.5 * v + w) and "derived" not in repr(0.5 * v)


def test_a_gguf_vector_names_its_file_not_derived(tiny_llama, tmp_path):
    ours = SteeringVector.from_pair(tiny_llama, "Love", "Hate", 2, 5).mean(skip_first=True)
    back = SteeringVector.from_gguf(ours.to_gguf(tmp_path / "lh.gguf"))
    assert repr(back).startswith("SteeringVector(mean[1:](Love − Hate ×5) from lh.gguf @L2, 1 row")
    theirs = raw_file(tmp_path / "theirs.gguf", {"direction.3": rows64()})
    vec = SteeringVector.from_gguf(theirs)
    assert vec.describe() == "direction.3 from theirs.gguf @L4" and "derived" not in repr(vec)
    assert vec.resid_norm is None and "× resid" not in repr(vec)
    measured = SteeringVector.from_gguf(theirs, tiny_llama)  # with the model: its norm, measured
    assert measured.relative_norm is not None
    text = describe_file(theirs)
    assert "× resid ?: no typical residual norm recorded" in text and "--model NAME" in text
