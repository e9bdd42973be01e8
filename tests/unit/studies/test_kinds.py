"""The paper-reproduction experiment kinds, end to end on the tiny random Llama.

Each kind runs on tiny sizes, writes config.json, env.json and its tables, and its figures
are redrawn from the saved tables alone (no model). Bad configs fail with ConfigError
before any compute. Numbers are checked against direct, unbatched computations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import actadd
from actadd import ConfigError
from actadd.lab.runner import figures_for, kind_of, read_config, run_experiment
from actadd.lab.stats import newcombe_interval, proportion_summary
from actadd.studies.token_injection.conditions import INJECTIONS

SWEEP_BASE = dict(
    model="tiny-llama",
    layers=[0, 2],
    coeffs=[1.0, 4.0],
    aligns=["front"],
    equalize=["right"],
    prompts=["I went up to my friend and said"],
    target_words=["w", "e"],
    pairs=[{"positive": " wed", "negative": ""}],
    generation=dict(n_samples=2, max_new_tokens=4, topic_words=["we", "a"], sentiment=True),
)
CLOZE = {
    "name": "tiny",
    "provenance": "test",
    "items": [
        {"category": "c", "prompt": "The capital of France is", "answer": "Paris"},
        {"category": "c", "prompt": "Two plus two is", "answer": "four"},
        {"category": "d", "prompt": "The sky is", "answer": "blue"},
    ],
}
CORPUS = dict(
    seed=0,
    n_per_topic=2,
    max_new_tokens=12,
    min_words=1,
    template="Essay about {topic}:",
    topics={"wedding": ["weddings"], "unrelated": ["ships", "bread"]},
)


def configs(tmp_path: Path) -> dict[str, dict]:
    cloze = tmp_path / "cloze.json"
    cloze.write_text(json.dumps(CLOZE))
    return {
        "word_count": dict(kind="word_count", name="wc", **SWEEP_BASE),
        "sentiment": dict(
            kind="sentiment",
            name="senti",
            **{**SWEEP_BASE, "pairs": [["Love", "Hate"], ["Happy", "Sad"]]},
        ),
        "failures": dict(
            kind="failures",
            name="fail",
            **{**SWEEP_BASE, "pairs": [["Anger", "Calm"], [" anger", " calm"]], "layers": [1]},
        ),
        "alignment": dict(
            kind="alignment",
            name="align",
            **{**SWEEP_BASE, "aligns": ["front", "offset:1:3", "back", "all"], "layers": [1]},
        ),
        "perplexity": dict(
            kind="perplexity",
            model="tiny-llama",
            pair=[" wed", ""],
            layers=[1, 3],
            coeffs=[0.0, 2.0],
            topic_words=["wed", "weddings"],
            corpus=CORPUS,
        ),
        "token_injection": dict(
            kind="token_injection",
            model="tiny-llama",
            concepts=dict(words=["a", "b", "c"], coeff=2.0, pad_token="z"),
            pairs=[
                {"name": "abx", "positive": "ab", "negative": "x", "coeff": 2.0, "target": ["a"]}
            ],
            settings=dict(
                prompts=["hello world there", "the quick brown fox"],
                neutral=[],
                layers=[0, 2],
                injections=list(INJECTIONS),
                transplant_sources=[0],
                null_draws_per_prompt=1,
                control_words=["k"],
            ),
            specificity=dict(layers=[1], null_words=["x", "y"], null_draws=2),
            generation=dict(
                pairs=["a"],
                layer=1,
                prompts=1,
                samples=2,
                max_new_tokens=3,
                topics={"a": ["a", "b"]},
            ),
        ),
        "capability": dict(
            kind="capability",
            model="tiny-llama",
            dataset=str(cloze),
            pairs=[[" wed", ""], ["Love", "Hate"]],
            layers=[0, 2],
            coeffs=[1.0, 8.0],
            topk=[1, 5],
        ),
        "pad_confound": dict(
            kind="pad_confound",
            model="tiny-llama",
            pad_tokens=[" ", "a", ".", "x"],
            layers=[0, 2],
            prompts=["I went up to my friend and said", "The cat sat on the mat"],
            control_words=["t", "r"],
            pairs=[
                dict(positive=" wed", negative="", coeff=2.0, target_words=["w", "e"]),
                dict(positive="Love", negative="Hatred", target_words=["l", "o"]),
            ],
            attention=dict(pair="' wed' − ''", pad_tokens=[" ", "a"], inject_layers=[1]),
            generation=dict(
                pair="' wed' − ''",
                pad_tokens=[" ", "a", "."],
                layers=[1, 2],
                prompts=["I went", "She said"],
                n_samples=2,
                max_new_tokens=4,
                topic_words=["we", "a"],
            ),
        ),
    }


TABLES = {
    "word_count": ["results.parquet", "results.csv", "completions.parquet", "summary.csv"],
    "sentiment": ["results.parquet", "completions.parquet", "summary.csv"],
    "failures": ["results.parquet", "summary.csv"],
    "alignment": ["results.parquet", "summary.csv"],
    "perplexity": ["corpus.csv", "perplexity.parquet", "perplexity.csv", "summary.csv"],
    "capability": ["items.csv", "results.parquet", "results.csv", "summary.csv"],
    "pad_confound": [
        "effects.parquet",
        "norms.csv",
        "surgery.csv",
        "attention_context.parquet",
        "attention_actadd.parquet",
        "pad_ranking.csv",
        "recommendation.json",
        "word_count.parquet",
        "completions.parquet",
    ],
    "token_injection": [
        "results.parquet",
        "null_draws.parquet",
        "specificity.csv",
        "specificity_nulls.parquet",
        "specificity_draws.parquet",
        "topic_rate.csv",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(TABLES))
def test_kind_runs_end_to_end_and_redraws_its_figures_without_a_model(kind, tmp_path, monkeypatch):
    config = configs(tmp_path)[kind]
    out = tmp_path / "run"
    run_experiment(config, out)

    assert json.loads((out / "config.json").read_text())["kind"] == kind
    assert "packages" in json.loads((out / "env.json").read_text())
    for table in TABLES[kind]:
        assert (out / table).stat().st_size > 0, table
    if kind == "token_injection":  # the per-row tables are Parquet only (tens of MB as CSV)
        assert not list(out.glob("results.csv")) and not list(out.glob("*draws.csv"))
    first = sorted(p.name for p in (out / "figures").iterdir())
    assert first and {Path(p).suffix for p in first} == {".png", ".pdf"}

    for p in (out / "figures").iterdir():
        p.unlink()

    def no_model(*a, **k):
        raise AssertionError("figures must not load a model")

    # actadd.load_model first: actadd is lazy, and reading it after actadd.models is
    # patched would cache (and later "restore") the patch
    monkeypatch.setattr(actadd, "load_model", no_model)
    monkeypatch.setattr(actadd.models, "load_model", no_model)
    paths = figures_for(out)
    assert sorted(Path(p).name for p in paths) == first
    assert all(Path(p).stat().st_size > 1000 for p in paths)


def test_rerun_without_resume_is_refused_for_every_kind(tmp_path):
    for kind, config in configs(tmp_path).items():
        out = tmp_path / kind
        out.mkdir()
        (out / "config.json").write_text(json.dumps({"kind": kind}))
        with pytest.raises(ConfigError, match="already holds a run"):
            run_experiment(config, out)


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("word_count", {"generation": None}, r"needs a \[generation\] table"),
        ("sentiment", {"generation": {"sentiment": False}}, "sentiment = true"),
        ("word_count", {"layers": [0, 9]}, r"layers \[9\] out of range"),
        ("alignment", {"aligns": ["middle"]}, "align 'middle'"),
        ("capability", {"pairs": []}, "non-empty list of"),
        ("capability", {"layers": [7]}, r"layers \[7\] out of range"),
        ("capability", {"coeffs": ["big"]}, "is not a number"),
        ("capability", {"dataset": "no_such_set"}, "No cloze set"),
        ("capability", {"align": "all"}, "align 'all' is not supported"),
        ("capability", {"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ("perplexity", {"corpus": None}, "needs exactly one text source"),
        ("perplexity", {"texts": "austen_sentences"}, "needs exactly one text source"),
        ("perplexity", {"corpus": None, "texts": "gutenberg"}, "texts .gutenberg. unknown"),
        ("perplexity", {"corpus": None, "texts": "austen_sentences", "limit": -1}, "limit must be"),
        ("perplexity", {"prompting": "yes"}, "prompting must be true or false"),
        (
            "word_count",
            {"confirmatory": [{"layer": 0, "coeff": 3.0}]},
            r"coeff 3.0 is not in coeffs",
        ),
        ("word_count", {"confirmatory": [{"layer": 5, "coeff": 1.0}]}, r"layer 5 is not in layers"),
        ("word_count", {"confirmatory": [{"layer": 0, "coeff": 1.0, "p": 1}]}, r"unknown key"),
        (
            "word_count",
            {"confirmatory": [{"layer": 0, "coeff": 1.0, "metric": "kl"}]},
            "metric must be",
        ),
        ("perplexity", {"corpus": {**CORPUS, "template": "no slot"}}, "must contain '{topic}'"),
        ("perplexity", {"corpus": {**CORPUS, "topics": {"a": []}}}, "non-empty list of strings"),
        ("perplexity", {"topic_words": "bananas"}, "unknown preset 'bananas'"),
        ("perplexity", {"layers": [5]}, r"layers \[5\] out of range"),
        ("pad_confound", {"pad_tokens": [" ", "ab"]}, r"pad_tokens: pad_token 'ab' is 2 tokens"),
        ("pad_confound", {"pad_tokens": [" ", " "]}, r"given more than once"),
        ("pad_confound", {"reference_pad": "z"}, r"reference_pad 'z' must be one of pad_tokens"),
        ("pad_confound", {"layers": [0, 9]}, r"layers \[9\] out of range"),
        ("pad_confound", {"pairs": [["Love", "Hate"]]}, r"pairs\[0\] must be a table"),
        (
            "pad_confound",
            {
                "pairs": [dict(positive="ab", negative="cd", target_words=["w"])],
                "attention": None,
                "generation": None,
            },
            "has prompts of one length",
        ),
        ("pad_confound", {"control_words": ["table"]}, "'table' is not a single token"),
        ("pad_confound", {"prompts": ["I went up to my friend and said"]}, "at least 2"),
        ("pad_confound", {"prompts": ["Hi", "Hello"]}, "shorter than the longest pair"),
        ("pad_confound", {"surgery": {"methods": ["scrub"]}}, r"\[surgery\] methods"),
        ("pad_confound", {"surgery": {"pad_tokens": ["q"]}}, r"must also be in pad_tokens"),
        ("pad_confound", {"attention": {"pair": "nope"}}, r"\[attention\] pair 'nope'"),
        ("pad_confound", {"generation": {"pad_tokens": ["a"]}}, "must include the reference_pad"),
        (
            "pad_confound",
            {"generation": {"n_samples": 0}},
            r"n_samples must be an integer in 1\.\.1000",
        ),
        ("token_injection", {"specificity": {"null_words": ["a"]}}, "repeat concept target"),
        ("token_injection", {"generation": {"pairs": ["nope"]}}, "unknown pairs"),
        ("token_injection", {"settings": {"transplant_norm": "x"}}, "transplant_norm"),
        ("token_injection", {"settings": {"prompts": "data:nope"}}, "no file"),
        ("token_injection", {"settings": {"prompts": "data:token_injection_prompts:0"}}, ":N"),
        (
            "token_injection",
            {"settings": {"prompts": ["hi", "the quick brown fox"]}},
            r"needs a prompt longer than it.*too short: 'hi' \(\d\) for pair 'abx' \(\d\)",
        ),
    ],
)
def test_bad_configs_fail_with_a_clear_message(kind, change, message, tmp_path, monkeypatch):
    config = configs(tmp_path)[kind]
    for key, value in change.items():
        if value is None:
            config.pop(key)
        elif isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value

    def no_compute(*a, **k):
        raise AssertionError("validation must come before compute")

    # models may load (layer ranges need n_layers), but no metric is computed
    from actadd.studies.capability import kind as capability
    from actadd.studies.pad_confound import analysis as pads
    from actadd.studies.perplexity import kind as perplexity
    from actadd.sweeps import engine

    monkeypatch.setattr(capability, "evaluate", no_compute)
    monkeypatch.setattr(perplexity, "write_corpus", no_compute)
    monkeypatch.setattr(engine, "generate_tokens", no_compute)
    monkeypatch.setattr(pads, "effect_rows", no_compute)
    from actadd.studies.token_injection import comparison

    monkeypatch.setattr(comparison, "PromptBatch", no_compute)
    with pytest.raises(ConfigError, match=message):
        run_experiment(config, tmp_path / "out")


PAPER_EXPERIMENTS = (
    "wedding_word_count",
    "wedding_perplexity",
    "sentiment",
    "capability",
    "failure_cases",
    "alignment",
    "pad_confound",
)


def test_shipped_paper_configs_parse_with_and_without_quick():
    root = Path(__file__).resolve().parents[3] / "experiments"
    for name in PAPER_EXPERIMENTS:
        path = root / f"{name}.toml"
        for quick in (False, True):
            config = read_config(path, quick)
            kind_of(config)  # a known kind
            kind_of(config).parse({k: v for k, v in config.items() if k != "kind"})
            if config["kind"] in ("word_count", "sentiment", "failures", "alignment"):
                from actadd.sweeps import SweepSpec

                SweepSpec.from_dict({k: v for k, v in config.items() if k != "kind"})


def test_capability_scores_equal_a_direct_unbatched_forward(tiny_llama):
    from actadd.studies.capability.kind import evaluate, items_table, parse

    config = parse(
        dict(pairs=[["Love", "Hate"]], layers=[1, 3], coeffs=[2.0, -1.0], topk=[1], model=None)
    )
    items = items_table(tiny_llama, CLOZE, 0)
    df = evaluate(tiny_llama, config, items)
    assert len(df) == len(items) * (1 + 2 * 2)
    for _, row in df.iterrows():
        tokens = tiny_llama.to_tokens(items.prompt[row["item"]])
        if row.layer < 0:
            logits = tiny_llama(tokens)[0, -1]
        else:
            v = actadd.SteeringVector.from_pair(tiny_llama, "Love", "Hate", int(row.layer))
            with actadd.steering(tiny_llama, v * row.coeff):
                logits = tiny_llama(tokens)[0, -1]
        lp = torch.log_softmax(logits, -1)
        answer = items.answer_id[row["item"]]
        assert row.logprob == pytest.approx(float(lp[answer]), abs=1e-4)
        assert row["rank"] == int((lp > lp[answer]).sum())


@pytest.mark.slow
def test_perplexity_ratio_is_one_at_zero_coefficient(tmp_path):
    config = configs(tmp_path)["perplexity"]
    out = tmp_path / "ppl"
    run_experiment(config, out)
    table = pd.read_parquet(out / "perplexity.parquet")
    zero = table[table.coeff == 0.0]
    np.testing.assert_allclose(zero.ratio, 1.0, rtol=1e-5)
    assert not np.allclose(table[table.coeff == 2.0].ratio, 1.0)
    corpus = pd.read_csv(out / "corpus.csv")
    assert set(corpus.group) == {"wedding", "unrelated"} and len(corpus) == 6
    # resuming reuses the saved corpus instead of writing a new one
    (out / "perplexity.parquet").unlink()
    from actadd.studies.perplexity import kind as perplexity

    def no_corpus(*a, **k):
        raise AssertionError("the saved corpus must be reused")

    orig = perplexity.write_corpus
    perplexity.write_corpus = no_corpus
    try:
        run_experiment(config, out, resume=True)
    finally:
        perplexity.write_corpus = orig
    pd.testing.assert_frame_equal(pd.read_parquet(out / "perplexity.parquet"), table)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Table II example (56/70 vs 48/80): 0.0524 to 0.3339
    lo, hi = newcombe_interval(56, 70, 48, 80)
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)
    assert newcombe_interval(0, 10, 0, 10)[0] < 0 < newcombe_interval(0, 10, 0, 10)[1]


def test_proportion_summary_counts_cells_and_compares_with_unsteered():
    rows = [
        dict(pair="(unsteered)", pad="", layer=-1, coeff=0.0, align="none", value=v)
        for v in (0, 0, 1, 0)
    ]
    rows += [
        dict(pair="p", pad="right", layer=1, coeff=2.0, align="front", value=v)
        for v in (1, 1, 1, 0)
    ]
    df = pd.DataFrame(rows).assign(metric="topic_any")
    s = proportion_summary(df).set_index("layer")
    assert s.loc[1, "successes"] == 3 and s.loc[1, "n"] == 4 and s.loc[-1, "frac"] == 0.25
    assert s.loc[1, "diff"] == pytest.approx(0.5)
    assert s.loc[1, "lo"] < 0.75 < s.loc[1, "hi"]
    assert (s.loc[1, "diff_lo"], s.loc[1, "diff_hi"]) == pytest.approx(
        newcombe_interval(3, 4, 1, 4)
    )


@pytest.mark.slow
def test_token_injection_claims_against_controls_are_computed_from_its_tables(tmp_path):
    from actadd.lab.claims import adjust
    from actadd.lab.kinds import get_kind
    from actadd.lab.runs import RunDir

    out = tmp_path / "ti"
    run_experiment(configs(tmp_path)["token_injection"], out)
    claims = adjust(get_kind("token_injection").claims(RunDir.existing(out)))
    ids = {c.id.split(":")[0] for c in claims}
    assert {
        "target_vs_control",
        "representation_gap",
        "early-layer_visibility_gap",
        "like_tokens_beyond_null",
        "specific",
        "topic_rate",
    } <= ids
    assert all(c.verdict for c in claims)
    spec = [c for c in claims if c.id.startswith("specific:words:a:L1")]
    assert len(spec) == 1 and "2 draws" in spec[0].statement
