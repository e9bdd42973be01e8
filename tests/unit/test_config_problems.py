"""Every problem of a config table in one pass (:class:`actadd.errors.ConfigErrors`), with a
"did you mean" for unknown keys; the sweep config as the real case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from actadd.config import Config, check_keys, integer, words
from actadd.errors import ConfigError, ConfigErrors, collect, every_problem, suggest
from actadd.sweeps.spec import SweepSpec


@dataclass(frozen=True)
class Toy(Config):
    """Three independent keys, one required, and a check across two of them."""

    WHERE: ClassVar[str] = "toy config"
    EXAMPLE: ClassVar[dict[str, Any]] = {}

    name: str
    size: int = 1
    words: tuple[str, ...] | str = "weddings"
    limit: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, got {self.name!r}.")
        integer(self.size, "size", low=1)
        words(self.words, "words")
        integer(self.limit, "limit", low=1)
        if self.size > self.limit:
            raise ConfigError(f"size {self.size} is past limit {self.limit}.")


def problems(cls, raw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cls.from_dict(raw)
    exc = info.value
    return list(exc.problems) if isinstance(exc, ConfigErrors) else [str(exc)]


def test_three_mistakes_are_three_lines():
    lines = problems(Toy, {"name": "a", "sise": 2, "words": "wedding", "limit": "5"})
    assert len(lines) == 3, lines
    assert "unknown key(s) ['sise'] (did you mean 'size'?)" in lines[0]
    assert lines[1].startswith("words: unknown preset 'wedding'")
    assert lines[2] == "limit must be an integer >= 1, got the string '5'."


def test_one_mistake_is_a_plain_config_error_as_before():
    with pytest.raises(ConfigError) as info:
        Toy.from_dict({"name": "a", "size": 0})
    assert type(info.value) is ConfigError
    assert str(info.value) == "size must be an integer >= 1, got 0."


def test_a_problem_caused_by_a_stand_in_default_is_not_reported():
    # size 20 is past limit 10 only once the bad limit is set aside (default 10): the file's
    # own limit ("x") says nothing about it, so the cross-key check must stay silent
    lines = problems(Toy, {"name": "a", "size": 20, "limit": "x"})
    assert lines == ["limit must be an integer >= 1, got the string 'x'."]


def test_a_wrong_required_key_without_a_stand_in_ends_the_search():
    assert problems(Toy, {"name": "", "size": 0}) == ["name must be a non-empty string, got ''."]


def test_a_stand_in_for_a_required_key_lets_the_search_go_on(monkeypatch):
    monkeypatch.setattr(Toy, "EXAMPLE", {"name": "example"})
    lines = problems(Toy, {"name": "", "size": 0})
    assert lines == [
        "name must be a non-empty string, got ''.",
        "size must be an integer >= 1, got 0.",
    ]


def test_a_missing_key_is_said_once_when_an_unknown_key_was_its_typo():
    lines = problems(Toy, {"nme": "a", "size": 1})
    assert lines == [
        "toy config: unknown key(s) ['nme'] (did you mean 'name'?); allowed: "
        "['limit', 'name', 'size', 'words']."
    ]
    assert problems(Toy, {"size": 1}) == ["toy config: missing keys ['name']."]


def test_check_keys_suggests_for_each_unknown_key():
    with pytest.raises(ConfigError, match=r"did you mean 'alpha' for 'alpah', 'beta' for 'bta'\?"):
        check_keys({"alpah": 1, "bta": 2, "zzz": 3}, ["alpha", "beta"], "x")


def test_suggest_only_close_words():
    assert suggest("coefs", ["coeffs", "layers"]) == " (did you mean 'coeffs'?)"
    assert suggest("xyz", ["coeffs", "layers"]) == ""
    assert suggest(3, ["coeffs"]) == ""


def test_collect_runs_every_check_and_raises_their_problems_together():
    def bad(message):
        def check():
            raise ConfigError(message)

        return check

    with pytest.raises(ConfigErrors) as info:
        collect(bad("one"), lambda: 1, bad("two"))
    assert info.value.problems == ("one", "two")
    assert str(info.value) == "one\ntwo"
    assert collect(lambda: 1, lambda: 2) == [1, 2]


def test_every_problem_stops_when_no_key_accounts_for_the_problem():
    def build(table):
        raise ConfigError("something global is wrong")

    def drop(table, key):
        return {k: v for k, v in table.items() if k != key}

    first = ["something global is wrong"]
    assert every_problem(build, {"a": 1}, first, ["a"], drop) == first


def test_a_sweep_config_with_many_mistakes_reports_each_once():
    raw = {
        "name": "bad",
        "pairs": [[" cats", " dogs"]],
        "layers": "0:x",  # required: the stand-in lets the search go on
        "coeffs": [1, 1],  # required too
        "prompts": ["I think that"],
        "batch_rows": "64",
        "target_words": "wedding",
        "methods": ["caa", "randm"],
        "generation": {"n_samples": 0, "top_p": "x", "topic_word": "a"},
    }
    lines = problems(SweepSpec, raw)
    expected = [
        "[generation]: unknown key(s) ['topic_word'] (did you mean 'topic_words'?)",
        "generation.n_samples must be an integer in 1..1000, got 0",
        "generation.top_p must be a finite number > 0 and <= 1, got the string 'x'",
        "coeffs: [1.0] given more than once",
        "batch_rows must be an integer >= 1, got the string '64'",
        "target_words: unknown preset 'wedding'",
        "layers '0:x': use 'all', 'a:b', 'a:b:step' or a list of ints",
        "methods ['caa', 'randm']: unknown or repeated ['randm']",
    ]
    assert len(lines) == len(expected), lines
    for want in expected:
        assert sum(line.startswith(want) for line in lines) == 1, (want, lines)


def test_a_sound_sweep_config_still_builds_and_warns_once_for_an_old_key():
    raw = {"name": "ok", "pairs": [["a", "b"]], "layers": [1], "coeffs": [1], "prompts": ["p"]}
    raw["target_words"] = ["a"]  # word lists have no default (pair a − b names no preset)
    with pytest.warns(DeprecationWarning, match="'pads' is now called 'equalize'") as record:
        spec = SweepSpec.from_dict({**raw, "pads": ["left"]})
    assert spec.equalize == ("left",) and len(record) == 1
