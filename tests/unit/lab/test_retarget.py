"""``--model``: a config written for SmolLM2 (30 layers) runs on another model with its layers
mapped by relative depth (``round(L * n / 30)``), coefficients unchanged, the rule and every
mapped field recorded in ``config.json``, results in a folder of the model's own; an unknown
model or a layer past the model is one line before any model loads."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

import actadd
from actadd.cli import main
from actadd.cli.commands import read_suite
from actadd.errors import ConfigError
from actadd.lab.retarget import (
    CHAT,
    DEPTHS,
    GEMMA3,
    LAYER_PATHS,
    MODELS_KEY,
    RULE,
    RULE_KEY,
    SMOLLM2,
    canonical_model,
    for_model,
    map_layer,
)
from actadd.lab.runner import kind_of, read_config

ROOT = Path(__file__).resolve().parents[3]
EXPERIMENTS = ROOT / "experiments"
# a sweep written for SmolLM2 (no model key): layers 15, 29 and a confirmatory cell at 15
SWEEP = """kind = "sweep"
layers = [15, 29]
coeffs = [4.0]
prompts = ["I went up to my friend and said"]
target_words = ["w"]
confirmatory = [{ layer = 15, coeff = 4.0 }]
[[pairs]]
positive = "Love"
negative = "Hate"
"""


def one_line(capsys, pattern: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("actadd: error:"), err
    assert re.search(pattern, err), err
    return err


def no_model(*a, **k):
    raise AssertionError("a model was loaded for input that needs none to be refused")


def test_layers_map_by_relative_depth_from_30_to_18_blocks():
    source = [0, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 29, 30]
    mapped = [map_layer(x, 30, 18) for x in source]
    assert mapped == [0, 1, 1, 2, 2, 4, 5, 6, 7, 10, 12, 14, 17, 18]
    # the rule is round(L * 18 / 30); 30 -> 18 has no ties, so half-up equals round()
    assert mapped == [round(x * 18 / 30) for x in source]
    assert [map_layer(x, 30, 4) for x in (0, 7, 8, 22, 23, 30)] == [0, 1, 1, 3, 3, 4]


def test_a_config_on_another_model_carries_the_mapped_layers_and_the_rule():
    config = {
        "kind": "sweep",
        "layers": [2, 3, 6, 16],
        "coeffs": [1.0, 4.0],
        "confirmatory": [{"layer": 16, "coeff": 4.0}],
    }
    out = for_model(config, "gemma3-270m")
    assert out["layers"] == [1, 2, 4, 10]  # 2 and 3 both map to... 1 and 2: order kept
    assert out["confirmatory"] == [{"layer": 10, "coeff": 4.0}]
    assert out["coeffs"] == [1.0, 4.0] and out["model"] == GEMMA3
    assert out[RULE_KEY] == {
        "rule": RULE,
        "from": {"model": "smollm2", "n_layers": 30},
        "to": {"model": GEMMA3, "n_layers": 18},
        "layers": {
            "layers": {"from": [2, 3, 6, 16], "to": [1, 2, 4, 10]},
            "confirmatory.0.layer": {"from": 16, "to": 10},
        },
    }
    assert config["layers"] == [2, 3, 6, 16]  # the input is left alone
    # repeats collapse, "all" stays, a range is expanded on the config's model first
    assert for_model({"layers": [1, 2, 4]}, GEMMA3)["layers"] == [1, 2]
    assert for_model({"layers": "all"}, GEMMA3)["layers"] == "all"
    assert for_model({"layers": "0:30:10"}, GEMMA3)["layers"] == [0, 6, 12]
    assert for_model({"settings": {"dose_layers": [2]}}, GEMMA3)["settings"] == {"dose_layers": [1]}


def test_the_behaviours_benchmark_runs_as_plain_text_on_a_model_without_a_chat_template():
    config = read_config(EXPERIMENTS / "behaviours.toml")
    assert "chat" not in config  # the kind's default: the chat template
    gemma = for_model(config, GEMMA3)
    assert gemma["chat"] is False
    assert gemma[RULE_KEY]["chat"] == {
        "from": True,
        "to": False,
        "why": "gemma3-270m has no chat template",
    }
    kind_of(gemma).parse({k: v for k, v in gemma.items() if k not in ("kind", RULE_KEY)})
    # written as plain text already, a model whose template is not known, or another kind:
    # nothing changes and the record does not mention it
    plain = for_model({**config, "chat": False}, GEMMA3)
    tiny = for_model(config, "tiny-gemma3")
    other = for_model(read_config(EXPERIMENTS / "wedding_word_count.toml"), GEMMA3)
    assert plain["chat"] is False and "chat" not in tiny and "chat" not in other
    assert not any("chat" in c[RULE_KEY] for c in (plain, tiny, other))
    assert CHAT[SMOLLM2] and not CHAT[GEMMA3]


def test_an_empty_layer_list_stays_empty():
    # token_injection_v2 sets transplant_sources = [] (no transplants): nothing to map
    config = read_config(EXPERIMENTS / "token_injection_v2.toml")
    assert config["settings"]["transplant_sources"] == []
    gemma = for_model(config, GEMMA3)
    assert gemma["settings"]["transplant_sources"] == []
    assert gemma["settings"]["layers"] == [0, 1, 2, 5, 10]  # 0, 1, 2, 4, 8, 16 of 30
    assert [c["layer"] for c in gemma["confirmatory"]] == [2, 5]  # L4, L8
    kind_of(gemma).parse({k: v for k, v in gemma.items() if k not in ("kind", RULE_KEY)})


def test_the_config_s_own_model_leaves_the_config_as_written():
    config = {"kind": "sweep", "layers": [29]}
    assert for_model(config, None) is config
    assert for_model(config, "smollm2") is config and for_model(config, "SmolLM2-135M-Instruct")
    on_gemma = {"kind": "sweep", "model": "gemma3-270m", "layers": [17]}
    assert for_model(on_gemma, "gemma-3-270m") is on_gemma


@pytest.mark.parametrize(
    ("config", "model", "message"),
    [
        ({"layers": [2]}, "llama-7b", r"unknown model 'llama-7b': --model takes one of \["),
        (
            {"layers": [2, 31]},
            "gemma3-270m",
            r"cfg: layers \[31\]: past smollm2's 30 layers \(resid_pre 0\.\.30\), so past "
            r"gemma3-270m's 18 after mapping \(resid_pre 0\.\.18\)\.",
        ),
        (
            {"model": "gemma3-270m", "layers": [20]},
            "gemma3-270m",
            r"cfg: layers \[20\]: past gemma3-270m's 18 layers \(resid_pre 0\.\.18\)\.$",
        ),
        ({"confirmatory": [{"layer": 40}]}, "tiny-llama", r"confirmatory\.0\.layer \[40\]"),
    ],
)
def test_bad_input_is_one_error(config, model, message):
    with pytest.raises(ConfigError, match=message):
        for_model(config, model, "cfg")


def _layer_keys(node, prefix=""):
    """Dotted paths (list items as ``*``) of every key that names layers in a TOML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if re.search(r"layer|sources|targets", key) and key != "target_words":
                yield path
            yield from _layer_keys(value, path + ".")
    elif isinstance(node, list):
        for value in node:
            yield from _layer_keys(value, prefix + "*.")


def test_every_layer_field_of_every_experiment_is_mapped():
    found = set()
    for path in EXPERIMENTS.glob("*.toml"):
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        quick = raw.pop("quick", {})
        # a per-model table's layers are the target model's own: the rule does not map them
        raw.pop(MODELS_KEY, None), quick.pop(MODELS_KEY, None)
        found |= set(_layer_keys(raw)) | set(_layer_keys(quick))
    assert found, "no layer field found: the scan is broken"
    assert found <= set(LAYER_PATHS), sorted(found - set(LAYER_PATHS))


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("model", [GEMMA3, "tiny-gemma3"])
def test_every_suite_config_maps_to_a_valid_config(model, quick):
    for path in read_suite(EXPERIMENTS / "suite.toml"):
        config = for_model(read_config(path, quick), model, str(path))
        assert config["model"] == model and config[RULE_KEY]["layers"], path
        kind = kind_of(config)
        kind.parse({k: v for k, v in config.items() if k not in ("kind", RULE_KEY)})


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3", "tiny-gpt2"])
def test_the_known_depths_are_the_loaded_models(name):
    assert DEPTHS[canonical_model(name)] == actadd.load_model(name).cfg.n_layers


@pytest.mark.slow
def test_run_model_maps_writes_and_resumes_in_the_model_s_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(SWEEP)
    assert main(["run", "c.toml", "--model", "tiny-gemma3"]) == 0
    out = tmp_path / "results" / "tiny-gemma3" / "c"
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "tiny-gemma3" and config["layers"] == [2, 4]
    assert config["confirmatory"][0]["layer"] == 2 and config["coeffs"] == [4.0]
    assert config[RULE_KEY]["from"] == {"model": "smollm2", "n_layers": 30}
    assert config[RULE_KEY]["layers"]["layers"] == {"from": [15, 29], "to": [2, 4]}
    model = json.loads((out / "env.json").read_text())["model"]
    assert model["name"] == "tiny-gemma3" and model["n_layers"] == 4
    assert {"model_file", "model_sha256", "quantization", "license"} <= set(model)
    assert not (tmp_path / "results" / "c").exists()  # SmolLM2's folder untouched
    # the same command resumes the run (the mapped config is the one it was started with)
    assert main(["run", "c.toml", "--model", "tiny-gemma3", "--resume"]) == 0
    # ... and refuses the same folder for the config as written (other layers, other model)
    assert main(["run", "c.toml", "--out", str(out), "--resume"]) == 2
    assert "holds a run of a different config" in capsys.readouterr().err


@pytest.mark.slow
def test_suite_model_runs_every_config_into_the_model_s_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(SWEEP)
    (tmp_path / "suite.toml").write_text('experiments = ["c"]\n')
    assert main(["suite", "--suite", "suite.toml", "--model", "tiny-llama", "--quick"]) == 0
    results = tmp_path / "results" / "_quick" / "tiny-llama"
    record = json.loads((results / "suite.json").read_text())
    assert record["model"] == "tiny-llama" and record["model_rule"] == RULE
    assert json.loads((results / "c" / "config.json").read_text())["layers"] == [2, 4]
    assert (results / "REPORT.md").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["suite", "--model", "llama-7b"], r"unknown model 'llama-7b'"),
        (["run", "c.toml", "--model", "llama-7b"], r"unknown model 'llama-7b'"),
        (["run", "bad.toml", "--model", "gemma3-270m"], r"bad\.toml: layers \[31\]: past"),
        (["suite", "--suite", "suite.toml", "--model", "gemma3-270m"], r"layers \[31\]: past"),
    ],
)
def test_bad_model_input_is_one_line_before_any_model_loads(
    tmp_path, monkeypatch, capsys, argv, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("actadd.models.load_model", no_model)
    (tmp_path / "c.toml").write_text(SWEEP)
    (tmp_path / "bad.toml").write_text(SWEEP.replace("[15, 29]", "[15, 31]"))
    (tmp_path / "suite.toml").write_text('experiments = ["c", "bad"]\n')
    assert main(argv) == 2
    one_line(capsys, message)
    assert not (tmp_path / "results").exists()


# a per-model table: the prompt and the coefficient replaced on tiny-gemma3, a layer there in
# the target model's own terms (not mapped)
OVERRIDDEN = (
    SWEEP
    + """
[models."tiny-gemma3"]
coeffs = [2.0]
confirmatory = [{ layer = 3, coeff = 2.0 }]
"""
)


def test_a_per_model_table_replaces_values_on_that_model_only_and_is_recorded(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(OVERRIDDEN)
    raw = read_config(path)
    on = for_model(raw, "tiny-gemma3", str(path))
    assert on["coeffs"] == [2.0] and on["layers"] == [2, 4]  # layers still mapped
    assert on["confirmatory"] == [{"layer": 3, "coeff": 2.0}]  # the override's own layer
    assert on[RULE_KEY]["overrides"] == {
        "coeffs": {"from": [4.0], "to": [2.0]},
        "confirmatory": {"from": [{"layer": 2, "coeff": 4.0}], "to": [{"layer": 3, "coeff": 2.0}]},
    }
    assert MODELS_KEY not in on
    # as written, and on a model without a table: no table, nothing replaced, nothing recorded
    as_written = for_model(raw, None)
    assert MODELS_KEY not in as_written and as_written["coeffs"] == [4.0]
    other = for_model(raw, "tiny-llama")
    assert other["coeffs"] == [4.0] and "overrides" not in other[RULE_KEY]
    # a config without a table records exactly what it did before (old runs' provenance)
    assert (
        "overrides"
        not in for_model(read_config(EXPERIMENTS / "wedding_word_count.toml"), GEMMA3)[RULE_KEY]
    )


def test_token_injection_on_gemma_replaces_its_one_short_prompt():
    config = for_model(read_config(EXPERIMENTS / "token_injection.toml"), GEMMA3)
    (change,) = config[RULE_KEY]["overrides"].values()
    old, new = change["from"], change["to"]
    assert [a == b for a, b in zip(old, new)] == [True] * 4 + [False, True]
    assert new[4] == old[4].replace("Yesterday", "Yesterday,")
    quick = for_model(read_config(EXPERIMENTS / "token_injection.toml", quick=True), GEMMA3)
    assert len(quick["settings"]["prompts"]) == 2  # [quick] keeps its own size on Gemma


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[models."llama-7b"]\ncoeffs = [1.0]', r"\[models\.'llama-7b'\]: unknown model"),
        ("[models.smollm2]\ncoeffs = [1.0]", r"the config's own model \(smollm2\)"),
        ('models = "tiny-gemma3"', r"\[models\] must be a table of per-model tables"),
        ('[models."tiny-gemma3"]\nsettings = 3', r"settings"),
        ("[models]\ntiny-gemma3 = 3", r"must be a non-empty table"),
        ('[models."tiny-gemma3"]\nkind = "demo"', r"sets \['kind'\]"),
        ('[models."tiny-gemma3"]\nmodel = "smollm2"', r"sets \['model'\]"),
        ('[models."tiny-gemma3"]\ncoefs = [1.0]', r"\[models\.'tiny-gemma3'\]: .*coefs"),
        ('[models."tiny-gemma3"]\nlayers = [9]', r"\[models\.'tiny-gemma3'\]: .*9"),
    ],
)
def test_a_bad_per_model_table_is_one_line_before_any_model_loads(
    tmp_path, monkeypatch, capsys, table, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("actadd.models.load_model", no_model)
    # a table goes after the config's keys, a plain key before its first table
    text = SWEEP + "\n" + table if table.startswith("[") else table + "\n" + SWEEP
    (tmp_path / "c.toml").write_text(text + "\n")
    # the table is checked whichever model runs: as written too
    assert main(["run", "c.toml"]) == 2
    one_line(capsys, message)
    assert not (tmp_path / "results").exists()
