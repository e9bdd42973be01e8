"""The pad-confound instruments (actadd.studies.pad_confound.analysis) on the tiny random Llama:
pad rows,
surgery that does exactly what it says, attention mass read from the real pattern, and the
regression statistics on data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import actadd
from actadd.config import Pair
from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Placement
from actadd.studies.pad_confound import analysis as P

PROMPTS = ["I went up to my friend and said", "The cat sat on the mat today"]
PAIR = Pair(" wed", "")


@pytest.fixture(scope="module")
def batch(tiny_llama):
    return PrefixBatch(tiny_llama, [tiny_llama.to_tokens(t)[0].tolist() for t in PROMPTS])


def test_pair_tokens_name_the_pad_rows_and_the_padded_side(tiny_llama):
    pad = tiny_llama.to_tokens(".", prepend_bos=False)[0, 0].item()
    right = P.pair_tokens(tiny_llama, PAIR, ".")
    n_pos = tiny_llama.to_tokens(" wed").shape[1]
    assert right.padded_side == 1 and right.pad_rows == tuple(range(1, n_pos))
    assert [right.negative[r] for r in right.pad_rows] == [pad] * (n_pos - 1)
    assert right.positive == tiny_llama.to_tokens(" wed")[0].tolist()
    flipped = P.pair_tokens(tiny_llama, Pair("ab", "abcd"), ".")
    assert flipped.padded_side == 0 and flipped.pad_rows == (3, 4)
    left = P.pair_tokens(tiny_llama, Pair("ab", "abcd"), ".", equalize="left")
    assert left.pad_rows == (1, 2) and left.positive[1:3] == [pad, pad]
    assert P.pair_tokens(tiny_llama, Pair("ab", "cd"), ".").padded_side == -1


def test_massive_dims_are_the_fewest_excess_dims_that_bring_the_row_down():
    stats = P.OrdinaryStats(torch.zeros(6), torch.tensor([1.0, 1, 1, 5, 1, 1]), norm=2.0)
    ordinary = torch.tensor([1.0, 1.0, 0.5, 0.5, 0.0, 0.0])  # norm 1.58 <= 2 x 2
    assert P.massive_dims(ordinary, stats, ratio=2.0).numel() == 0
    # dim 3 is large (9) but so are ordinary tokens there (5): excess 4; dim 1 has excess 29
    row = torch.tensor([1.0, 30.0, 0.0, 9.0, 0.0, 2.0])
    assert P.massive_dims(row, stats, ratio=2.0).tolist() == [1, 3]  # 30 alone leaves 9.3 > 4
    assert P.massive_dims(row, stats, ratio=3.0).tolist() == [1, 3]
    assert P.massive_dims(row, stats, ratio=5.0).tolist() == [1]  # 9.3 <= 10


@pytest.mark.parametrize("method", P.SURGERY_METHODS)
def test_surgery_changes_only_the_pad_rows_and_exactly_as_named(tiny_llama, batch, method):
    layers = [1, 2]
    stats = {layer: P.ordinary_stats(batch, layer) for layer in layers}
    ratio = 0.3  # below 1: every pad row counts as massive, so the surgery has work to do
    vs, info = P.surgery_vectors(tiny_llama, PAIR, layers, 2.0, ".", method, stats, ratio=ratio)
    plain = actadd.SteeringVector.from_pair_layers(
        tiny_llama, PAIR.positive, PAIR.negative, layers, 2.0, pad_token="."
    )
    tokens = P.pair_tokens(tiny_llama, PAIR, ".")
    acts = P.pair_residuals(tiny_llama, tokens, layers)
    rows = list(tokens.pad_rows)
    for layer in layers:
        v, p = vs[layer].tensor, plain[layer].tensor
        keep = [r for r in range(len(v)) if r not in rows]
        assert torch.equal(v[keep], p[keep])  # non-pad rows bit for bit
        h_pos, h_pad = acts[layer][0], acts[layer][1]
        for r in rows:
            if method == "mean_row":
                torch.testing.assert_close(v[r], 2.0 * (h_pos[r] - stats[layer].mean))
                continue
            dims = P.massive_dims(h_pad[r], stats[layer], ratio)
            assert 0 < len(dims) < v.shape[1]
            other = torch.ones(v.shape[1], dtype=torch.bool)
            other[dims] = False
            torch.testing.assert_close(v[r, dims], 2.0 * h_pos[r, dims])  # h_pad zeroed there
            assert torch.equal(v[r, other], p[r, other])
            left = h_pad[r, other].norm()
            assert left <= ratio * stats[layer].norm + 1e-4
        d = info[info.layer == layer]
        assert list(d.row) == rows
        assert (d.norm_before == [float(h_pad[r].norm()) for r in rows]).all()
    assert vs[1].provenance["method"] == method


def test_surgery_leaves_an_ordinary_pad_row_alone(tiny_llama, batch):
    stats = {1: P.ordinary_stats(batch, 1)}
    vs, info = P.surgery_vectors(tiny_llama, PAIR, [1], 1.0, ".", "zero_massive", stats, ratio=50)
    plain = actadd.SteeringVector.from_pair(tiny_llama, PAIR.positive, "", 1, pad_token=".")
    assert torch.equal(vs[1].tensor, plain.tensor) and (info.dims_changed == 0).all()


def test_effect_rows_equal_a_direct_steered_forward(tiny_llama, batch):
    v = actadd.SteeringVector.from_pair(tiny_llama, PAIR.positive, "", 2, 3.0, pad_token=".")
    target, control = [5, 7], [11, 13]
    rows = P.effect_rows(batch, [v], target, control)
    for r in rows:
        tokens = tiny_llama.to_tokens(PROMPTS[r["prompt_index"]])
        clean = tiny_llama(tokens)[0, -1]
        with actadd.steering(tiny_llama, v):
            steered = tiny_llama(tokens)[0, -1]
        lp = lambda x, ids: torch.logsumexp(torch.log_softmax(x, -1)[ids], -1)  # noqa: E731
        dt = lp(steered, target) - lp(clean, target)
        dc = lp(steered, control) - lp(clean, control)
        assert r["effect"] == pytest.approx(float(dt - dc), abs=1e-4)
        assert r["target_delta"] == pytest.approx(float(dt), abs=1e-4)


def test_attention_to_reads_the_pattern_with_and_without_steering(tiny_llama):
    tokens = tiny_llama.to_tokens(PROMPTS[0])[0].tolist()
    m = P.attention_to(tiny_llama, [tokens, tokens], key=2)
    _, cache = tiny_llama.run_with_cache(torch.tensor([tokens]))
    for layer in range(tiny_llama.cfg.n_layers):
        pat = cache[f"blocks.{layer}.attn.hook_pattern"][0]
        np.testing.assert_allclose(m["key"][0, layer], pat[:, 3:, 2].mean(-1), atol=1e-6)
        np.testing.assert_allclose(m["first"][1, layer], pat[:, 3:, 0].mean(-1), atol=1e-6)
        resid = cache[f"blocks.{layer}.hook_resid_pre"][0, 2]
        assert m["key_norm"][0, layer] == pytest.approx(float(resid.norm()), rel=1e-5)
    v = actadd.SteeringVector.from_pair(tiny_llama, "Love", "Hatred", 1, 8.0)
    s = P.attention_to(tiny_llama, [tokens, tokens], 2, [Placement(v, "front", (1,))])
    np.testing.assert_array_equal(s["key"][0], m["key"][0])  # row 0 not steered
    np.testing.assert_array_equal(s["key"][1, :1], m["key"][1, :1])  # below the layer
    assert not np.allclose(s["key"][1, 1:], m["key"][1, 1:])
    with actadd.steering(tiny_llama, v):
        _, cache = tiny_llama.run_with_cache(torch.tensor([tokens]))
    pat = cache["blocks.2.attn.hook_pattern"][0]
    np.testing.assert_allclose(s["key"][1, 2], pat[:, 3:, 2].mean(-1), atol=1e-6)


def _cells(slope: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    pad_x = rng.normal(size=12) * 2
    for pair in ("a", "b"):
        for layer in range(5):
            offset = rng.normal() * 3
            for i, x0 in enumerate(pad_x):
                x = x0 + 0.3 * layer
                rows.append(
                    dict(
                        pair=pair,
                        layer=layer,
                        pad=f"p{i}",
                        log2_norm_ratio=x,
                        effect=offset + slope * x + rng.normal() * 0.3,
                    )
                )
    return pd.DataFrame(rows)


def test_norm_regression_recovers_a_known_slope_and_rejects_none():
    r = P.norm_regression(_cells(-0.5), n_boot=500, n_perm=500)
    assert r["lo"] < -0.5 < r["hi"] and r["slope"] == pytest.approx(-0.5, abs=0.05)
    assert r["p"] < 0.01 and r["r"] < -0.9
    assert (r["n_units"], r["n_strata"], r["n_cells"]) == (12, 10, 120)
    null = P.norm_regression(_cells(0.0, seed=1), n_boot=500, n_perm=500)
    assert null["lo"] < 0 < null["hi"] and null["p"] > 0.05


def test_recommended_pad_is_the_best_never_massive_pad():
    effects = pd.DataFrame(
        dict(
            pad=["big", "big", "ok", "ok", "meh", "meh"],
            variant=P.PLAIN,
            effect=[3.0, 3.0, 1.0, 1.2, 0.5, 0.4],
            kl=0.1,
        )
    )
    norms = pd.DataFrame(
        dict(
            pad=["big", "big", "ok", "ok", "meh"],
            layer=[1, 2, 1, 2, 1],
            pad_norm=[100.0, 500.0, 90.0, 110.0, 50.0],
            typical_norm=100.0,
        )
    )
    ranking = P.pad_ranking(effects, norms, massive_ratio=2.0)
    assert list(ranking.pad) == ["ok", "meh", "big"]
    assert P.recommend_pad(ranking) == "ok"
    assert ranking.set_index("pad").max_norm_ratio["big"] == 5.0
