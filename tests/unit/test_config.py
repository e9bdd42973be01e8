"""The shared config vocabulary: pairs, lists, words, layers, unknown keys."""

from __future__ import annotations

import pytest

from actadd import ConfigError
from actadd.config import (
    Pair,
    check_keys,
    check_layers,
    number_list,
    parse_layers,
    parse_pairs,
    read_toml,
    text_list,
    words,
)


def test_a_pair_reads_from_a_list_or_a_table_and_names_itself():
    assert Pair.parse(["Love", "Hate"]) == Pair("Love", "Hate")
    p = Pair.parse({"positive": " weddings", "label": "w", "pad_token": " a"})
    assert (p.positive, p.negative, p.name, p.pad_token) == (" weddings", "", "w", " a")
    assert Pair("Love", "Hate").name == "Love − Hate"  # the tables' pair column
    assert parse_pairs([["a", "b"], {"positive": "c"}]) == (Pair("a", "b"), Pair("c", ""))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["", ""], "two empty prompts"),
        (["a", 3], "must be strings"),
        ({"positive": "a", "negativ": "b"}, r"unknown key\(s\) \['negativ'\]"),
        ({"negative": "b"}, r"missing keys \['positive'\]"),
        ({"positive": "a", "pad_token": ""}, "pad_token must be"),
        ({"positive": "a", "label": ""}, "label must be"),
        ("Love", "a pair is"),
    ],
)
def test_bad_pairs_say_what_is_allowed(raw, message):
    with pytest.raises(ConfigError, match=message):
        Pair.parse(raw)


def test_pair_lists_must_be_non_empty_lists():
    for raw in ([], None, "Love"):
        with pytest.raises(ConfigError, match="non-empty list of pairs"):
            parse_pairs(raw)


def test_number_lists_reject_non_numbers_non_finite_and_repeats():
    assert number_list([1, 2.5], "coeffs") == [1.0, 2.5]
    assert number_list([3, 1], "layers", integer=True) == [3, 1]
    with pytest.raises(ConfigError, match="is not a number"):
        number_list([1, "two"], "coeffs")
    with pytest.raises(ConfigError, match="is not an int"):
        number_list([2.5], "layers", integer=True)
    with pytest.raises(ConfigError, match="not a finite number"):
        number_list([float("inf")], "coeffs")
    with pytest.raises(ConfigError, match="is not a number"):
        number_list([True], "coeffs")
    with pytest.raises(ConfigError, match=r"\[2\] given more than once"):
        number_list([2, 1, 2], "layers", integer=True)
    with pytest.raises(ConfigError, match="non-empty list"):
        number_list(4.0, "coeffs")


def test_layers_follow_one_rule_everywhere():
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("1:4:2", 4) == [1, 3]
    assert parse_layers("2", 4) == [2]
    assert parse_layers([0, 4], 4) == [0, 4]
    assert check_layers([0, 4], 4) == [0, 4]  # n_layers: the final residual stream
    with pytest.raises(ConfigError, match=r"layers \[5\] out of range: allowed resid_pre"):
        check_layers([0, 5], 4)
    with pytest.raises(ConfigError, match="selects no layer"):
        check_layers(parse_layers("2:2", 4), 4)
    with pytest.raises(ConfigError, match="use 'all', 'a:b'"):
        parse_layers("first", 4)
    with pytest.raises(ConfigError, match="step must be positive"):
        parse_layers("0:4:-1", 4)


def test_unknown_and_missing_keys_are_named():
    check_keys({"a": 1}, ["a", "b"], "x", required=["a"])
    with pytest.raises(ConfigError, match=r"x: unknown key\(s\) \['c'\]; allowed: \['a', 'b'\]"):
        check_keys({"a": 1, "c": 2}, ["a", "b"], "x")
    with pytest.raises(ConfigError, match=r"missing keys \['b'\]"):
        check_keys({"a": 1}, ["a", "b"], "x", required=["a", "b"])
    with pytest.raises(ConfigError, match="must be a table"):
        check_keys([1], ["a"], "x")


def test_words_and_texts():
    assert "bride" in words("weddings")
    assert words(["a", "b"]) == ("a", "b")
    with pytest.raises(ConfigError, match="unknown preset 'fashion'"):
        words("fashion")
    with pytest.raises(ConfigError, match="non-empty list of words"):
        words(["", "a"])
    assert text_list("one") == ["one"]
    with pytest.raises(ConfigError, match="non-empty strings"):
        text_list(["a", ""], "prompts")


def test_toml_files_are_read_with_a_clear_error(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('kind = "sweep"\n')
    assert read_toml(good) == {"kind": "sweep"}
    bad = tmp_path / "bad.toml"
    bad.write_text("kind = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_toml(bad)
    with pytest.raises(ConfigError, match="No config file"):
        read_toml(tmp_path / "missing.toml")


# ---------------------------------------------------------------------- the config idiom


def _toy_config():
    from dataclasses import dataclass

    from actadd.config import Config, integer

    @dataclass(frozen=True)
    class Toy(Config):
        WHERE = "toy config"
        REQUIRED = ("name",)
        ALIASES = {"old_size": "size"}
        LEFT_OUT_AT_DEFAULT = ("extra",)

        name: str
        size: int = 2
        words: tuple[str, ...] = ("a",)
        extra: int = 0

        def __post_init__(self) -> None:
            object.__setattr__(self, "size", integer(self.size, "size", low=1))

    return Toy


def test_config_from_dict_and_to_dict_round_trip():
    Toy = _toy_config()
    toy = Toy.from_dict({"kind": "toy", "name": "t", "words": ["x", "y"]})
    assert toy.words == ("x", "y")  # lists become tuples (hashable, frozen)
    assert toy.to_dict() == {"name": "t", "size": 2, "words": ("x", "y")}  # extra left out
    assert Toy.from_dict(toy.to_dict()) == toy
    assert Toy.from_dict({"name": "t", "extra": 3}).to_dict()["extra"] == 3


def test_config_refuses_unknown_missing_and_bad_values_in_one_line():
    Toy = _toy_config()
    with pytest.raises(ConfigError, match=r"toy config: unknown key\(s\) \['sise'\]"):
        Toy.from_dict({"name": "t", "sise": 3})
    with pytest.raises(ConfigError, match=r"toy config: missing keys \['name'\]"):
        Toy.from_dict({})
    with pytest.raises(ConfigError, match="size must be"):
        Toy.from_dict({"name": "t", "size": 0})
    with pytest.raises(ConfigError, match="toy config must be a table"):
        Toy.from_dict(["name"])


def test_config_old_key_names_warn_and_map_to_the_new_ones():
    Toy = _toy_config()
    with pytest.warns(DeprecationWarning, match="'old_size' is now called 'size'"):
        assert Toy.from_dict({"name": "t", "old_size": 5}).size == 5
    with pytest.raises(ConfigError, match="give 'size' only"):
        Toy.from_dict({"name": "t", "old_size": 5, "size": 5})
