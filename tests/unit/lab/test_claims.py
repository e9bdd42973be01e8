"""Claims as code: evidence builders, Benjamini–Hochberg families, verdicts, the report,
the paper's masked perplexity, and the provenance rules of a reference run.

Kinds run on the tiny random Llama; every number a claim carries is recomputed here from
the saved table by a direct route.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import actadd
from actadd import ConfigError
from actadd.lab.claims import (
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    Paired,
    adjust,
    binary_claim,
    mean_claim,
)
from actadd.lab.kinds import get_kind
from actadd.lab.runner import run_experiment
from actadd.lab.runs import RunDir
from actadd.lab.stats import bh_adjust, mcnemar_exact, sign_flip_test

ROOT = Path(__file__).resolve().parents[3]


def paired(a, b, cluster) -> Paired:
    return Paired(np.asarray(a, float), np.asarray(b, float), np.asarray(cluster))


def test_binary_claim_counts_discordant_pairs_and_uses_mcnemar_in_scans():
    # 4 prompts × 4 samples: steered hits 7, unsteered 1; discordant 6:0
    a = [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0]
    b = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    cl = [i // 4 for i in range(16)]
    c = binary_claim(paired(a, b, cl), confirmatory=False, experiment="e", id="x", statement="s")
    assert c.estimate == pytest.approx(6 / 16)
    assert c.p == pytest.approx(mcnemar_exact(6, 0))
    assert "7/16 vs 1/16" in c.numbers and "discordant 6:0" in c.numbers
    assert "hits in 4 of 4 prompts" in c.numbers
    assert c.lo <= c.estimate <= c.hi
    conf = binary_claim(paired(a, b, cl), confirmatory=True, experiment="e", id="x", statement="s")
    # per-prompt differences 0.5, 0.5, 0.5, 0: sign flips reaching |1.5| are 2 of 16
    assert conf.p == pytest.approx(sign_flip_test([0.5, 0.5, 0.5, 0.0])) == pytest.approx(4 / 16)


def test_mean_claim_is_a_paired_difference():
    rng = np.random.default_rng(0)
    b = rng.normal(size=40)
    a = b + 0.5
    c = mean_claim(paired(a, b, np.arange(40) // 5), confirmatory=False, experiment="e", id="x",
                   statement="s")  # fmt: skip
    assert c.estimate == pytest.approx(0.5)
    assert c.lo == pytest.approx(0.5) and c.hi == pytest.approx(0.5)  # constant differences
    assert c.p == 0.0


def claim(p, est=1.0, family="f", **kw) -> Claim:
    base = dict(experiment="e", id=str(p), statement="s", lo=est, hi=est, test="t", n="1")
    return Claim(estimate=est, p=p, family=family, **{**base, **kw})


def test_adjust_applies_bh_within_each_family_and_judges_direction():
    claims = adjust([claim(0.01), claim(0.04), claim(0.03), claim(0.005), claim(0.04, family="g")])
    assert [c.p_adj for c in claims[:4]] == pytest.approx(bh_adjust([0.01, 0.04, 0.03, 0.005]))
    assert claims[4].p_adj == pytest.approx(0.04) and claims[4].family_size == 1
    assert all(c.verdict == SUPPORTED for c in claims)
    # the wrong sign is never supported, however small p is
    (c,) = adjust([claim(1e-9, est=-0.3, sign=1)])
    assert c.verdict == NOT_SUPPORTED
    (c,) = adjust([claim(1e-9, est=-0.3, sign=-1)])
    assert c.verdict == SUPPORTED
    # BH can turn a nominal p < 0.05 into NOT SUPPORTED
    out = adjust([claim(0.04), claim(0.5), claim(0.6)])
    assert out[0].p < 0.05 and out[0].verdict == NOT_SUPPORTED


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    inside = claim(0.9, est=0.02, lo=-0.05, hi=0.08, margin=0.1)
    straddle = claim(0.9, est=0.02, lo=-0.12, hi=0.08, margin=0.1)
    ok, bad = adjust([inside, straddle])
    assert ok.verdict == SUPPORTED and bad.verdict == NOT_SUPPORTED


# ---------------------------------------------------------------------- kinds on tiny runs

SWEEP = dict(
    model="tiny-llama",
    layers=[0, 2],
    coeffs=[1.0, 4.0],
    prompts=["I went up to my friend and said", "The cat sat on the"],
    target_words=["w", "e"],
    pairs=[{"positive": " wed", "negative": ""}],
    generation=dict(n_samples=3, max_new_tokens=4, topic_words=["we", "a"], sentiment=True),
)


@pytest.fixture(scope="module")
def word_count_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims") / "wc"
    config = dict(kind="word_count", name="wc", confirmatory=[{"layer": 2, "coeff": 4.0}], **SWEEP)
    run_experiment(config, out)
    return out


def test_sweep_claims_recompute_from_the_results_table(word_count_run):
    run = RunDir.existing(word_count_run)
    claims = adjust(get_kind("word_count").claims(run))
    conf = [c for c in claims if c.confirmatory]
    scans = [c for c in claims if not c.confirmatory]
    assert len(conf) == 1 and len(scans) == 3  # 4 cells: one confirmatory, three scanned
    assert {c.family for c in scans} == {"scan topic_any"} and scans[0].family_size == 3
    df = pd.read_parquet(word_count_run / "results.parquet")
    any_ = df[df.metric == "topic_any"]
    base = any_[any_.layer < 0].set_index(["text_index", "sample"]).value
    cell = any_[(any_.layer == 2) & (any_.coeff == 4.0)].set_index(["text_index", "sample"]).value
    b, c = int(((cell == 1) & (base == 0)).sum()), int(((cell == 0) & (base == 1)).sum())
    assert conf[0].estimate == pytest.approx(cell.mean() - base.mean())
    assert f"discordant {b}:{c}" in conf[0].numbers
    means = (cell - base).groupby(level=0).mean().to_numpy()
    assert conf[0].p == pytest.approx(sign_flip_test(means))
    assert conf[0].n == "6 pairs over 2 prompts"


def test_report_lists_every_claim_with_its_numbers(word_count_run, tmp_path):
    from actadd.lab.report import read_claims, write_report

    results = tmp_path / "results"
    results.mkdir()
    import shutil

    shutil.copytree(word_count_run, results / "wc")
    md, csv = write_report(results)
    table = read_claims(results)
    assert len(table) == 4 and set(table.verdict) <= {SUPPORTED, NOT_SUPPORTED}
    text = md.read_text()
    assert "## Confirmatory claims" in text
    for statement in table.statement:
        assert statement in text
    with pytest.raises(ConfigError, match="No run directories"):
        write_report(tmp_path / "empty")


# ---------------------------------------------------------------------- perplexity protocol


def test_masked_perplexity_scores_only_positions_the_vector_leaves_alone(tiny_llama, tmp_path):
    from actadd.studies.perplexity.kind import measure, parse, read_text_set

    spec = parse(dict(pair=[" wed", ""], layers=[1], coeffs=[2.0], texts="austen_sentences",
                      limit=2, prompting=True))  # fmt: skip
    corpus = read_text_set("austen_sentences", spec.words, 2)
    assert len(corpus) == 6 and set(corpus.group) == {"wedding", "adjacent", "unrelated"}
    table = measure(tiny_llama, spec, corpus)
    v = actadd.SteeringVector.from_pair(tiny_llama, " wed", "", 1)
    k = v.k
    prefix = tiny_llama.to_tokens(" wed", prepend_bos=False)[0]
    for i, text in enumerate(corpus.text):
        tokens = tiny_llama.to_tokens(text)
        scored = tokens[0, k:]  # tokens t >= k, predicted from positions k-1 ..

        def nll(logits, offset=0, tokens=tokens, scored=scored):
            lp = torch.log_softmax(logits[0].double(), -1)
            pos = torch.arange(k - 1, tokens.shape[1] - 1) + offset
            return float(-lp[pos, scored].mean())

        base = nll(tiny_llama(tokens))
        with actadd.steering(tiny_llama, v * 2.0):
            steered = nll(tiny_llama(tokens))
        prompted = torch.cat([tokens[:, :1], prefix[None], tokens[:, 1:]], 1)
        prompt = nll(tiny_llama(prompted), offset=len(prefix))
        rows = table[table.text_id == i].set_index("arm")
        assert rows.loc["actadd", "nll_unsteered"] == pytest.approx(base, abs=1e-4)
        assert rows.loc["actadd", "nll"] == pytest.approx(steered, abs=1e-4)
        assert rows.loc["prompt", "nll"] == pytest.approx(prompt, abs=1e-4)
        assert rows.loc["actadd", "ratio"] == pytest.approx(math.exp(steered - base), rel=1e-4)
        assert rows.loc["actadd", "n_scored"] == tokens.shape[1] - k


def test_masked_perplexity_counts_its_arms_on_a_progress_bar(tiny_llama, capsys):
    from actadd.studies.perplexity.kind import measure, parse, read_text_set

    spec = parse(dict(pair=[" wed", ""], layers=[1, 2], coeffs=[1.0, 2.0],
                      texts="austen_sentences", limit=1, prompting=True))  # fmt: skip
    corpus = read_text_set("austen_sentences", spec.words, 1)
    measure(tiny_llama, spec, corpus, progress=True)
    err = capsys.readouterr().err
    assert "perplexity" in err and "6/6" in err  # unsteered + 2 x 2 steered + prompting


def test_packaged_sentences_record_their_provenance():
    from actadd.studies.perplexity.kind import text_set_source

    src = text_set_source("austen_sentences")
    assert src["source"]["package"] == "r-cran-janeaustenr"
    assert len(src["sha256"]) == 64 and "public domain" in src["license"]
    doc = json.loads((ROOT / "actadd/data/austen_sentences.json").read_text())
    groups = pd.Series([s["group"] for s in doc["sentences"]]).value_counts()
    assert groups.min() >= 100  # enough sentences per group for an interval


# ---------------------------------------------------------------------- provenance


def test_suite_experiments_never_share_sampling_seeds():
    suite = [
        name
        for file in ("suite.toml", "analysis.toml")
        for name in tomllib.loads((ROOT / "experiments" / file).read_text())["experiments"]
    ]
    seeds = {}
    for name in suite:
        config = tomllib.loads((ROOT / f"experiments/{name}.toml").read_text())
        gen = config.get("generation")
        if gen is not None:
            seeds.setdefault(gen.get("seed", 0), []).append(name)
    shared = {s: names for s, names in seeds.items() if len(names) > 1}
    assert not shared, f"experiments share sampling seeds: {shared}"


def test_a_reference_suite_refuses_a_dirty_tree(tmp_path, monkeypatch, capsys):
    import actadd.lab.runinfo
    from actadd.cli import commands as cli

    monkeypatch.setattr(actadd.lab.runinfo, "git_revision", lambda *a, **k: "abc123+dirty")

    def no_run(*a, **k):
        raise AssertionError("a dirty tree must be refused before any experiment runs")

    monkeypatch.setattr(actadd.lab.runner, "run_config", no_run)
    monkeypatch.chdir(tmp_path)  # the reference results are ./results
    suite = str(ROOT / "experiments/suite.toml")
    assert cli.main(["suite", "--suite", suite]) == 2
    err = capsys.readouterr().err
    assert "abc123+dirty" in err and "--allow-dirty" in err and err.count("\n") == 1
    assert not (tmp_path / "results").exists()
    # a scratch results root or --quick is not a reference run: the check does not apply
    assert not cli.build_parser().parse_args(["suite", "--quick"]).allow_dirty


def test_a_direction_claim_needs_its_interval_clear_of_zero_too():
    # the test passes but the prompt-clustered interval reaches 0: not supported
    (c,) = adjust([claim(0.001, est=0.2, lo=-0.01, hi=0.4)])
    assert c.verdict == NOT_SUPPORTED
    (c,) = adjust([claim(0.001, est=0.2, lo=0.01, hi=0.4)])
    assert c.verdict == SUPPORTED
    (c,) = adjust([claim(0.001, est=-0.2, lo=-0.4, hi=0.02, sign=-1)])
    assert c.verdict == NOT_SUPPORTED
    # no interval (one prompt): the test decides
    (c,) = adjust([claim(0.001, est=0.2, lo=math.nan, hi=math.nan)])
    assert c.verdict == SUPPORTED


def test_alignment_claims_compare_front_with_back_on_the_same_seeds(tmp_path):
    config = dict(
        kind="alignment",
        name="align",
        **{**SWEEP, "aligns": ["front", "back"], "layers": [1], "generation": {
            **SWEEP["generation"], "n_samples": 4}},
    )  # fmt: skip
    run_experiment(config, tmp_path / "a")
    claims = get_kind("alignment").claims(RunDir.existing(tmp_path / "a"))
    fb = [c for c in claims if c.family == "front vs back"]
    assert len(fb) == 2  # one per coefficient
    df = pd.read_parquet(tmp_path / "a" / "results.parquet")
    t = df[(df.metric == "topic_any") & (df.coeff == 1.0)]
    front = t[t["align"] == "front"].set_index(["text_index", "sample"]).value
    back = t[t["align"] == "back"].set_index(["text_index", "sample"]).value
    c1 = next(c for c in fb if ":c1:" in c.id + ":")
    assert c1.estimate == pytest.approx(front.mean() - back.mean())


# ---------------------------------------------------------------------- too few prompts


def test_an_equivalence_verdict_on_fewer_than_five_prompts_is_not_assessed():
    # the interval fits the margin, but two prompts cannot carry an equivalence verdict
    (two,) = adjust([claim(0.9, est=0.02, lo=-0.05, hi=0.08, margin=0.1, clusters=2)])
    assert two.verdict == "NOT ASSESSED (2 prompts < 5)"
    (five,) = adjust([claim(0.9, est=0.02, lo=-0.05, hi=0.08, margin=0.1, clusters=5)])
    assert five.verdict == SUPPORTED
    # the Love-alone claim as the builders make it: two prompts of equal differences
    a = np.r_[np.full(8, 0.3), np.full(8, 0.35)]
    c = mean_claim(paired(a, a - 0.01, np.repeat([0, 1], 8)), confirmatory=False,
                   experiment="e", id="x", statement="s", margin=0.1)  # fmt: skip
    assert c.clusters == 2 and adjust([c])[0].verdict.startswith("NOT ASSESSED")


def test_a_one_prompt_cell_is_at_most_supported_conditional_on_that_prompt():
    from actadd.lab.claims import CONDITIONAL

    a, b = [1] * 12 + [0] * 4, [0] * 16
    c = binary_claim(paired(a, b, [0] * 16), confirmatory=False, experiment="e", id="x",
                     statement="s")  # fmt: skip
    assert c.clusters == 1 and math.isnan(c.lo) and "no interval (one prompt)" in c.test
    (judged,) = adjust([c])
    assert judged.p < 0.05 and judged.verdict == CONDITIONAL != SUPPORTED
    # a one-prompt cell whose test fails is NOT SUPPORTED, as any other
    weak = binary_claim(paired([1, 0, 0, 0], [0] * 4, [0] * 4), confirmatory=False,
                        experiment="e", id="y", statement="s")  # fmt: skip
    assert adjust([weak])[0].verdict == NOT_SUPPORTED


def test_two_prompts_get_a_t_interval_that_guards_the_verdict():
    # 16 samples on each of two prompts: McNemar (given the prompts) passes, but the two
    # prompts disagree, and the t interval over them (1 dof) reaches 0
    a = [1] * 14 + [0] * 2 + [1] * 4 + [0] * 12
    b = [0] * 32
    c = binary_claim(paired(a, b, np.repeat([0, 1], 16)), confirmatory=False, experiment="e",
                     id="x", statement="s")  # fmt: skip
    assert "t interval over 2 prompts" in c.test and c.clusters == 2
    assert c.p < 0.001 and c.lo < 0 < c.hi
    assert adjust([c])[0].verdict == NOT_SUPPORTED


def test_pairs_are_joined_by_key_and_a_repeated_key_is_refused():
    arm_a = pd.DataFrame(dict(text_index=[0, 0, 1], sample=[0, 1, 0], value=[1.0, 2.0, 3.0]))
    # B in another order and missing one row: the join pairs by key, not by position
    arm_b = pd.DataFrame(dict(text_index=[1, 0], sample=[0, 0], value=[30.0, 10.0]))
    p = Paired.join(arm_a, arm_b)
    assert sorted(zip(p.a, p.b)) == [(1.0, 10.0), (3.0, 30.0)]
    # two cells mixed into one arm (e.g. two pads): each seed would be paired twice
    mixed = pd.concat([arm_a, arm_a.assign(value=0.0)])
    with pytest.raises(ValueError, match="repeat a .* key"):
        Paired.join(mixed, arm_b)


def test_the_report_header_states_the_full_decision_rule(word_count_run, tmp_path):
    import shutil

    from actadd.lab.claims import DECISION_RULE
    from actadd.lab.report import write_report

    results = tmp_path / "results"
    results.mkdir()
    shutil.copytree(word_count_run, results / "wc")
    text = write_report(results)[0].read_text()
    head = text[: text.index("## Runs")]
    assert DECISION_RULE in head
    for part in ("Benjamini–Hochberg", "stated sign", "interval excludes 0", "t interval",
                 "conditional on one prompt", "NOT ASSESSED"):  # fmt: skip
        assert part in head, part
