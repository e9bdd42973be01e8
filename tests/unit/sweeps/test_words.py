"""A sweep's word lists are never a silent default: given, derived from the pairs (and said
so), or refused in one line; printed at the start of the run and named in every table that
uses them, with the prompt text beside ``text_index``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from actadd.config import WEDDING_WORDS, words
from actadd.errors import ConfigError
from actadd.lab.retarget import for_model
from actadd.lab.runner import kind_of, read_config
from actadd.sweeps import run_sweep
from actadd.sweeps.spec import SweepSpec
from actadd.sweeps.words import WORD_COLUMNS, lines

ROOT = Path(__file__).resolve().parents[3]
CATS = dict(
    name="cats",
    pairs=[[" cats", " dogs"]],
    layers=[1],
    coeffs=[2.0],
    prompts=["I went up to my friend and said"],
)
GEN = {"n_samples": 2, "max_new_tokens": 3}


def test_cats_minus_dogs_without_target_words_is_refused_in_one_line_naming_key_and_presets():
    with pytest.raises(ConfigError) as caught:
        SweepSpec.from_dict(CATS)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("target_words is not set")
    assert "' cats' − ' dogs'" in message and "anger, love, weddings" in message
    assert "strict" not in message


def test_cats_minus_dogs_without_topic_words_is_refused_naming_the_generation_key():
    with pytest.raises(ConfigError, match=r"^generation\.topic_words is not set.*weddings"):
        SweepSpec.from_dict({**CATS, "target_words": ["cat", "cats"], "generation": GEN})


def test_the_refusal_comes_from_a_toml_before_torch_is_imported(tmp_path):
    config = tmp_path / "cats.toml"
    config.write_text(
        'name = "cats"\nlayers = [1]\ncoeffs = [2.0]\nprompts = ["Hi"]\n'
        '[[pairs]]\npositive = " cats"\nnegative = " dogs"\n'
    )
    code = (
        "import sys\nfrom actadd.sweeps.spec import SweepSpec\n"
        f"try:\n    SweepSpec.from_toml({str(config)!r})\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.splitlines()
    assert out[0].startswith("ConfigError target_words is not set")
    assert out[1] == "False"


@pytest.mark.parametrize(
    "pairs, preset",
    [
        ([[" weddings", ""]], "weddings"),
        ([["Love", "Hate"]], "love"),
        ([["Anger", "Calm"], {"positive": " anger", "negative": " calm", "label": "lc"}], "anger"),
    ],
)
def test_a_pair_whose_positive_word_is_in_one_preset_derives_it_and_says_so(pairs, preset):
    s = SweepSpec.from_dict({**CATS, "pairs": pairs, "generation": GEN})
    assert s.target_words == preset and s.generation.topic_words == preset
    assert s.derived_words == ("target_words", "generation.topic_words")
    said = lines(s)
    assert len(said) == 2 and all("derived from the pair" in x for x in said)
    assert f"preset {preset!r} = " + ", ".join(words(preset)) in said[0]
    # config.json holds the derived name (as the old default wrote it), not the note
    assert s.to_dict()["target_words"] == preset and "derived_words" not in s.to_dict()
    assert SweepSpec.from_dict(s.to_dict()).to_dict() == s.to_dict()


@pytest.mark.parametrize(
    "pairs",
    [
        [["I talk about weddings constantly", "I do not talk about weddings constantly"]],
        [[" weddings", ""], ["Love", "Hate"]],  # two presets: no single list
        [[" cat", " dog"]],  # one word, in no preset
        [[" ", "Hate"]],
    ],
)
def test_no_guess_from_longer_prompts_or_mixed_pairs(pairs):
    with pytest.raises(ConfigError, match="target_words is not set"):
        SweepSpec.from_dict({**CATS, "pairs": pairs})


def test_given_words_are_kept_and_not_marked_derived():
    s = SweepSpec.from_dict({**CATS, "target_words": ["cat", "kitten"], "generation": {
        **GEN, "topic_words": "love"}})  # fmt: skip
    assert s.derived_words == ()
    assert lines(s) == [
        "target_words (next-token log-prob mass): cat, kitten",
        "generation.topic_words (completions on topic): preset 'love' = "
        + ", ".join(words("love")),
    ]


def test_target_words_are_not_needed_without_next_token_metrics():
    s = SweepSpec.from_dict(
        {**CATS, "next_token": False, "generation": {**GEN, "topic_words": ["cat"]}}
    )
    assert s.target_words is None and lines(s)[0].startswith("generation.topic_words")


def test_every_bad_word_is_reported_at_once():
    with pytest.raises(ConfigError, match=r"not words: '', ' ', 3; "):
        words(["a", "", " ", 3], "target_words")


def test_every_multi_token_target_word_is_reported_at_once_without_strict(tiny_llama):
    s = SweepSpec.from_dict({**CATS, "target_words": ["wedding", "w", "bride"]})
    with pytest.raises(ConfigError) as caught:
        s.validate(tiny_llama)
    message = str(caught.value)
    assert message.startswith("target_words: 'wedding', 'bride' are not single tokens in")
    assert "' wedding' is [" in message and "' bride' is [" in message
    assert "strict" not in message and "\n" not in message


def test_the_suite_configs_name_their_words_and_derive_none():
    """Every sweep-kind experiment config measures the words it names: none relies on a
    default (so their results are what they were)."""
    checked = 0
    for path in sorted((ROOT / "experiments").glob("*.toml")):
        # as `actadd run` reads it: a per-model table ([models."..."]) is not the config's own
        raw = for_model(read_config(path), None) if "kind" in path.read_text() else None
        if raw is None or raw.get("kind") not in ("sweep", "word_count", "sentiment",
                                                   "failures", "alignment"):  # fmt: skip
            continue
        spec = kind_of(raw).parse({k: v for k, v in raw.items() if k != "kind"})
        assert spec.derived_words == (), path.name
        checked += 1
    assert checked >= 10


def test_tables_name_the_words_and_carry_the_prompt_text(tiny_llama, tmp_path, capsys):
    s = SweepSpec.from_dict(
        {
            **CATS,
            "pairs": [[" wed", ""]],
            "prompts": ["I went up to my friend and said", "Hello there"],
            "target_words": ["w", "e"],
            "generation": {**GEN, "topic_words": "weddings"},
        }
    )
    df = run_sweep(s, tiny_llama, out=tmp_path / "run", progress=None)
    err = capsys.readouterr().err
    assert "cats: target_words (next-token log-prob mass): w, e" in err
    topic = "cats: generation.topic_words (completions on topic): preset 'weddings' = "
    assert topic + ", ".join(WEDDING_WORDS) in err
    comps = df.attrs["completions"]
    for table in (df, comps, pd.read_parquet(tmp_path / "run" / "results.parquet")):
        assert (table.topic_words == "weddings").all()
    assert (df.target_words == "w, e").all() and "target_words" not in comps.columns
    # the prompt text beside text_index, in both tables and on disk
    saved = pd.read_parquet(tmp_path / "run" / "completions.parquet")
    for table in (comps, saved):
        assert list(table.columns[table.columns.get_loc("text_index") :][:2]) == [
            "text_index",
            "prompt",
        ]
        assert (table.prompt == [s.prompts[i] for i in table.text_index]).all()
    texts = {"prompt": s.prompts, "neutral": s.neutral_texts}
    assert (df.text == [texts[k][i] for k, i in zip(df.text_kind, df.text_index)]).all()
    assert set(df.text_kind) == {"prompt", "neutral"}


def test_a_sweep_kinds_summary_names_the_words(tiny_llama, tmp_path):
    from actadd.lab.runner import run_experiment

    config = {
        "kind": "word_count",
        **CATS,
        "pairs": [[" wed", ""]],
        "target_words": ["w", "e"],
        "generation": {**GEN, "topic_words": ["a"]},
    }
    out = run_experiment(config, tmp_path / "run", model=tiny_llama)
    summary = pd.read_csv(out / "summary.csv")
    assert (summary.target_words == "w, e").all() and (summary.topic_words == "a").all()
    results = pd.read_parquet(out / "results.parquet")
    assert set(WORD_COLUMNS) <= set(results.columns)
