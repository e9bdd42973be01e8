"""SteeringVector: construction from pairs, pair alignment, algebra, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from actadd import SteeringError, SteeringVector, VectorFileError
from actadd.runtime.hooks import resid_pre


def resid(model, text, layer):
    _, cache = model.run_with_cache(model.to_tokens(text), names_filter=resid_pre(model, layer))
    return cache[resid_pre(model, layer)][0]


def test_from_pair_is_coeff_times_residual_difference(tiny_model):
    v = SteeringVector.from_pair(tiny_model, "Love", "Hate", layer=2, coeff=5)
    expected = 5 * (resid(tiny_model, "Love", 2) - resid(tiny_model, "Hate", 2))
    torch.testing.assert_close(v.tensor, expected, rtol=1e-5, atol=1e-4)
    assert v.k == 5 and v.d_model == tiny_model.cfg.d_model
    assert v.layer == 2 and v.model_name == tiny_model.cfg.model_name
    assert v.provenance["positive"] == "Love" and v.provenance["coeff"] == 5.0
    assert torch.equal(v.norms()[0], torch.tensor(0.0))  # shared leading token


def test_right_padding_uses_the_space_token_after_the_shorter_prompt(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Anger", "Calm", layer=1)
    assert v.provenance["tokens_negative"] == ["<|bos|>", "C", "a", "l", "m", " "]
    assert v.provenance["tokens_positive"][:2] == ["<|bos|>", "A"]
    padded = tiny_llama.to_tokens("Calm ")
    expected = (
        resid(tiny_llama, "Anger", 1)
        - tiny_llama.run_with_cache(padded, names_filter="blocks.1.hook_resid_pre")[1][
            "blocks.1.hook_resid_pre"
        ][0]
    )
    torch.testing.assert_close(v.tensor, expected, rtol=1e-5, atol=1e-4)


def test_left_padding_goes_after_the_leading_token(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Anger", "Calm", layer=1, equalize="left")
    assert v.provenance["tokens_negative"] == ["<|bos|>", " ", "C", "a", "l", "m"]


def test_truncate_and_custom_pad_token(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Anger", "Calm", layer=1, equalize="truncate")
    assert v.k == 5
    w = SteeringVector.from_pair(tiny_llama, "Anger", "Calm", layer=1, pad_token=".")
    assert w.provenance["tokens_negative"][-1] == "."
    with pytest.raises(SteeringError, match="exactly one"):
        SteeringVector.from_pair(tiny_llama, "Anger", "Calm", layer=1, pad_token="ab")
    with pytest.raises(SteeringError, match="pair-length rule"):
        SteeringVector.from_pair(tiny_llama, "Anger", "Calm", layer=1, equalize="middle")


def test_old_pad_keyword_still_works_with_a_deprecation_warning(tiny_llama):
    new = SteeringVector.from_pair(tiny_llama, "Anger", "Calm", layer=1, equalize="left")
    with pytest.warns(DeprecationWarning, match="equalize="):
        old = SteeringVector.from_pair(tiny_llama, "Anger", "Calm", layer=1, pad="left")
    assert torch.equal(old.tensor, new.tensor)
    assert old.provenance["tokens_negative"] == new.provenance["tokens_negative"]


def test_one_sided_vector_from_prompt(tiny_llama):
    v = SteeringVector.from_prompt(tiny_llama, " wed", layer=1)
    assert v.provenance["negative"] == "" and v.k == 5
    assert v.provenance["tokens_negative"] == ["<|bos|>"] + [" "] * 4


@pytest.mark.parametrize("coeff", [float("nan"), float("inf"), -math.inf, "2", None])
def test_bad_coefficient_is_rejected(tiny_llama, coeff):
    with pytest.raises(SteeringError, match="coefficient"):
        SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=coeff)


REAL_SCALARS = [
    np.int64(3),
    np.float32(0.5),
    np.float64(-2.0),
    np.int8(-2),
    np.array(1.5),
    torch.tensor(2.0),
    3,
    0.25,
]
REFUSED_SCALARS = [
    True,
    np.bool_(False),
    torch.tensor(True),
    float("nan"),
    np.float32("inf"),
    np.float64("-inf"),
    torch.tensor(float("nan")),
    10**400,
    1 + 2j,
]


@pytest.mark.parametrize("x", REAL_SCALARS, ids=lambda x: repr(x)[:20])
def test_numpy_and_python_reals_are_accepted_alike_as_coeff_and_scale(tiny_llama, x):
    base = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    value = float(x)
    made = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=x)
    assert type(made.provenance["coeff"]) is float and made.provenance["coeff"] == value
    torch.testing.assert_close(made.tensor, value * base.tensor, rtol=1e-6, atol=0)
    for scaled in (base * x, x * base):
        assert isinstance(scaled, SteeringVector)
        assert torch.equal(scaled.tensor, base.tensor * value)
        assert type(scaled.provenance["scale"]) is float
    assert torch.equal((base / x).tensor, base.tensor * (1.0 / value))


@pytest.mark.parametrize("x", REFUSED_SCALARS, ids=lambda x: repr(x)[:20])
def test_bools_and_nonfinite_numbers_are_refused_alike_as_coeff_and_scale(tiny_llama, x):
    base = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    message = "coefficient must be a finite real number"
    with pytest.raises(SteeringError, match=message):
        SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=x)
    with pytest.raises(SteeringError, match=message):
        base * x
    with pytest.raises(SteeringError, match=message):
        x * base
    with pytest.raises(SteeringError, match=message):
        base / x


def test_division_by_zero_is_refused(tiny_llama):
    base = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)
    for zero in (0, 0.0, np.float32(0)):
        with pytest.raises(SteeringError, match="by zero"):
            base / zero


def test_bad_pair_inputs_are_rejected(tiny_llama):
    with pytest.raises(SteeringError, match="Both prompts are empty"):
        SteeringVector.from_pair(tiny_llama, "", "", layer=1)
    with pytest.raises(SteeringError, match="out of range"):
        SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=5)
    with pytest.raises(SteeringError, match="out of range"):
        SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=-1)


def test_algebra_zero_pads_and_scales(tiny_llama):
    a = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1)  # 5 rows
    b = SteeringVector.from_pair(tiny_llama, "Happy", "Sad", layer=1)  # 6 rows
    s = a + b
    assert s.k == 6
    torch.testing.assert_close(s.tensor[:5], a.tensor + b.tensor[:5], rtol=0, atol=0)
    assert torch.equal(s.tensor[5], b.tensor[5])
    assert torch.equal((a - b).tensor[5], -b.tensor[5])
    assert torch.equal((2 * a).tensor, a.tensor * 2) and torch.equal((a * 2).tensor, a.tensor * 2)
    assert torch.equal((-a).tensor, -a.tensor)
    assert torch.equal((a / 4).tensor, a.tensor * 0.25)
    assert torch.equal(a.mean().tensor[0], a.tensor.mean(0))
    assert torch.equal(a.mean(skip_first=True).tensor[0], a.tensor[1:].mean(0))
    torch.testing.assert_close(a.norms(), a.tensor.norm(dim=-1))
    with pytest.raises(SteeringError, match="different layers"):
        a + SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2)
    with pytest.raises(SteeringError, match="finite"):
        a * float("nan")


def test_nonfinite_or_empty_tensor_is_rejected():
    with pytest.raises(SteeringError, match="NaN or inf"):
        SteeringVector.from_tensor(torch.tensor([[1.0, float("nan")]]), layer=0)
    with pytest.raises(SteeringError, match="at least one position"):
        SteeringVector.from_tensor(torch.zeros(0, 4), layer=0)
    with pytest.raises(SteeringError, match="shape"):
        SteeringVector.from_tensor(torch.zeros(2, 3, 4), layer=0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_float_tensors_are_refused_naming_the_dtype(dtype):
    with pytest.raises(SteeringError, match=f"must be floating point.*got {dtype}") as info:
        SteeringVector(torch.ones(2, 4, dtype=dtype), 1)
    assert "tensor.float()" in str(info.value) and "\n" not in str(info.value)


def test_a_tensor_that_is_not_a_tensor_is_refused():
    with pytest.raises(SteeringError, match="must be a torch.Tensor, got list"):
        SteeringVector([[1.0, 2.0]], 1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_every_float_dtype_is_kept(dtype):
    assert SteeringVector(torch.ones(2, 4, dtype=dtype), 1).tensor.dtype == dtype


@pytest.mark.parametrize(
    "provenance", [{"kind": "pair"}, {"kind": "pair", "coeff": "x"}, {"label": 5}, {"kind": 3}]
)
def test_describe_never_fails_on_an_odd_provenance(provenance):
    # provenance comes from files: repr (as ``actadd vector show`` prints) must not crash
    v = SteeringVector(torch.ones(1, 4), 1, None, provenance)
    assert "@L1" in v.describe() and "SteeringVector(" in repr(v)


def test_save_load_round_trip_is_exact(tiny_llama, tmp_path):
    v = 0.5 * SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=3, coeff=7)
    path = v.save(tmp_path / "love.safetensors")
    w = SteeringVector.load(path, tiny_llama)
    assert torch.equal(w.tensor, v.tensor)
    assert (w.layer, w.model_name, w.provenance) == (v.layer, v.model_name, v.provenance)
    assert not list(tmp_path.glob("*.tmp"))


def test_loading_into_another_model_needs_an_explicit_override(tiny_llama, tiny_gpt2, tmp_path):
    path = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1).save(tmp_path / "v.st")
    with pytest.raises(SteeringError, match="allow_other_model"):
        SteeringVector.load(path, tiny_gpt2)
    assert SteeringVector.load(path, tiny_gpt2, allow_other_model=True).layer == 1


def test_loading_a_vector_of_another_width_is_an_error(tiny_llama, tmp_path):
    path = SteeringVector.from_tensor(torch.ones(2, 32), 1, "tiny-llama").save(tmp_path / "v.st")
    with pytest.raises(SteeringError, match="d_model 32"):
        SteeringVector.load(path, tiny_llama)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\x08" + b"\0" * 7])
def test_corrupt_vector_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(VectorFileError, match="not a readable actadd steering-vector file"):
        SteeringVector.load(path)
    with pytest.raises(VectorFileError, match="No steering-vector file"):
        SteeringVector.load(tmp_path / "missing.safetensors")


def test_describe_and_repr_name_the_pair(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=1, coeff=5)
    assert v.describe() == "Love − Hate ×5 @L1"
    assert "Love − Hate ×5 @L1, 5 rows, norm " in repr(v) and "× resid" in repr(v)
