"""Sweeps: engine == naive loop, a resume with another config refused, bad configs caught up
front. (A sweep killed with SIGKILL and resumed: tests/system/test_crash_resume.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

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
    equalize=["right", "left"],
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
    # the grid is complete: pairs × equalize rules × layers × coeffs × aligns × texts × metrics
    n_cells = 2 * 2 * 4 * 2 * 4
    assert len(fast) == n_cells * (2 * 3 + 2 * 1)


def test_results_are_tidy_and_summarize_per_cell(tiny_llama):
    df = run_sweep(
        spec(model=None, pairs=BASE["pairs"][:1], equalize=["right"]), tiny_llama, progress=False
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
        equalize=["right"],
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
        equalize=["right"],
        layers=[1],
        coeffs=[1.0],
        aligns=["front"],
    )
    run_sweep(s, tiny_llama, out=tmp_path, progress=False)
    other = spec(
        model=None,
        pairs=BASE["pairs"][:1],
        equalize=["right"],
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
        ({"equalize": ["middle"]}, "pad 'middle' unknown"),
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

    s = spec(model=None, pairs=BASE["pairs"][:1], equalize=["right"], aligns=["offset:0:3"])
    run_sweep(s, tiny_llama, out=tmp_path, progress=False)
    paths = sweep_figures(load_results(tmp_path), tmp_path / "figs")
    names = {Path(p).name for p in paths}
    assert "pair0_kl_neutral_heatmap.png" in names and "pair0_kl_neutral_offsets.pdf" in names
    assert all(Path(p).stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------------- equalize (once pads)


def test_pads_is_read_as_equalize_with_a_deprecation_warning():
    new = spec()
    old_config = {k: v for k, v in BASE.items() if k != "equalize"} | {"pads": BASE["equalize"]}
    with pytest.warns(DeprecationWarning, match="'pads' is now called 'equalize'"):
        old = SweepSpec.from_dict(old_config)
    assert old == new and old.to_dict() == new.to_dict()
    assert old.to_dict()["equalize"] == ("right", "left") and "pads" not in old.to_dict()
    with pytest.raises(ConfigError, match=r"give 'equalize' only \('pads' is its old name\)"):
        SweepSpec.from_dict(BASE | {"pads": ["right"]})


def test_the_saved_config_keeps_its_keys_in_their_order():
    gen = {"n_samples": 2, "max_new_tokens": 4, "topic_words": ["a"]}
    d = spec(generation=gen).to_dict()
    assert list(d) == [
        "name", "pairs", "layers", "coeffs", "prompts", "model", "aligns", "equalize",
        "target_words", "neutral_texts", "generation", "next_token", "batch_rows",
        "confirmatory",
    ]  # fmt: skip
    assert d["generation"] == {
        "n_samples": 2,
        "max_new_tokens": 4,
        "seed": 0,
        "temperature": 1.0,
        "top_p": 0.3,
        "freq_penalty": 1.0,
        "topic_words": ("a",),
        "sentiment": True,
    }  # flat, as config.json has always held it
    assert SweepSpec.from_dict(d) == spec(generation=gen)


@pytest.mark.slow
def test_a_run_saved_with_pads_resumes_under_its_config_and_computes_nothing(
    tmp_path, tiny_llama, monkeypatch
):
    """A run directory written before the rename holds ``pads`` in config.json; resuming it
    with today's config (``equalize``) is the same run: nothing is recomputed and its
    config.json stays as written."""
    from actadd.lab.runner import run_experiment
    from actadd.studies.sweep.kind import SweepKind

    config = {"kind": "sweep", **BASE, "pairs": BASE["pairs"][:1], "layers": [1], "coeffs": [1.0]}
    saved = SweepKind.saved_config

    def as_written_before(self, s):  # the saved config as the code before the rename wrote it
        return {("pads" if k == "equalize" else k): v for k, v in saved(self, s).items()}

    with monkeypatch.context() as m:
        m.setattr(SweepKind, "saved_config", as_written_before)
        run_experiment(config, tmp_path, model=tiny_llama)
    written = (tmp_path / "config.json").read_bytes()
    assert json.loads(written)["pads"] == ["right", "left"]
    import actadd.sweeps.engine as engine

    def no_compute(*a, **k):
        raise AssertionError("a resumed, finished run recomputed a unit")

    monkeypatch.setattr(engine.UnitRunner, "__call__", no_compute)
    run_experiment(config, tmp_path, resume=True, model=tiny_llama)
    assert (tmp_path / "config.json").read_bytes() == written
    other = config | {"coeffs": [2.0]}  # a different config is still refused
    with pytest.raises(ConfigError, match="different config"):
        run_experiment(other, tmp_path, resume=True, model=tiny_llama)


# ---------------------------------------------------------------------- executors


def test_the_executors_old_names_warn_and_give_the_new_classes():
    import actadd.sweeps
    from actadd.sweeps import distributed, engine

    for module, old, new in (
        (actadd.sweeps, "Backend", engine.Executor),
        (actadd.sweeps, "LocalBackend", engine.LocalExecutor),
        (engine, "Backend", engine.Executor),
        (engine, "LocalBackend", engine.LocalExecutor),
        (distributed, "RayBackend", distributed.RayExecutor),
    ):
        with pytest.warns(DeprecationWarning, match=f"{old} is now called {new.__name__}"):
            assert getattr(module, old) is new
    with pytest.raises(AttributeError):
        actadd.sweeps.NoSuchName  # noqa: B018


def test_relative_coefficients_give_each_cell_r_times_the_residual_norm(tiny_llama):
    from actadd.core.sizes import typical_resid_norm
    from actadd.core.steering import Align
    from actadd.core.vectors import SteeringVector
    from actadd.sweeps.engine import cell_vector

    for layer in (1, 3):
        v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer)
        ref = typical_resid_norm(tiny_llama, layer)
        for align in ("front", "all"):
            cell = cell_vector(v, 0.3, Align.parse(align), "relative", tiny_llama)
            assert cell.norm() == pytest.approx(0.3 * ref, rel=1e-6)
            assert cell.k == (1 if align == "all" else v.k)
        assert torch.equal(cell_vector(v, 2.0, Align.parse("front")).tensor, (v * 2.0).tensor)


def test_a_relative_sweep_equals_the_absolute_one_at_the_matching_coefficient(tiny_llama):
    from actadd.core.sizes import typical_resid_norm
    from actadd.core.vectors import SteeringVector

    layer, r = 2, 0.25
    v = SteeringVector.from_pair(tiny_llama, "Love", "Hate", layer)
    c = r * typical_resid_norm(tiny_llama, layer) / v.norm()
    one = dict(model=None, pairs=BASE["pairs"][:1], layers=[layer], aligns=["front"])
    one |= dict(equalize=["right"])
    rel = run_sweep(spec(**one, coeffs=[r], coeff_mode="relative"), tiny_llama, progress=False)
    ab = run_sweep(spec(**one, coeffs=[c]), tiny_llama, progress=False)
    rel, ab = (sort_results(d[d.pair != UNSTEERED]) for d in (rel, ab))
    assert set(rel.coeff) == {r}  # the table holds the relative value
    np.testing.assert_allclose(rel.value.values, ab.value.values, rtol=1e-4, atol=1e-5)


def test_coeff_mode_is_checked_with_the_config_and_left_out_at_its_default():
    with pytest.raises(ConfigError) as info:
        spec(coeff_mode="percent")
    assert "coeff_mode 'percent' unknown; allowed: 'absolute'" in str(info.value)
    assert "'relative'" in str(info.value) and "\n" not in str(info.value)
    assert "coeff_mode" not in spec().to_dict()  # old run directories stay resumable
    assert spec(coeff_mode="relative").to_dict()["coeff_mode"] == "relative"
