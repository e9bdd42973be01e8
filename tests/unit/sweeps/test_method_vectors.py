"""The sweep's method dimension: ActAdd, mean of ActAdd, CAA, PCA and random in one grid."""

from __future__ import annotations

import pytest
import torch

from actadd import ConfigError, steering
from actadd.core.metrics import kl_div
from actadd.sweeps import SweepSpec, run_sweep
from actadd.sweeps.method_vectors import MethodVectors
from actadd.sweeps.spec import METHODS

BASE = dict(
    name="methods",
    model="tiny-llama",
    pairs=[{"positive": "Love", "negative": "Hate"}, {"positive": "Kind", "negative": "Cruel"}],
    layers=[1, 2],
    coeffs=[1.0, 4.0],
    aligns=["front", "all"],
    prompts=["I went up to my friend and said"],
    target_words=["w", "e"],
    methods=list(METHODS),
    norm="match",
    random_draws=3,
)


def test_every_method_appears_with_its_aligns_and_matched_norms(tiny_llama):
    spec = SweepSpec.from_dict(BASE)
    df = run_sweep(spec, tiny_llama, progress=False)
    cells = df[df.method != "none"].groupby("method").align.unique()
    assert sorted(cells.index) == sorted(
        ["actadd", "actadd_mean", "caa", "pca_diff", "pca_center"]
        + [f"random:{i}" for i in range(3)]
    )
    assert sorted(cells["actadd"]) == ["all", "front"]
    for method in cells.index.drop("actadd"):
        assert list(cells[method]) == ["all"]  # one row: only the one-row alignment
    assert set(df[df.method == "caa"].pair) == {"sweep pairs"}
    vectors = MethodVectors(tiny_llama, spec)
    for layer in (1, 2):
        ref = vectors.reference_norm(layer)
        for method in spec.method_list():
            v = vectors.vectors(method, 0, "right")[layer]
            rows = v.tensor[1:] if v.k > 1 else v.tensor
            assert float(rows.norm(dim=-1).mean()) == pytest.approx(ref, rel=1e-5)


def test_a_method_cell_equals_steering_with_that_vector_by_hand(tiny_llama):
    spec = SweepSpec.from_dict(BASE | dict(methods=["pca_diff"], coeffs=[4.0], layers=[2]))
    df = run_sweep(spec, tiny_llama, progress=False)
    got = df[(df.method == "pca_diff") & (df.metric == "kl_next_token")].value.item()
    v = 4.0 * MethodVectors(tiny_llama, spec).vectors("pca_diff", 0, "")[2]
    tokens = tiny_llama.to_tokens(spec.prompts[0])
    clean = tiny_llama(tokens)[0, -1]
    with steering(tiny_llama, v, "all"):
        steered = tiny_llama(tokens)[0, -1]
    assert got == pytest.approx(float(kl_div(steered, clean)), rel=1e-3, abs=1e-6)
    assert got > 0


def test_random_draws_differ_and_are_reproducible(tiny_llama):
    spec = SweepSpec.from_dict(BASE)
    a, b = MethodVectors(tiny_llama, spec), MethodVectors(tiny_llama, spec)
    r0, r1 = a.vectors("random:0", -2, "")[1], a.vectors("random:1", -2, "")[1]
    assert not torch.allclose(r0.tensor, r1.tensor)
    assert torch.equal(r0.tensor, b.vectors("random:0", -2, "")[1].tensor)


def test_the_default_null_is_drawn_from_the_residual_distribution(tiny_llama):
    """random_null = "residual": every draw lies in the span of the centred residual rows of
    the sweep's prompts at its layer (positions after the leading token), at the CAA norm;
    "isotropic" draws are not confined to that span."""
    from actadd.runtime.forward import left_pad, real_positions, residuals

    spec = SweepSpec.from_dict(BASE | dict(prompts=["ab", "cd"]))  # a few rows: a low-rank span
    mv = MethodVectors(tiny_llama, spec)
    ids = [tiny_llama.to_tokens(t)[0].tolist() for t in spec.prompts]
    tokens, mask = left_pad(tiny_llama, ids)
    x = residuals(tiny_llama, tokens, [1], attention_mask=mask)[1][
        real_positions(mask, skip_leading=True)
    ]
    xc = (x - x.mean(0)).double()
    basis = torch.linalg.svd(xc, full_matrices=False).Vh[: int(torch.linalg.matrix_rank(xc))]

    def off_span(v):
        d = v.tensor[0].double()
        return float((d - (d @ basis.T) @ basis).norm() / d.norm())

    draw = mv.vectors("random:0", -2, "")[1]
    assert off_span(draw) < 1e-5
    assert float(draw.norms()[0]) == pytest.approx(mv.reference_norm(1), rel=1e-5)
    iso = MethodVectors(
        tiny_llama, SweepSpec.from_dict(BASE | dict(prompts=["ab", "cd"], random_null="isotropic"))
    )
    assert off_span(iso.vectors("random:0", -2, "")[1]) > 0.5


def test_configs_without_methods_keep_their_dict(tiny_llama):
    plain = {k: v for k, v in BASE.items() if k not in ("methods", "norm", "random_draws")}
    d = SweepSpec.from_dict(plain).to_dict()
    assert not {"methods", "dataset", "position", "norm", "random_draws"} & set(d)


@pytest.mark.parametrize(
    "over, message",
    [
        (dict(methods=["caa", "mean"]), r"unknown or repeated \['mean'\]; allowed"),
        (dict(aligns=["front"]), r"add one row: aligns \['front'\] has none that takes one row"),
        (dict(norm="unit"), r"norm 'unit' unknown; allowed: raw"),
        (dict(position="first"), r"position 'first' unknown"),
        (dict(pairs=[["a", "b"]], methods=["pca_diff"]), r"pca_diff needs a dataset of at least 2"),
        (dict(dataset="builtin:x"), r"Unknown built-in pair dataset 'x'"),
        (dict(random_draws=0), r"method random needs random_draws >= 1"),
        (dict(random_null="gaussian"), r"random_null 'gaussian' unknown; allowed: residual"),
    ],
)
def test_bad_method_configs_fail_before_any_compute(over, message):
    with pytest.raises(ConfigError, match=message) as info:
        SweepSpec.from_dict(BASE | over)
    assert "\n" not in str(info.value)
