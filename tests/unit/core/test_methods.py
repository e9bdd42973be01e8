"""Dataset methods: CAA and repeng's PCA, checked against hand computations and numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actadd import SteeringError, SteeringVector, steering
from actadd.config import Pair
from actadd.core.datasets import load_pairs
from actadd.core.methods import (
    PCA_RTOL,
    caa,
    dataset_vectors,
    pair_activations,
    pca,
    pca_direction,
    with_norm,
)
from actadd.interop.gguf import load_control_vector, write_control_vector
from actadd.runtime.hooks import resid_pre

PAIRS = [
    Pair("I love this town", "I hate this town"),
    Pair("What a kind man", "What a cruel man!"),
    Pair("Good", "Bad news"),
    Pair("The food is great", "The food is awful"),
]


def alone(model, text, layer):
    """The resid_pre of ``text`` alone, no padding: [pos, d_model]."""
    _, cache = model.run_with_cache(text, names_filter=resid_pre(model, layer))
    return cache[resid_pre(model, layer)][0]


@pytest.mark.parametrize("position", ["last", "mean"])
def test_caa_is_the_mean_of_hand_computed_differences(tiny_model, position):
    layer = 2

    def reduce(h):
        return h[-1] if position == "last" else h[1:].mean(0)

    diffs = [
        reduce(alone(tiny_model, p.positive, layer)) - reduce(alone(tiny_model, p.negative, layer))
        for p in PAIRS
    ]
    expected = 3.0 * torch.stack(diffs).mean(0)
    (v,) = caa(tiny_model, PAIRS, layer, position=position, coeff=3.0).values()
    assert v.k == 1 and v.layer == layer
    torch.testing.assert_close(v.tensor[0], expected, atol=1e-5, rtol=1e-5)


def test_positions_differ_and_batching_does_not_change_activations(tiny_llama):
    last = pair_activations(tiny_llama, PAIRS, [1, 3], position="last", batch_size=3)
    one = pair_activations(tiny_llama, PAIRS, [1, 3], position="last", batch_size=1)
    mean = pair_activations(tiny_llama, PAIRS, [1, 3], position="mean")
    for layer in (1, 3):
        torch.testing.assert_close(last[layer][0], one[layer][0], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(last[layer][0], mean[layer][0])
    torch.testing.assert_close(last[3][1][2], alone(tiny_llama, "Bad news", 3)[-1])


def test_mean_position_of_an_empty_prompt_is_its_leading_token(tiny_llama):
    acts = pair_activations(tiny_llama, [Pair(" weddings", "")], 2, position="mean")
    torch.testing.assert_close(acts[2][1][0], alone(tiny_llama, "", 2)[0])


def numpy_pc1(train: np.ndarray) -> np.ndarray:
    centred = train - train.mean(0)
    return np.linalg.svd(centred, full_matrices=False)[2][0]


@pytest.mark.parametrize("method", ["pca_diff", "pca_center"])
def test_pca_direction_equals_numpy_svd_up_to_sign(method):
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(12, 16))
    neg = pos - rng.normal(size=16) - 0.3 * rng.normal(size=(12, 16))
    if method == "pca_diff":
        train = pos - neg
    else:
        mid = (pos + neg) / 2
        train = np.concatenate([pos - mid, neg - mid])
    u = pca_direction(torch.tensor(pos), torch.tensor(neg), method).numpy()
    ref = numpy_pc1(train)
    assert abs(abs(float(u @ ref)) - 1.0) < 1e-9
    assert abs(np.linalg.norm(u) - 1.0) < 1e-9


@pytest.mark.parametrize("method", ["pca_diff", "pca_center"])
def test_pca_sign_makes_most_positives_project_higher(method):
    rng = np.random.default_rng(1)
    pos = torch.tensor(rng.normal(size=(9, 8)))
    neg = pos - torch.tensor(rng.normal(size=8)) - 0.2 * torch.tensor(rng.normal(size=(9, 8)))
    u = pca_direction(pos, neg, method)
    higher = int(((pos - neg) @ u > 0).sum())
    assert higher > 9 - higher
    # swapping the sides flips the direction: the sign follows the pairs, not the SVD
    torch.testing.assert_close(pca_direction(neg, pos, method), -u)


def test_pca_sign_tie_is_broken_by_the_mean_difference():
    # two pairs, one each way, differences of unequal size along the same axis
    pos = torch.tensor([[2.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    neg = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    u = pca_direction(pos, neg, "pca_center")
    assert float((pos - neg).mean(0) @ u) > 0
    assert float(pca_direction(neg, pos, "pca_center") @ u) < 0


@pytest.mark.parametrize("method", ["pca_diff", "pca_center"])
def test_pca_refuses_pairs_whose_sides_are_identical_where_caa_gives_zero(tiny_llama, method):
    same = [Pair("I love this town", "I love this town"), Pair("Good", "Good")]
    (zero,) = caa(tiny_llama, same, 2).values()
    assert float(zero.norms()[0]) == 0.0
    with pytest.raises(SteeringError, match=f"At resid_pre 2: {method} has no first") as info:
        pca(tiny_llama, same, 2, method, coeff=3.0)
    assert "Use caa" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("method", ["pca_diff", "pca_center"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_pca_refuses_differences_below_the_tolerance_at_any_activation_scale(method, scale):
    gen = torch.Generator().manual_seed(0)
    h = scale * torch.randn(6, 32, generator=gen, dtype=torch.float64)
    noise = scale * torch.randn(6, 32, generator=gen, dtype=torch.float64)
    with pytest.raises(SteeringError, match="barely"):
        pca_direction(h, h + 1e-7 * noise, method)  # float32 round-off, not a direction
    u = pca_direction(h, h + 10 * PCA_RTOL * noise, method)  # small but real spread
    assert float(u.norm()) == pytest.approx(1.0)


def test_pca_diff_refuses_pairs_that_all_differ_by_the_same_vector_pca_center_does_not():
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(5, 16, generator=gen, dtype=torch.float64)
    d = torch.randn(16, generator=gen, dtype=torch.float64)
    with pytest.raises(SteeringError, match="all differ by the same vector"):
        pca_direction(h + d, h, "pca_diff")  # centred differences are all zero
    u = pca_direction(h + d, h, "pca_center")  # the sides do differ: along d
    torch.testing.assert_close(u, d / d.norm())


def test_pca_vectors_are_unit_times_coeff_and_match_numpy_on_a_model(tiny_llama):
    acts = pair_activations(tiny_llama, PAIRS, 2)
    h_pos, h_neg = (t.double().numpy() for t in acts[2])
    (v,) = pca(tiny_llama, PAIRS, 2, "pca_diff", coeff=2.0).values()
    assert v.norms().item() == pytest.approx(2.0, abs=1e-5)
    assert abs(float(v.tensor[0].double().numpy() @ numpy_pc1(h_pos - h_neg)) / 2) == (
        pytest.approx(1.0, abs=1e-5)
    )


def test_dataset_vectors_at_all_layers_save_steer_and_export(tiny_llama, tmp_path):
    vectors = dataset_vectors(tiny_llama, "builtin:sentiment", "all", "caa", position="mean")
    assert sorted(vectors) == list(range(tiny_llama.cfg.n_layers))
    v = vectors[2]
    assert v.provenance["kind"] == "caa" and v.provenance["n_pairs"] == 32
    loaded = SteeringVector.load(v.save(tmp_path / "v.safetensors"), tiny_llama)
    assert torch.equal(loaded.tensor, v.tensor)
    tokens = tiny_llama.to_tokens("Hello there")
    with steering(tiny_llama, v, "all"):
        steered = tiny_llama(tokens)
    assert not torch.equal(steered, tiny_llama(tokens))
    path = write_control_vector({L: vectors[L] for L in (2, 3)}, tmp_path / "v.gguf")
    back = load_control_vector(path, tiny_llama)
    torch.testing.assert_close(back[2].tensor, v.tensor)


def test_with_norm_matches_norms_across_methods(tiny_llama):
    actadd_v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer=2)
    (pca_v,) = pca(tiny_llama, PAIRS, 2).values()
    a, b = with_norm(actadd_v, 5.0), with_norm(pca_v, 5.0)
    assert float(a.norms()[1:].mean()) == pytest.approx(5.0, rel=1e-5)
    assert float(b.norms()[0]) == pytest.approx(5.0, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="mean_diff"), "dataset method 'mean_diff' unknown; allowed: caa"),
        (dict(position="first"), "position 'first' unknown; allowed: last, mean"),
        (dict(layers=99), "layer 99 is out of range"),
        (dict(pairs="builtin:nope"), "Unknown built-in pair dataset 'nope'"),
        (dict(pairs=PAIRS[:1], method="pca_diff"), "pca_diff needs at least 2 pairs"),
    ],
)
def test_bad_input_is_one_clear_line(tiny_llama, kwargs, message):
    args = dict(pairs=PAIRS, layers=2, method="caa") | kwargs
    with pytest.raises((SteeringError, Exception), match=message) as info:
        dataset_vectors(tiny_llama, args.pop("pairs"), args.pop("layers"), **args)
    assert "\n" not in str(info.value)


def test_builtin_dataset_loads():
    pairs = load_pairs("builtin:sentiment")
    assert len(pairs) == 32 and all(p.positive and p.negative for p in pairs)
