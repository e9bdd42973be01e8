"""``actadd coeffs``: a confirmatory cell's coefficient mapped to another model so that the
vector it adds is the same size relative to the residual stream there,
``c' = c × r_source(L) / r_target(L')``, checked against a hand computation (TransformerLens's
own cache, not the library's forwards); the table ``--write`` adds is read back through the
``--model`` rule and runs; bad input is one line before any model loads; planted errors (a
ratio at the unmapped layer, a wrong value written) are caught."""

from __future__ import annotations

import re
import statistics
import tomllib
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from actadd.cli import main
from actadd.errors import ConfigError
from actadd.lab.retarget import DEPTHS, RULE_KEY, for_model, map_layer
from actadd.lab.runner import read_config
from actadd.runtime.tokens import encode, pair_token_ids
from actadd.sweeps import coeff_plan, coeff_table, coeffmap
from actadd.sweeps.coeff_plan import mapped_table, plan_coeffs
from actadd.sweeps.coeffmap import map_coeffs, prompt_resid_norms

ROOT = Path(__file__).resolve().parents[3]
PROMPTS = ["I went up to my friend and said", "Yesterday after work I", "The news was"]
# two pairs (one padded with " " on the right), an "all" cell (its mean row is what it adds)
CONFIG = """kind = "sweep"
model = "tiny-llama"
layers = [1, 3]
coeffs = [2.0, 5.0]
aligns = ["front", "all"]
prompts = ["I went up to my friend and said", "Yesterday after work I", "The news was"]
target_words = ["w"]
neutral_texts = []
confirmatory = [
    { pair = "weddings", layer = 3, coeff = 5.0, alternative = "greater" },
    { pair = "love", layer = 1, coeff = 2.0 },
    { pair = "love", layer = 3, coeff = 2.0, align = "all" },
]

[[pairs]]
positive = " weddings"
negative = ""
label = "weddings"

[[pairs]]
positive = "Love"
negative = "Hate"
label = "love"
"""
PAIRS = {"weddings": (" weddings", ""), "love": ("Love", "Hate")}


def hand_r(model, pair: str, layer: int, one_row: bool = False) -> float:
    """r by hand: the RMS row norm (rows after the leading one; their mean for a one-row
    cell) of h_L(+) − h_L(−), over the median ‖h_L‖ at the prompts' positions after the
    leading token, from TransformerLens's cache."""
    name = f"blocks.{layer}.hook_resid_pre"
    pos, neg = pair_token_ids(model, *PAIRS[pair], "right", " ")
    h = [model.run_with_cache(torch.tensor([ids]))[1][name][0].double() for ids in (pos, neg)]
    rows = (h[0] - h[1])[1:]
    rows = rows.mean(0, keepdim=True) if one_row else rows
    vector = float(rows.norm(dim=-1).square().mean().sqrt())
    norms: list[float] = []
    for p in PROMPTS:
        _, cache = model.run_with_cache(torch.tensor([encode(model, p, prepend_bos=True)]))
        norms += cache[name][0, 1:].double().norm(dim=-1).tolist()
    return vector / statistics.median(norms)


def check_by_hand(cells, source_model, target_model) -> None:
    """Every cell's r on both models, its mapped layer and coefficient, as by hand."""
    n = DEPTHS["tiny-gemma3"]
    for c in cells:
        layer, one_row = c.cell["layer"], c.cell.get("align") == "all"
        assert c.target.layer == map_layer(layer, DEPTHS["tiny-llama"], n)
        r_s = hand_r(source_model, c.cell["pair"], layer, one_row)
        r_t = hand_r(target_model, c.cell["pair"], c.target.layer, one_row)
        assert c.source.r == pytest.approx(r_s, rel=1e-6)
        assert c.target.r == pytest.approx(r_t, rel=1e-6)
        assert c.exact == pytest.approx(c.coeff * r_s / r_t, rel=1e-6)
        assert c.target_coeff == float(f"{c.coeff * r_s / r_t:.3g}")


def test_the_typical_residual_norm_is_the_median_over_the_prompts_after_the_leading_token(
    tiny_llama,
):
    norms = prompt_resid_norms(tiny_llama, PROMPTS, [0, 2])
    for layer, value in norms.items():
        pooled = []
        for p in PROMPTS:
            ids = torch.tensor([encode(tiny_llama, p, prepend_bos=True)])
            cache = tiny_llama.run_with_cache(ids)[1]
            pooled += cache[f"blocks.{layer}.hook_resid_pre"][0, 1:].norm(dim=-1).tolist()
        assert value == pytest.approx(statistics.median(pooled), rel=1e-6)


def test_each_cell_is_mapped_by_the_ratio_of_r_on_the_two_models_as_by_hand(
    tmp_path, tiny_llama, tiny_gemma3
):
    (tmp_path / "c.toml").write_text(CONFIG)
    plan = plan_coeffs(read_config(tmp_path / "c.toml"), "tiny-gemma3")
    cells = map_coeffs(plan, tiny_llama, tiny_gemma3)
    assert [c.label for c in cells] == ["weddings", "love", "love"]
    check_by_hand(cells, tiny_llama, tiny_gemma3)
    # one residual yardstick per layer: the "all" cell (its mean row) and the L3 cell share it
    assert cells[2].source.resid_norm == cells[0].source.resid_norm
    table = mapped_table(cells)
    assert table["coeffs"] == sorted({c.target_coeff for c in cells})
    assert table["confirmatory"][0] == {
        "pair": "weddings",
        "layer": 3,
        "coeff": cells[0].target_coeff,
        "alternative": "greater",
    }


def test_a_ratio_measured_at_the_unmapped_layer_is_caught(
    tmp_path, monkeypatch, tiny_llama, tiny_gemma3
):
    # a tiny-gemma3 of 2 blocks by the rule's table: L3 of 4 maps to L2, so the layers differ
    monkeypatch.setitem(DEPTHS, "tiny-gemma3", 2)
    (tmp_path / "c.toml").write_text(CONFIG)
    config = read_config(tmp_path / "c.toml")
    cells = map_coeffs(plan_coeffs(config, "tiny-gemma3"), tiny_llama, tiny_gemma3)
    assert [c.target.layer for c in cells] == [2, 1, 2]
    check_by_hand(cells, tiny_llama, tiny_gemma3)
    # planted: the rule's layer mapping not applied to the target's cells
    real = coeff_plan.for_model

    def unmapped(config, model, where="config"):
        out = real(config, model, where)
        out["layers"], out["confirmatory"] = config["layers"], config["confirmatory"]
        return out

    with monkeypatch.context() as m:
        m.setattr(coeff_plan, "for_model", unmapped)
        wrong = map_coeffs(plan_coeffs(config, "tiny-gemma3"), tiny_llama, tiny_gemma3)
    with pytest.raises(AssertionError, match="map_layer"):
        check_by_hand(wrong, tiny_llama, tiny_gemma3)
    # planted: the mapped layers reported, but the target's r measured at the source's layers
    plan, measure = plan_coeffs(config, "tiny-gemma3"), coeffmap.cell_ratios

    def at_source_layers(model, spec):
        if model is not tiny_gemma3:
            return measure(model, spec)
        ratios = measure(model, plan.source_spec)
        return [replace(r, layer=c["layer"]) for r, c in zip(ratios, spec.confirmatory)]

    monkeypatch.setattr(coeffmap, "cell_ratios", at_source_layers)
    wrong = map_coeffs(plan, tiny_llama, tiny_gemma3)
    assert [c.target.layer for c in wrong] == [2, 1, 2]
    with pytest.raises(AssertionError, match="±"):
        check_by_hand(wrong, tiny_llama, tiny_gemma3)


def coeffs(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["coeffs", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_write_adds_a_table_that_the_model_rule_reads_back_and_a_run_uses(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    Path("c.toml").write_text(CONFIG)
    code, out, _ = coeffs(capsys, "c.toml", "--model", "tiny-gemma3", "--write")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "c.toml: 3 confirmatory cells, tiny-llama -> tiny-gemma3"
    assert re.match(r"weddings  L3 -> L3  r [\d.]+ on tiny-llama .* c 5 -> [\d.]+$", lines[1])
    assert len(lines) == 5 and lines[4].startswith('wrote [models."tiny-gemma3"]')
    text = Path("c.toml").read_text()
    assert text.startswith(CONFIG)  # the config as written, then the table
    assert "# >>> actadd coeffs: tiny-gemma3" in text and "r(L) = RMS row norm" in text
    assert all(line[2:] in text for line in lines[1:4])  # each cell's r in the comment
    new = [float(x) for x in re.findall(r"c [\d.]+ -> ([\d.]+)$", out, re.M)]
    on = for_model(read_config("c.toml"), "tiny-gemma3", "c.toml")
    assert [c["coeff"] for c in on["confirmatory"]] == new
    assert on["coeffs"] == sorted(set(new))
    overrides = on[RULE_KEY]["overrides"]
    assert overrides["coeffs"] == {"from": [2.0, 5.0], "to": sorted(set(new))}
    assert [c["coeff"] for c in overrides["confirmatory"]["from"]] == [5.0, 2.0, 2.0]
    assert for_model(read_config("c.toml"), None)["coeffs"] == [2.0, 5.0]  # as written
    # a rerun replaces the block in place: the same text (same day, same models)
    assert coeffs(capsys, "c.toml", "--model", "tiny-gemma3", "--write")[0] == 0
    assert Path("c.toml").read_text() == text
    # the run on the target model steers its cells at the written coefficients
    assert main(["run", "c.toml", "--model", "tiny-gemma3", "--out", "run"]) == 0
    results = pd.read_parquet("run/results.parquet")
    steered = results[results.layer == 3]
    assert set(steered.coeff) == set(on["coeffs"])


def test_a_table_for_the_target_already_in_the_file_gets_the_keys_under_its_header(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    table = '[models."tiny-gemma3"]\nprompts = ["A fresh prompt for the target", "And another"]\n'
    Path("c.toml").write_text(CONFIG + "\n" + table + "\n[quick]\nprompts = ['q']\n")
    plan = plan_coeffs(read_config("c.toml"), "tiny-gemma3", "c.toml")
    assert plan.target_spec.prompts == ("A fresh prompt for the target", "And another")
    assert coeffs(capsys, "c.toml", "--model", "tiny-gemma3", "--write")[0] == 0
    written = tomllib.loads(Path("c.toml").read_text())
    assert set(written["models"]["tiny-gemma3"]) == {"prompts", "coeffs", "confirmatory"}
    assert written["quick"] == {"prompts": ["q"]}
    # keys of its own that the rule writes are refused, the file left alone
    Path("c.toml").write_text(CONFIG + "\n" + table + "coeffs = [1.0, 2.0, 5.0]\n")
    before = Path("c.toml").read_text()
    code, _, err = coeffs(capsys, "c.toml", "--model", "tiny-gemma3", "--write")
    assert code == 2 and len(err.splitlines()) == 1 and "outside the marked block" in err
    assert Path("c.toml").read_text() == before


def test_a_wrong_value_written_is_caught_and_the_file_left_as_it_was(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("c.toml").write_text(CONFIG)
    real = coeff_table._value
    # planted: the TOML writer doubles every float (the coefficients)
    monkeypatch.setattr(
        coeff_table, "_value", lambda v: real(2 * v) if isinstance(v, float) else real(v)
    )
    code, _, err = coeffs(capsys, "c.toml", "--model", "tiny-gemma3", "--write")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "not written (the file is unchanged)" in err and "would not run" in err
    assert Path("c.toml").read_text() == CONFIG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]  # no temporary file left


def no_model(*a, **k):
    raise AssertionError("a model was loaded for input that needs none to be refused")


@pytest.mark.parametrize(
    ("config", "model", "message"),
    [
        (CONFIG.split("confirmatory")[0] + "\n[[pairs]]\npositive = 'a'\nnegative = 'b'\n",
         "tiny-gemma3", r"no confirmatory cells .*nothing to map"),
        (CONFIG, "llama-7b", r"unknown model 'llama-7b': --model takes one of"),
        (CONFIG, "tiny-llama", r"written for tiny-llama: --model must name another model"),
        ('coeff_mode = "relative"\n' + CONFIG, "tiny-gemma3", r"coeff_mode = 'relative'"),
        (CONFIG.replace('"tiny-llama"', '"my.gguf"'), "tiny-gemma3", r"'my.gguf' is not one"),
        (CONFIG.replace("layer = 3, coeff = 5.0", "layer = 3, coeff = 7.0"), "tiny-gemma3",
         r"coeff 7.0 is not in coeffs"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_any_model_loads(
    tmp_path, monkeypatch, capsys, config, model, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("actadd.models.load_model", no_model)
    Path("c.toml").write_text(config)
    code, out, err = coeffs(capsys, "c.toml", "--model", model, "--write")
    assert code == 2 and not out
    assert len(err.splitlines()) == 1 and err.startswith("actadd: error:"), err
    assert re.search(message, err), err
    assert Path("c.toml").read_text() == config


def test_a_config_of_another_kind_is_refused_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr("actadd.models.load_model", no_model)
    path = ROOT / "experiments" / "wedding_perplexity.toml"
    code, _, err = coeffs(capsys, str(path), "--model", "gemma3-270m")
    assert code == 2 and len(err.splitlines()) == 1
    assert "is a 'perplexity' config: coefficients are mapped for sweep configs" in err


def test_the_plan_needs_no_model_and_keeps_the_cells_in_order(tmp_path):
    (tmp_path / "c.toml").write_text(CONFIG)
    plan = plan_coeffs(read_config(tmp_path / "c.toml"), "gemma3-270m")
    assert (plan.source, plan.target) == ("tiny-llama", "gemma3-270m")
    assert [c["layer"] for c in plan.target_spec.confirmatory] == [
        map_layer(c["layer"], 4, 18) for c in plan.source_spec.confirmatory
    ]
    with pytest.raises(ConfigError, match="unknown model"):
        plan_coeffs(read_config(tmp_path / "c.toml"), "gpt-5")
