"""Bad config and command-line input: one clear line (what was wrong, what is allowed),
raised before any compute and before a run directory exists; values that are not what
they look like (the string "false", the string "64") are refused by name; files with a
UTF-8 byte-order mark read like files without one; figures of a large grid stay quick."""

from __future__ import annotations

import json
import re
import sys
import types
import warnings

import numpy as np
import pytest

from actadd.cli import main
from actadd.config import (
    MAX_COEFF,
    Pair,
    boolean,
    coefficients,
    describe,
    integer,
    number,
    read_toml,
)
from actadd.core.chat import render, render_pair
from actadd.core.datasets import load_pairs
from actadd.errors import ChatTemplateError, ConfigError, FigureSubsetWarning
from actadd.lab.runner import read_config, run_experiment
from actadd.studies.sweep.kind import FIGURE_COEFFS, figure_coeffs
from actadd.sweeps import SweepSpec

BOM = "\ufeff"

# a small sweep config as TOML lines, key -> TOML value text (so cases can write inf, 1e300)
SWEEP = {
    "kind": '"sweep"',
    "name": '"bad"',
    "model": '"tiny-llama"',
    "layers": "[1]",
    "coeffs": "[1.0]",
    "prompts": '["I went up to my friend and said"]',
    "target_words": '["w"]',
}
PAIR = '[[pairs]]\npositive = "Love"\nnegative = "Hate"\n'
GENERATION = {"n_samples": "1", "max_new_tokens": "2", "topic_words": '["a"]'}


def sweep_toml(top: dict[str, str] | None = None, generation: dict[str, str] | None = None):
    lines = [f"{k} = {v}" for k, v in {**SWEEP, **(top or {})}.items()]
    text = "\n".join(lines) + "\n" + PAIR
    if generation is not None:
        gen = {**GENERATION, **generation}
        text += "[generation]\n" + "\n".join(f"{k} = {v}" for k, v in gen.items()) + "\n"
    return text


def _no_model(*a, **k):
    raise AssertionError("a model was loaded for a config that needs none to be refused")


def _no_start(*a, **k):
    raise AssertionError("the run directory was started (compute would follow)")


def assert_one_line(capsys, message: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("actadd: error:") and "Traceback" not in err, err
    assert re.search(message, err), err
    return err


# ---------------------------------------------------------------------- actadd sweep

# (top-level keys, [generation] keys or None, the error; refused from the config alone)
CONFIG_ONLY = [
    ({}, {"n_samples": "2.5"}, r"generation\.n_samples must be an integer in 1\.\.1000, got 2\.5"),
    ({}, {"seed": "-5"}, r"generation\.seed must be an integer >= 0, got -5\."),
    (
        {},
        {"freq_penalty": "inf"},
        r"generation\.freq_penalty must be a finite number in -100\.\.100, got inf",
    ),
    (
        {},
        {"n_samples": "1000000000"},
        r"n_samples must be an integer in 1\.\.1000, got 1000000000 \(completions per prompt",
    ),
    ({"coeffs": "[1e300]"}, None, r"coeffs: 1e\+300 is too large; allowed \|coeff\| <= 1e\+06"),
    ({"prompts": '["   "]'}, None, r"prompts must be non-empty strings \(not only whitespace\)"),
    ({"neutral_texts": '[""]'}, None, r"neutral_texts must be non-empty strings"),
    ({"neutral_texts": '"one text"'}, None, r"neutral_texts must be a list of texts"),
    ({}, {"temperature": "-1"}, r"generation\.temperature must be a finite number >= 1e-06"),
    ({}, {"top_p": "5"}, r"generation\.top_p must be a finite number > 0 and <= 1, got 5\."),
    ({"batch_rows": '"64"'}, None, r"batch_rows must be an integer >= 1, got the string '64'\."),
    ({}, {"n_samples": '"2"'}, r"n_samples must be an integer in 1\.\.1000, got the string '2'"),
    (
        {},
        {"sentiment": '"false"'},
        r"generation\.sentiment must be true or false \(a TOML boolean, unquoted\), got the "
        r"string 'false'",
    ),
    ({"next_token": '"false"'}, None, r"next_token must be true or false .* the string 'false'"),
    (
        {"random_draws": "100000000", "methods": '["actadd", "random"]', "aligns": '["all"]'},
        None,
        r"random_draws must be an integer in 0\.\.1000, got 100000000 \(each draw is a method",
    ),
]


@pytest.mark.parametrize(("top", "generation", "message"), CONFIG_ONLY)
def test_bad_sweep_values_are_one_line_before_the_model_loads_and_no_run_directory_is_left(
    tmp_path, capsys, monkeypatch, top, generation, message
):
    config = tmp_path / "c.toml"
    config.write_text(sweep_toml(top, generation))
    monkeypatch.setattr("actadd.models.load_model", _no_model)
    monkeypatch.setattr("actadd.lab.runs.RunDir.start", _no_start)
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out)]) == 2
    assert_one_line(capsys, message)
    assert not out.exists()


# the vector's rows against the texts' tokens: needs the tokenizer, refused before compute
NEEDS_MODEL = [
    (
        {"aligns": '["offset:1000"]'},
        r"align offset:1000: the \d+-row vector of pair Love − Hate \(pad right\) does not "
        r"fit prompt 'I went up to my friend and said'",
    ),
    (
        {"neutral_texts": '["Hi"]'},
        r"align front: the \d+-row vector of pair .* does not fit neutral text 'Hi' \(\d tokens",
    ),
    ({"prompts": '["Hi"]', "aligns": '["back"]'}, r"align back: .* does not fit prompt 'Hi'"),
]


@pytest.mark.parametrize(("top", "message"), NEEDS_MODEL)
def test_a_vector_that_does_not_fit_a_text_is_refused_before_any_compute(
    tmp_path, capsys, monkeypatch, top, message
):
    config = tmp_path / "c.toml"
    config.write_text(sweep_toml(top))
    monkeypatch.setattr("actadd.lab.runs.RunDir.start", _no_start)
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out)]) == 2
    assert_one_line(capsys, message)
    assert not out.exists()


def test_texts_that_fit_every_cell_still_run(tmp_path, tiny_llama):
    """The fit check refuses only what would fail: one-row methods fit any text."""
    spec = SweepSpec.from_dict(
        dict(
            name="fits",
            pairs=[["Love", "Hate"]],
            layers=[1],
            coeffs=[1.0],
            aligns=["front", "all", "offset:2"],
            methods=["actadd", "actadd_mean"],
            prompts=["I went up to my friend and said"],
            neutral_texts=["The museum opens at nine in the morning."],
            target_words=["w"],
        )
    )
    spec.validate(tiny_llama)
    short = SweepSpec.from_dict({**spec.to_dict(), "aligns": ["all"], "prompts": ["Hi"]})
    short.validate(tiny_llama)  # a one-row method at 'all' fits a 2-character prompt


# ---------------------------------------------------------------------- the demo kind

DEMO = {
    "kind": "demo",
    "name": "demo",
    "model": "tiny-llama",
    "pair": ["Love", "Hate"],
    "layer": 1,
    "coeff": 2.0,
    "prompts": ["I went up to my friend and said"],
    "n_samples": 1,
    "max_new_tokens": 2,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_samples": 2.5}, r"n_samples must be an integer in 1\.\.1000, got 2\.5"),
        ({"n_samples": "2"}, r"n_samples must be an integer .* got the string '2'"),
        ({"seed": -5}, r"seed must be an integer >= 0, got -5"),
        ({"coeff": 1e300}, r"coeff: 1e\+300 is too large"),
        ({"prompts": ["Hi"]}, r"prompt 'Hi' is \d tokens .* too short for the \d+-row vector"),
        ({"align": "offset:40"}, r"too short for the \d+-row vector of pair .* at align offset:40"),
        ({"align": "all"}, r"align all adds one row at each position, but pair .* \d+-row"),
    ],
)
def test_a_bad_demo_is_refused_before_any_compute(tmp_path, monkeypatch, change, message):
    monkeypatch.setattr("actadd.lab.runs.RunDir.start", _no_start)
    with pytest.raises(ConfigError, match=message):
        run_experiment({**DEMO, **change}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- the shared helpers


def test_scalars_name_the_key_the_value_as_written_and_what_is_allowed():
    assert integer(np.int64(3), "k", low=1) == 3 and type(integer(3, "k")) is int
    assert number(2, "x") == 2.0 and boolean(False, "b") is False
    for raw, message in [
        ("64", r"k must be an integer >= 1, got the string '64'\."),
        (True, r"k must be an integer >= 1, got the boolean true\."),
        (2.5, r"k must be an integer >= 1, got 2\.5\."),
        (0, r"k must be an integer >= 1, got 0\."),
    ]:
        with pytest.raises(ConfigError, match=message):
            integer(raw, "k", low=1)
    with pytest.raises(ConfigError, match=r"k must be an integer in 0\.\.9, got 10 \(why\)\."):
        integer(10, "k", low=0, high=9, why="why")
    for raw in (float("nan"), float("inf"), 10**400, "1", None):
        with pytest.raises(ConfigError, match="x must be a finite number"):
            number(raw, "x")
    with pytest.raises(ConfigError, match=r"x must be a finite number > 0 and <= 1, got 0\."):
        number(0, "x", low=0, high=1, low_open=True)
    for raw in ("false", "no", 0, 1, None):
        with pytest.raises(ConfigError, match=r"b must be true or false \(a TOML boolean"):
            boolean(raw, "b")
    assert describe("no") == "the string 'no'" and describe([1]) == "the list [1]"
    assert coefficients([-MAX_COEFF, MAX_COEFF]) == [-MAX_COEFF, MAX_COEFF]
    with pytest.raises(ConfigError, match=r"coeffs: -2e\+06 is too large"):
        coefficients([1.0, -2e6])


def test_a_quoted_boolean_is_not_taken_as_true(tiny_llama):
    """bool("no") is True: the chat renderer would open the assistant turn; refused instead,
    before the template is even looked up (tiny-llama has none)."""
    msgs = [{"role": "user", "content": "Hi"}]
    for call in (
        lambda: render(tiny_llama, msgs, add_generation_prompt="no"),
        lambda: render_pair(tiny_llama, Pair("a", "b"), add_generation_prompt="no"),
    ):
        with pytest.raises(
            ChatTemplateError, match="add_generation_prompt must be True or False, got the string"
        ):
            call()
    with pytest.raises(ChatTemplateError, match="no chat template"):
        render(tiny_llama, msgs, add_generation_prompt=False)  # a real bool passes the check


# ---------------------------------------------------------------------- files: BOM, suites


def test_a_byte_order_mark_is_accepted_in_toml_csv_and_jsonl(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(BOM + sweep_toml(), encoding="utf-8")
    assert read_toml(config)["kind"] == "sweep"
    assert read_config(config)["name"] == "bad"
    csv = tmp_path / "p.csv"
    csv.write_text(BOM + "positive,negative\nI love it,I hate it\n", encoding="utf-8")
    jsonl = tmp_path / "p.jsonl"
    row = json.dumps({"positive": "I love it", "negative": "I hate it"})
    jsonl.write_text(BOM + row + "\n", encoding="utf-8")
    assert load_pairs(csv) == load_pairs(jsonl) == (Pair("I love it", "I hate it"),)
    suite = tmp_path / "suite.toml"
    suite.write_text(BOM + 'experiments = ["c"]\n', encoding="utf-8")
    from actadd.cli.commands import read_suite

    assert read_suite(suite) == [config]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('experiments = ["c"\n', r"suite\.toml: invalid TOML"),
        ('experiments = "c"\n', r"'experiments' must be a non-empty list of config names"),
        ("experiments = []\n", r"'experiments' must be a non-empty list"),
        ("experiments = [1]\n", r"'experiments' must be a non-empty list .* got \[1\]"),
    ],
)
def test_a_bad_suite_file_is_one_line_before_anything_runs(
    tmp_path, capsys, monkeypatch, text, message
):
    (tmp_path / "c.toml").write_text(sweep_toml())
    suite = tmp_path / "suite.toml"
    suite.write_text(text)
    monkeypatch.setattr("actadd.models.load_model", _no_model)
    results = tmp_path / "results"
    assert main(["suite", "--suite", str(suite), "--results", str(results)]) == 2
    assert_one_line(capsys, message)
    assert not results.exists()


# ---------------------------------------------------------------------- command-line options


@pytest.mark.parametrize("threads", ["-1", "0"])
def test_threads_below_one_are_one_line(capsys, threads):
    assert main(["--threads", threads, "kinds"]) == 2
    assert_one_line(
        capsys, rf"--threads must be an integer >= 1 \(torch CPU threads\), got {threads}"
    )


def _fake_ray(monkeypatch, resources: dict) -> list:
    """A stand-in ``ray`` module (the extra is optional) that records ``init`` calls."""
    calls: list = []
    ray = types.ModuleType("ray")
    state = {"up": False}

    def init(**kw):
        calls.append(kw)
        state["up"] = True

    ray.init = init
    ray.is_initialized = lambda: state["up"]
    ray.cluster_resources = lambda: dict(resources)
    ray.shutdown = lambda: state.update(up=False)
    ray.kill = lambda actor: None
    monkeypatch.setitem(sys.modules, "ray", ray)
    return calls


def test_ray_gpus_without_a_gpu_are_one_line_before_a_cluster_starts(tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text(sweep_toml())
    monkeypatch.setattr("actadd.models.load_model", _no_model)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls = _fake_ray(monkeypatch, {"CPU": 2.0})
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out), "--ray", "--ray-gpus", "1"]) == 2
    assert_one_line(capsys, r"--ray-gpus 1 asks for GPUs per actor, but torch sees 0 CUDA")
    assert calls == [] and not out.exists()  # no local cluster was started
    # a cluster joined by address: its resources are read once connected
    args = ["sweep", str(config), "--out", str(out), "--ray", "auto", "--ray-gpus", "1"]
    assert main(args) == 2
    assert_one_line(capsys, r"--ray-gpus 1 asks for more than the Ray cluster has \(0 GPUs")
    assert not out.exists()
    args = ["sweep", str(config), "--out", str(out), "--ray", "auto", "--ray-cpus", "8"]
    assert main(args) == 2
    assert_one_line(capsys, r"--ray-cpus 8 asks for more than the Ray cluster has \(2 CPUs")


# ---------------------------------------------------------------------- figures of a big grid


def test_figures_draw_at_most_a_dozen_coefficients_spread_over_the_range():
    many = list(np.linspace(-5, 5, 3000))
    shown = figure_coeffs(many)
    assert len(shown) == FIGURE_COEFFS and shown[0] == -5 and shown[-1] == 5
    assert figure_coeffs(many, keep=[many[7]]) == sorted([*shown, many[7]])
    assert figure_coeffs([1.0, 2.0]) == [1.0, 2.0]


@pytest.mark.slow
@pytest.mark.filterwarnings("default::actadd.errors.FigureSubsetWarning")
def test_a_run_with_many_coefficients_keeps_every_one_in_its_tables_and_says_so_in_one_line(
    tmp_path, capsys
):
    coeffs = [float(c) for c in range(1, 21)]
    config = tmp_path / "c.toml"
    config.write_text(sweep_toml({"coeffs": json.dumps(coeffs), "layers": "[1, 2]"}))
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out)]) == 0
    notes = [x for x in capsys.readouterr().err.splitlines() if x.startswith("actadd: note:")]
    assert len(notes) == 1 and f"draw {FIGURE_COEFFS} of 20 coefficients" in notes[0]
    from actadd.sweeps import load_results

    assert load_results(out).query("layer >= 0").coeff.nunique() == 20
    assert list((out / "figures").glob("*.png"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from actadd.lab.runner import figures_for

        figures_for(out)  # `actadd figures` redraws the same subset, with the same note
    assert [type(w.message) for w in caught] == [FigureSubsetWarning]
