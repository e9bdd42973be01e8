"""Sizes that mean something: the typical residual norm, relative norms and coefficients."""

from __future__ import annotations

import statistics

import pytest
import torch

from actadd import SteeringError, steering
from actadd.core import sizes
from actadd.core.contrast import pair_differences
from actadd.core.methods import dataset_vectors
from actadd.core.sizes import REFERENCE_TEXT, typical_resid_norm, typical_resid_norms
from actadd.core.vectors import SteeringVector
from actadd.runtime.tokens import encode

PAIRS = [("Love", "Hate"), ("Happy", "Sad"), ("Calm", "Angry")]


def test_typical_resid_norm_is_the_median_norm_after_the_leading_token(tiny_model):
    ids = encode(tiny_model, REFERENCE_TEXT, prepend_bos=True)
    _, cache = tiny_model.run_with_cache(torch.tensor([ids]))
    for layer in (0, 1, tiny_model.cfg.n_layers - 1):
        norms = cache[f"blocks.{layer}.hook_resid_pre"][0, 1:].double().norm(dim=-1).tolist()
        assert typical_resid_norm(tiny_model, layer) == pytest.approx(statistics.median(norms))
    final = cache[f"blocks.{tiny_model.cfg.n_layers - 1}.hook_resid_post"][0, 1:]
    assert typical_resid_norms(tiny_model)[tiny_model.cfg.n_layers] == pytest.approx(
        statistics.median(final.double().norm(dim=-1).tolist())
    )


def test_the_norms_are_cached_per_model_object(tiny_llama, tiny_gpt2, monkeypatch):
    first = typical_resid_norms(tiny_llama)
    monkeypatch.setattr(sizes, "residuals", lambda *a, **k: pytest.fail("measured twice"))
    assert typical_resid_norms(tiny_llama) == first
    monkeypatch.undo()
    assert typical_resid_norms(tiny_gpt2) != first  # another model, its own norms


def test_measuring_inside_a_steering_context_is_refused_not_steered(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", 1, coeff=50)
    saved = sizes._CACHE.pop(tiny_llama)
    try:
        with steering(tiny_llama, v):
            with pytest.raises(SteeringError, match="outside the steering context"):
                typical_resid_norms(tiny_llama)
            built = SteeringVector.from_pair(tiny_llama, "Love", "Hate", 1)
            assert built.resid_norm is None  # nothing recorded rather than a steered norm
            with pytest.raises(SteeringError, match="outside the steering context"):
                SteeringVector.from_pair(tiny_llama, "Love", "Hate", 1, coeff_mode="relative")
        assert typical_resid_norms(tiny_llama) == pytest.approx(saved)  # unsteered again
    finally:
        sizes._CACHE[tiny_llama] = saved


def test_builders_record_the_residual_norm_and_the_repr_shows_the_ratio(tiny_llama):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", 2, coeff=5)
    assert v.resid_norm == typical_resid_norm(tiny_llama, 2)
    rows = v.tensor[1:].double().norm(dim=-1)
    assert v.norm() == pytest.approx(float(rows.square().mean().sqrt()))  # RMS after row 0
    assert v.relative_norm == pytest.approx(v.norm() / v.resid_norm)
    assert f"norm {v.norm():.3g} = {v.relative_norm:.2g}× resid" in repr(v)
    caa = dataset_vectors(tiny_llama, PAIRS, [1, 3], "caa")
    assert caa[3].resid_norm == typical_resid_norm(tiny_llama, 3)
    # algebra at the same layer keeps it; a transplant to another layer drops it
    assert (0.5 * v + v).resid_norm == v.resid_norm == v.mean(skip_first=True).resid_norm
    assert v.at_layer(3).resid_norm is None and "× resid" not in repr(v.at_layer(3))


@pytest.mark.parametrize("layer", [0, 1, 3])
@pytest.mark.parametrize("r", [0.05, 0.5, 2.0, -1.0])
def test_scaled_to_gives_exactly_r_times_the_reference(tiny_model, layer, r):
    v = SteeringVector.from_pair(tiny_model, "Love", "Hate", layer, coeff=3)
    ref = typical_resid_norm(tiny_model, layer)
    for vec in (v, v.mean(skip_first=True), v.at_layer(layer)):  # the last: measured on model
        s = vec.scaled_to(r, tiny_model)
        assert s.norm() == pytest.approx(abs(r) * ref, rel=1e-6)
        assert s.relative_norm == pytest.approx(abs(r), rel=1e-6)
        cos = torch.nn.functional.cosine_similarity(s.tensor.flatten(), vec.tensor.flatten(), 0)
        assert float(cos) == pytest.approx(1.0 if r > 0 else -1.0, abs=1e-5)


def test_relative_coefficients_in_the_builders(tiny_llama):
    ref = typical_resid_norms(tiny_llama)
    rel = SteeringVector.from_pair_layers(
        tiny_llama, "Love", "Hate", [1, 2, 3], 0.4, coeff_mode="relative"
    )
    for layer, v in rel.items():
        assert v.norm() == pytest.approx(0.4 * ref[layer], rel=1e-6)
        assert v.provenance["coeff_mode"] == "relative" and v.describe().endswith(
            "(0.4× resid) @L" + str(layer)
        )
    caa = dataset_vectors(tiny_llama, PAIRS, [1, 3], "pca_center", coeff=0.3, coeff_mode="relative")
    assert caa[3].norm() == pytest.approx(0.3 * ref[3], rel=1e-6)
    assert caa[3].describe().startswith("pca_center(") and "(0.3× resid)" in caa[3].describe()


def test_absolute_mode_is_unchanged_bit_for_bit(tiny_llama):
    differences, _ = pair_differences(
        tiny_llama, "Love", "Hate", [2], 5.0, equalize="right", pad_token=" "
    )
    for v in (
        SteeringVector.from_pair(tiny_llama, "Love", "Hate", 2, 5.0),
        SteeringVector.from_pair(tiny_llama, "Love", "Hate", 2, 5.0, coeff_mode="absolute"),
    ):
        assert torch.equal(v.tensor, differences[2])


def test_a_bad_coeff_mode_is_one_line_before_any_compute(tiny_llama, monkeypatch):
    from actadd.core import contrast, methods

    boom = lambda *a, **k: pytest.fail("computed before the check")  # noqa: E731
    monkeypatch.setattr(contrast, "residuals", boom)
    monkeypatch.setattr(methods, "pair_activations", boom)
    for call in (
        lambda: SteeringVector.from_pair(tiny_llama, "Love", "Hate", 1, coeff_mode="rel"),
        lambda: dataset_vectors(tiny_llama, PAIRS, 1, coeff_mode="percent"),
    ):
        with pytest.raises(SteeringError) as info:
            call()
        text = str(info.value)
        assert "unknown; allowed: 'absolute'" in text and "'relative'" in text
        assert "\n" not in text


def test_scaled_to_without_a_reference_or_of_zeros_is_one_line(tiny_llama):
    bare = SteeringVector.from_tensor(torch.ones(1, 64), layer=1)
    with pytest.raises(SteeringError, match=r"no recorded typical residual norm: pass the model"):
        bare.scaled_to(0.5)
    zero = SteeringVector.from_tensor(torch.zeros(1, 64), layer=1)
    with pytest.raises(SteeringError, match="all zeros"):
        zero.scaled_to(0.5, tiny_llama)
    with pytest.raises(SteeringError, match="resid_norm must be a positive number"):
        SteeringVector(torch.ones(1, 64), 1, None, {}, -2.0)


def test_the_residual_norm_survives_save_and_load(tiny_llama, tmp_path):
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", 2, coeff=5)
    back = SteeringVector.load(v.save(tmp_path / "v.safetensors"))
    assert back.resid_norm == v.resid_norm and back.relative_norm == v.relative_norm
    old = SteeringVector.from_tensor(v.tensor, 2, "tiny-llama")  # as files before it was recorded
    assert SteeringVector.load(old.save(tmp_path / "old.safetensors")).resid_norm is None
    filled = SteeringVector.load(tmp_path / "old.safetensors", tiny_llama)
    assert filled.resid_norm == typical_resid_norm(tiny_llama, 2)
