"""Sweeps: engine == naive loop, a resume with another config refused, bad configs caught up
front. (A sweep killed with SIGKILL and resumed: tests/system/test_crash_resume.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actadd import ConfigError
from actadd.sweeps import (
    UNSTEERED,
    SweepSpec,
    load_results,
    naive_next_token,
    run_sweep,
    sort_results,
    summarize,
)
from actadd.sweeps.spec import parse_layers

BASE = dict(
    name="tiny",
    model="tiny-llama",
    pairs=[{"positive": "Love", "negative": "Hate"}, {"positive": " wed", "negative": ""}],
    layers="all",
    coeffs=[2.0, -3.0],
    aligns=["front", "back", "all", "offset:2"],
    pads=["right", "left"],
    prompts=["I went up to my friend and said", "Hello there"],
    target_words=["w", "e"],
)


def spec(**over):
    return SweepSpec.from_dict({**BASE, **over})


@pytest.mark.slow
def test_engine_numbers_equal_the_naive_per_cell_loop(any_model):
    s = spec(model=None, batch_rows=40)
    fast = run_sweep(s, any_model, progress=False)
    naive = naive_next_token(any_model, s)
    fast = sort_results(fast[fast.pair != UNSTEERED])
    naive = sort_results(naive)
    keys = [c for c in fast.columns if c != "value"]
    pd.testing.assert_frame_equal(fast[keys], naive[keys])
    np.testing.assert_allclose(fast.value, naive.value, rtol=1e-4, atol=2e-5)
    # the grid is complete: pairs × pads × layers × coeffs × aligns × texts × metrics
    n_cells = 2 * 2 * 4 * 2 * 4
    assert len(fast) == n_cells * (2 * 3 + 2 * 1)


def test_results_are_tidy_and_summarize_per_cell(tiny_llama):
    df = run_sweep(
        spec(model=None, pairs=BASE["pairs"][:1], pads=["right"]), tiny_llama, progress=False
    )
    assert set(df.metric) == {
        "target_logprob",
        "target_logprob_delta",
        "kl_next_token",
        "kl_neutral",
    }
    base = df[df.pair == UNSTEERED]
    assert set(base.metric) == {"target_logprob"} and (base.layer == -1).all()
    s = summarize(df)
    assert {"mean", "sem", "count"} <= set(s.columns)
    cell = s[
        (s.layer == 2) & (s.coeff == 2.0) & (s["align"] == "front") & (s.metric == "kl_neutral")
    ]
    assert len(cell) == 1 and cell["count"].iloc[0] == 2


def test_generation_metrics_use_common_seeds_across_cells(any_model):
    s = spec(
        model=None,
        pairs=BASE["pairs"][:1],
        pads=["right"],
        layers=[1],
        coeffs=[0.0, 1.0],
        aligns=["front"],
        next_token=False,
        generation={"n_samples": 3, "max_new_tokens": 6, "topic_words": ["a"]},
    )
    df = run_sweep(s, any_model, progress=False)
    comps = df.attrs["completions"]
    assert len(comps) == (1 + 2) * 2 * 3  # baseline + 2 coefficients, 2 prompts × 3 samples
    zero = comps[(comps.coeff == 0.0) & (comps.layer == 1)].completion.tolist()
    base = comps[comps.pair == UNSTEERED].completion.tolist()
    assert zero == base  # c = 0 adds nothing, and the seeds are shared
    assert set(df.metric) == {"topic_any", "topic_count", "sentiment"}


def test_resuming_with_a_different_config_is_refused(tmp_path, tiny_llama):
    s = spec(
        model=None,
        pairs=BASE["pairs"][:1],
        pads=["right"],
        layers=[1],
        coeffs=[1.0],
        aligns=["front"],
    )
    run_sweep(s, tiny_llama, out=tmp_path, progress=False)
    other = spec(
        model=None,
        pairs=BASE["pairs"][:1],
        pads=["right"],
        layers=[1],
        coeffs=[2.0],
        aligns=["front"],
    )
    with pytest.raises(ConfigError, match="different config"):
        run_sweep(other, tiny_llama, out=tmp_path, resume=True, progress=False)


@pytest.mark.parametrize(
    "over, message",
    [
        ({"colour": "red"}, "unknown key"),
        ({"layers": [0, 9]}, r"layers \[9\] out of range"),
        ({"layers": "2:2"}, "selects no layer"),
        ({"coeffs": []}, "coeffs is empty"),
        ({"coeffs": [1, "two"]}, "is not a number"),
        ({"coeffs": [float("nan")]}, "not a finite number"),
        ({"prompts": []}, "prompts is empty"),
        ({"aligns": ["sideways"]}, "sideways"),
        ({"pads": ["middle"]}, "pad 'middle' unknown"),
        ({"target_words": ["wedding"]}, "not a single token"),
        ({"target_words": "fashion"}, "unknown preset"),
        ({"pairs": [{"positive": "", "negative": ""}]}, "two empty prompts"),
        ({"pairs": [{"positive": "a", "negativ": "b"}]}, "unknown key"),
        ({"generation": {"n_samples": 0}}, "n_samples"),
    ],
)
def test_bad_configs_fail_before_any_compute(tiny_llama, over, message, monkeypatch):
    import actadd.sweeps.engine as engine

    def no_compute(*a, **k):
        raise AssertionError("compute started")

    monkeypatch.setattr(engine.Texts, "__init__", no_compute)
    monkeypatch.setattr(engine, "generation_unit", no_compute)
    with pytest.raises(ConfigError, match=message):
        run_sweep(spec(model=None, **over), tiny_llama, progress=False)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("layers = [1, 2")
    with pytest.raises(ConfigError, match="invalid TOML"):
        SweepSpec.from_toml(bad)
    with pytest.raises(ConfigError, match="No config file"):
        SweepSpec.from_toml(tmp_path / "none.toml")


def test_layer_ranges():
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("0:30:2", 30)[:3] == [0, 2, 4]
    assert parse_layers("5", 30) == [5]
    assert parse_layers("28:", 30) == [28, 29]
    with pytest.raises(ConfigError):
        parse_layers("a:b", 30)


def test_offset_range_expands():
    assert [str(a) for a in spec(aligns=["offset:1:3"]).align_list()] == ["offset:1", "offset:2"]
    s = spec(aligns=["offset:0:3", "back"])
    assert [str(a) for a in s.align_list()] == ["front", "offset:1", "offset:2", "back"]


@pytest.mark.slow
def test_figures_are_redrawn_from_the_saved_table(tmp_path, tiny_llama):
    from actadd.plots import sweep_figures

    s = spec(model=None, pairs=BASE["pairs"][:1], pads=["right"], aligns=["offset:0:3"])
    run_sweep(s, tiny_llama, out=tmp_path, progress=False)
    paths = sweep_figures(load_results(tmp_path), tmp_path / "figs")
    names = {Path(p).name for p in paths}
    assert "pair0_kl_neutral_heatmap.png" in names and "pair0_kl_neutral_offsets.pdf" in names
    assert all(Path(p).stat().st_size > 1000 for p in paths)
