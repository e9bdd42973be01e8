"""The replication table: verdict rules on hand-made claims, matching through a run's recorded
layer mapping, and planted errors (a wrong mapping, a flipped sign) that it catches."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from actadd.errors import ConfigError
from actadd.lab.replication import (
    INCONCLUSIVE,
    MODEL_SPECIFIC,
    REPLICATED,
    SUPPORTED,
    claim_key,
    coeff_map,
    layer_map,
    replicate,
    replicate_folders,
    replication_verdict,
    run_layer_maps,
)
from actadd.lab.retarget import RULE

NS = "NOT SUPPORTED"
WC = "word_count_confirm"


def claim(cid, est, lo, hi, verdict, *, exp=WC, family="confirmatory", sign=1, margin=math.nan):
    return dict(
        experiment=exp,
        id=cid,
        family=family,
        cite=f"{exp}:{cid}",
        estimate=est,
        lo=lo,
        hi=hi,
        verdict=verdict,
        sign=sign,
        margin=margin,
        confirmatory=family == "confirmatory",
    )


def row(*args, **kw):
    return pd.Series(claim("x:L1:c1", *args, **kw))


def verdict(a, b):
    return replication_verdict(a, b)[0]


def test_the_claims_verdict_constant_is_the_claims_module_s():
    from actadd.lab.claims import SUPPORTED as CLAIMS_SUPPORTED

    assert SUPPORTED == CLAIMS_SUPPORTED


def test_supported_on_both_in_the_same_direction_is_replicated():
    a = row(0.10, 0.02, 0.18, SUPPORTED)
    b = row(0.40, 0.30, 0.50, SUPPORTED)
    assert verdict(a, b) == REPLICATED


def test_supported_on_one_whose_interval_excludes_the_other_s_estimate_is_model_specific():
    a = row(0.00, 0.00, 0.00, NS)
    b = row(0.47, 0.33, 0.61, SUPPORTED)
    assert replication_verdict(a, b, ("small", "big")) == (
        MODEL_SPECIFIC,
        "supported on big only; its interval excludes the other's estimate",
    )
    # which interval: the supporting model's must exclude the other's estimate; the other's
    # interval holding the supporting estimate does not matter
    a_wide = row(0.05, -0.30, 0.90, NS)
    assert verdict(a_wide, b) == MODEL_SPECIFIC


def test_supported_on_one_whose_interval_holds_the_other_s_estimate_is_inconclusive():
    a = row(0.20, 0.08, 0.33, NS)
    b = row(0.20, 0.12, 0.28, SUPPORTED)
    assert replication_verdict(a, b) == (
        INCONCLUSIVE,
        "supported on B only; its interval holds the other's estimate",
    )


def test_supported_on_neither_is_inconclusive_even_with_disjoint_intervals():
    a = row(0.03, -0.15, 0.17, NS)
    b = row(5.69, 5.44, 5.94, NS)
    assert replication_verdict(a, b) == (INCONCLUSIVE, "supported on neither")


def test_a_sign_disagreement_is_never_replicated():
    # the other model moves the metric the other way: excluded by the supporting interval
    a = row(0.10, 0.02, 0.18, SUPPORTED)
    b = row(-0.20, -0.35, -0.05, NS)
    assert verdict(a, b) == MODEL_SPECIFIC
    # both SUPPORTED, stating opposite directions: a real difference between the models
    up = row(0.10, 0.02, 0.18, SUPPORTED, sign=1)
    down = row(-0.20, -0.35, -0.05, SUPPORTED, sign=-1)
    assert replication_verdict(up, down) == (
        MODEL_SPECIFIC,
        "supported on both, in opposite directions",
    )


def test_conditional_and_not_assessed_verdicts_are_not_supported():
    a = row(0.30, math.nan, math.nan, "SUPPORTED (conditional on one prompt)")
    b = row(0.30, 0.10, 0.50, SUPPORTED)
    assert verdict(a, b) == INCONCLUSIVE
    na = row(0.0, -0.05, 0.05, "NOT ASSESSED (2 prompts < 5)", margin=0.1)
    eq = row(0.0, -0.02, 0.02, SUPPORTED, margin=0.1)
    assert verdict(na, eq) == INCONCLUSIVE


def test_supported_without_an_interval_is_inconclusive():
    a = row(0.30, math.nan, math.nan, SUPPORTED)
    b = row(0.00, 0.00, 0.00, NS)
    assert replication_verdict(a, b)[1] == "supported on A only, without an interval"


def test_equivalence_supported_on_both_is_replicated_whatever_the_estimates_signs():
    a = row(-0.01, -0.04, 0.03, SUPPORTED, margin=0.1)
    b = row(0.02, -0.03, 0.06, SUPPORTED, margin=0.1)
    assert verdict(a, b) == REPLICATED


# ----------------------------------------------------------------------- layer mapping


def rule(layers, **extra):
    return {
        "rule": RULE,
        "from": {"model": "smollm2", "n_layers": 30},
        "to": {"model": "gemma3-270m", "n_layers": 18},
        "layers": layers,
        **extra,
    }


def test_the_layer_map_is_read_from_every_recorded_field():
    rec = rule(
        {
            "confirmatory.0.layer": {"from": 16, "to": 10},
            "layers": {"from": [2, 6, 16, 20], "to": [1, 4, 10, 12]},
            "coarse_layers": {"from": "0:30:10", "to": [0, 6, 12]},
        }
    )
    assert layer_map(rec) == {0: 0, 2: 1, 6: 4, 10: 6, 16: 10, 20: 12}


def test_a_mapping_that_merges_two_layers_is_read_by_the_rule():
    # the rule drops repeats: [1, 2] -> [1] cannot be read pair by pair
    assert layer_map(rule({"layers": {"from": [1, 2], "to": [1]}})) == {1: 1, 2: 1}
    everything = layer_map(rule({"layers": {"from": "all", "to": "all"}}))
    assert len(everything) == 30 and everything[29] == 17 and everything[16] == 10


def test_a_wrong_recorded_mapping_is_one_error_line():
    with pytest.raises(ConfigError, match=r"records layer 16 -> 9, but its rule maps 16 to 10"):
        layer_map(rule({"layers": {"from": [2, 16], "to": [1, 9]}}))
    with pytest.raises(ConfigError, match=r"neither pair by pair nor the rule's \[1\]"):
        layer_map(rule({"layers": {"from": [1, 2], "to": [2]}}))


def test_a_layer_a_per_model_override_sets_is_the_target_s_own():
    rec = rule(
        {"generation.layer": {"from": 16, "to": 10}, "layers": {"from": [16], "to": [10]}},
        overrides={"generation.layer": {"from": 10, "to": 9}},
    )
    # 16 now has two targets (10 by the rule, 9 by the override): matched to neither
    assert layer_map(rec) == {16: None}


def test_claim_keys_map_layers_and_ignore_label_spelling():
    old = "rank:target_logprob_delta:actadd_mean:'Love'-'Hate':L3:c24:all"
    new = "rank:target_logprob_delta:actadd_mean:Love − Hate:L2:c24:all"
    assert claim_key(old, {3: 2}) == claim_key(new)
    assert claim_key(old, {3: 2}) != claim_key(new.replace("c24", "c8"))
    assert claim_key("ppl_wedding:prompt:L-1:c1", {}) == claim_key("ppl_wedding:prompt:L-1:c1")
    assert claim_key(old, {4: 2}) is None  # a layer the run's record does not map


def test_coefficients_pair_through_a_per_model_table_by_their_place_in_the_list():
    # actadd coeffs wrote [models."gemma3-270m"] coeffs = [1.95, 5.95] for [1.0, 4.0]
    rule = {"overrides": {"coeffs": {"from": [1.0, 4.0], "to": [1.95, 5.95]}}}
    coeffs = coeff_map(rule)
    assert coeffs == {"1": "1.95", "4": "5.95"}
    base = "topic_any:' weddings'-'':L6:c4:front"
    assert claim_key(base, {6: 4}, coeffs) == claim_key("topic_any:' weddings' − '':L4:c5.95:front")
    # without the table's pairing the coefficient is as written, and the mapped claim is missed
    assert claim_key(base, {6: 4}) != claim_key("topic_any:' weddings' − '':L4:c5.95:front")
    # planted: the lists paired the other way round would match the wrong claim
    wrong = {"1": "5.95", "4": "1.95"}
    assert claim_key(base, {6: 4}, wrong) != claim_key("topic_any:' weddings' − '':L4:c5.95:front")
    # no pairing to read: lists of different length, repeats, or no override of coeffs
    assert coeff_map({"overrides": {"coeffs": {"from": [1.0, 4.0], "to": [2.0]}}}) == {}
    assert coeff_map({"overrides": {"coeffs": {"from": [1.0, 4.0], "to": [2.0, 2.0]}}}) == {}
    assert coeff_map({"overrides": {"settings.prompts": {"from": [], "to": []}}}) == {}
    # a part that only starts with "c" (a method, a word) is a label, not a coefficient
    assert claim_key("rank:caa:L3:c4", {3: 2}, coeffs) == ("rank", "caa", "L2", "c5.95")


# ----------------------------------------------------------------------------- the table


def tables():
    base = pd.DataFrame(
        [
            claim("topic_any:' weddings'-'':L16:c1:front", 0.07, 0.02, 0.13, SUPPORTED),
            claim("topic_any:' weddings'-'':L6:c4:front", 0.03, -0.02, 0.09, NS),
            claim("topic_any:' weddings'-'':L1:c1:front", 0.30, 0.1, 0.5, NS, family="scan"),
            claim("topic_any:' weddings'-'':L2:c1:front", 0.10, 0.0, 0.2, NS, family="scan"),
            claim("sink:L3", 0.5, 0.4, 0.6, SUPPORTED, exp="pad_confound", family="sink"),
        ]
    )
    other = pd.DataFrame(
        [
            claim("topic_any:' weddings' − '':L10:c1:front", 0.12, 0.08, 0.17, SUPPORTED),
            claim("topic_any:' weddings' − '':L4:c4:front", 0.52, 0.40, 0.63, SUPPORTED),
            # the raw layer 16 exists on the other model too: it must not be L16's partner
            claim("topic_any:' weddings' − '':L16:c1:front", -0.3, -0.4, -0.2, SUPPORTED),
            claim("topic_any:' weddings' − '':L1:c1:front", 0.20, 0.1, 0.3, NS, family="scan"),
        ]
    )
    maps = {WC: {16: 10, 6: 4, 1: 1, 2: 1}}
    return base, other, maps


def test_claims_are_matched_through_the_recorded_mapping_not_the_raw_layer():
    base, other, maps = tables()
    rep = replicate(base, other, maps, "smollm2", "gemma3-270m")
    conf = rep.rows[rep.rows.confirmatory].set_index("base_id")
    assert conf.loc["topic_any:' weddings'-'':L16:c1:front", "other_id"].endswith(":L10:c1:front")
    assert conf.replication.tolist() == [REPLICATED, MODEL_SPECIFIC]
    assert rep.counts() == {REPLICATED: 1, MODEL_SPECIFIC: 1, INCONCLUSIVE: 0}
    assert rep.rows.cite.iloc[0] == f"rep.gemma3-270m.{WC}:topic_any:' weddings'-'':L16:c1:front"


def test_merged_layers_share_the_other_model_s_claim():
    base, other, maps = tables()
    rep = replicate(base, other, maps, "smollm2", "gemma3-270m")
    scan = rep.rows[rep.rows.family == "scan"]
    assert len(scan) == 2 and set(scan.other_id) == {"topic_any:' weddings' − '':L1:c1:front"}
    assert scan.shared.tolist() == [2, 2]
    assert rep.rows[rep.rows.confirmatory].shared.tolist() == [1, 1]


def test_a_claim_on_one_model_only_is_no_row_but_is_counted():
    base, other, maps = tables()
    rep = replicate(base, other, maps, "smollm2", "gemma3-270m")
    assert "pad_confound" not in set(rep.rows.experiment)
    fam = rep.families.set_index("cite")
    assert fam.loc["pad/sink", ["rows", "only_base", "only_other", "base_supported"]].tolist() == [
        0,
        1,
        0,
        1,
    ]
    # the raw-L16 claim of the other model is nobody's partner
    assert fam.loc["wc/confirmatory", ["rows", "only_base", "only_other"]].tolist() == [2, 0, 1]
    # an experiment without a recorded mapping matches nothing
    none = replicate(base, other, {}, "smollm2", "gemma3-270m")
    assert none.rows.empty and none.families.only_base.sum() == len(base)


def test_planted_errors_change_the_table():
    base, other, maps = tables()
    good = replicate(base, other, maps, "a", "b").rows
    # a flipped sign on the other model: no longer replicated
    flipped = other.copy()
    flipped.loc[0, ["estimate", "lo", "hi"]] = [-0.12, -0.17, -0.08]
    flipped.loc[0, "verdict"] = NS
    bad = replicate(base, flipped, maps, "a", "b").rows
    assert good.replication.iloc[0] == REPLICATED and bad.replication.iloc[0] == MODEL_SPECIFIC
    # a wrong layer mapping pairs L16 with the other model's L16: the sign disagreement shows
    wrong = {WC: {**maps[WC], 16: 16}}
    bad = replicate(base, other, wrong, "a", "b").rows
    assert bad.other_id.iloc[0].endswith(":L16:c1:front")
    assert bad.replication.iloc[0] == MODEL_SPECIFIC


def write_run(root: Path, name: str, config: dict) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(json.dumps({"name": name, **config}))


def test_run_layer_maps_read_each_run_s_record_and_refuse_a_wrong_one(tmp_path):
    other = tmp_path / "gemma3-270m"
    write_run(other, WC, {"model": "gemma3-270m", "model_rule": rule(
        {"layers": {"from": [6, 16], "to": [4, 10]}})})  # fmt: skip
    write_run(other, "as_written", {"model": "gemma3-270m"})
    assert run_layer_maps(other, "smollm2") == {WC: {6: 4, 16: 10}}
    assert run_layer_maps(other, "gemma3-270m") == {}  # recorded from another model
    write_run(other, "planted", {"model": "gemma3-270m", "model_rule": rule(
        {"layers": {"from": [6, 16], "to": [4, 9]}})})  # fmt: skip
    with pytest.raises(ConfigError, match=r"planted/config.json: model_rule: layers records"):
        run_layer_maps(other, "smollm2")


def test_replicate_folders_reads_both_folders(tmp_path):
    base, other, _ = tables()
    base_dir, other_dir = tmp_path, tmp_path / "gemma3-270m"
    write_run(base_dir, WC, {})
    write_run(other_dir, WC, {"model": "gemma3-270m", "model_rule": rule(
        {"layers": {"from": [1, 2, 6, 16], "to": [1, 4, 10]}})})  # fmt: skip
    base.to_csv(base_dir / "claims.csv", index=False)
    other.to_csv(other_dir / "claims.csv", index=False)
    rep = replicate_folders(base_dir, other_dir)
    assert (rep.base, rep.other) == ("smollm2", "gemma3-270m")
    assert rep.counts() == {REPLICATED: 1, MODEL_SPECIFIC: 1, INCONCLUSIVE: 0}
    assert len(rep.rows) == 4


def test_the_module_imports_no_torch():
    code = "import sys, actadd.lab.replication; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    assert out.stdout.strip() == "False"


# ------------------------------------------------------ the report section and citations


def test_the_report_section_states_the_counts_and_every_confirmatory_row():
    from actadd.lab.report import replication_section

    base, other, maps = tables()
    rep = replicate(base, other, maps, "smollm2", "gemma3-270m")
    lines = replication_section(rep, Path("results"))
    assert lines[1] == (
        "## Replication on gemma3-270m: 1 replicated, 1 model-specific, 0 inconclusive of 2 "
        "confirmatory claims `[rep.gemma3-270m]`"
    )
    rows = [line for line in lines if line.startswith("| `[rep.gemma3-270m.")]
    assert len(rows) == 2 and "**replicated** (supported on both)" in rows[0]
    assert "| `[rep.gemma3-270m/pad/sink]` | 1 of 1 | 0 of 0 | 0 |" in "\n".join(lines)


PAGE = """<!-- findings -->
- One design replicates [rep.gemma3-270m.{c}] (replicated), the other does not
  [rep.gemma3-270m.{d}] (model-specific).
- Of the confirmatory claims [rep.gemma3-270m] 1 of 2 replicated, 1 model-specific.
- The scan family [rep.gemma3-270m/wc/scan] has 0 replicated.
<!-- /findings -->
"""

REP_PLANTS = {
    "flipped verdict": ("(model-specific)", "(replicated)", "the sentence says replicated"),
    "wrong count": (
        "1 of 2 replicated",
        "2 of 2 replicated",
        "'2 of 2', but 1 of its 2 rows are replicated",
    ),
    "wrong count word": ("1 model-specific", "0 model-specific", "'0 model-specific', but 1"),
    "unknown row": ("/wc/scan]", "/wc/scans]", "no replication row or family"),
}


def page():
    base, other, maps = tables()
    rep = replicate(base, other, maps, "smollm2", "gemma3-270m").rows
    c, d = (f"{WC}:{i}" for i in base.id[:2])
    return PAGE.format(c=c, d=d), rep


def test_replication_citations_are_checked_row_by_row_and_by_count():
    from actadd.lab.findings import check_findings

    text, rep = page()
    claims = pd.DataFrame(columns=["experiment", "id", "family", "cite", "verdict"])
    # the hand-made cites hold ':' and quotes; the checker resolves them as written
    assert check_findings(text, claims, rep) == []
    assert any("there is none" in p for p in check_findings(text, claims))


@pytest.mark.parametrize("plant", list(REP_PLANTS))
def test_errors_planted_in_replication_citations_are_caught(plant):
    from actadd.lab.findings import check_findings

    text, rep = page()
    old, new, caught = REP_PLANTS[plant]
    assert text.count(old) == 1
    claims = pd.DataFrame(columns=["experiment", "id", "family", "cite", "verdict"])
    problems = check_findings(text.replace(old, new), claims, rep)
    assert any(caught in p for p in problems), problems
