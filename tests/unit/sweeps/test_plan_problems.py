"""The plan step (what needs the model) reports its problems together, one line each."""

from __future__ import annotations

import pytest

from actadd.errors import ConfigError, ConfigErrors
from actadd.sweeps.plan import check
from actadd.sweeps.spec import SweepSpec


def spec(**over) -> SweepSpec:
    raw = {"name": "p", "pairs": [["Love", "Hate"]], "layers": [1], "coeffs": [1.0]}
    raw["target_words"] = ["a", "I"]  # single tokens in tiny-llama
    return SweepSpec.from_dict({"prompts": ["I think that"], **raw, **over})


def test_layers_words_and_lengths_are_reported_together(tiny_llama):
    n_ctx = tiny_llama.cfg.n_ctx
    long_text = "word " * (n_ctx + 5)
    bad = spec(
        layers=[1, 99],
        target_words=["xqzvjkw", "qqxzzv"],
        neutral_texts=[long_text, long_text + "again"],
    )
    with pytest.raises(ConfigErrors) as info:
        check(bad, tiny_llama)
    lines = info.value.problems
    assert len(lines) == 4, lines
    assert lines[0].startswith("layers [99] out of range")
    # both words in one try, named by the config key; no strict=False for a TOML user
    assert lines[1].startswith("target_words: 'xqzvjkw', 'qqxzzv' are not single tokens")
    assert "replace or drop them" in lines[1] and "strict" not in lines[1]
    assert all(
        line.startswith("neutral text") and "past the model's context" in line for line in lines[2:]
    )


def test_one_problem_is_one_plain_line(tiny_llama):
    with pytest.raises(ConfigError) as info:
        check(spec(layers=[99]), tiny_llama)
    assert type(info.value) is ConfigError and "\n" not in str(info.value)
    check(spec(), tiny_llama)  # and a sound spec passes
