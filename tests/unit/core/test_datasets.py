"""Pair datasets: the built-in one, CSV and JSONL files, one-line errors for bad rows."""

from __future__ import annotations

import json

import pytest

from actadd.config import Pair
from actadd.core.datasets import BUILTIN, DATA_DIR, load_pairs
from actadd.errors import ConfigError


def test_every_builtin_dataset_loads_and_has_a_license_note():
    note = (DATA_DIR / "PAIRS_LICENSE.md").read_text()
    for name, file in BUILTIN.items():
        assert file in note and "CC0" in note
        assert len(load_pairs(f"builtin:{name}")) >= 16


def test_jsonl_and_csv_give_the_same_pairs(tmp_path):
    rows = [
        {"positive": "I love it", "negative": "I hate it"},
        {"positive": 'Yes, "sure"', "negative": "No, never", "label": "yes-no"},
    ]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    csv = tmp_path / "p.csv"
    csv.write_text(
        'positive,negative,label\nI love it,I hate it,\n"Yes, ""sure""","No, never",yes-no\n'
    )
    expected = (Pair("I love it", "I hate it"), Pair('Yes, "sure"', "No, never", "yes-no"))
    assert load_pairs(jsonl) == expected
    assert load_pairs(str(csv)) == expected


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "a.jsonl",
            '{"positive": "a", "negative": "b"}\n{"positive": "a"\n',
            r"a.jsonl line 2: not valid JSON",
        ),
        ("a.jsonl", '{"positive": "a"}\n', r"line 1: 'negative' is missing; each row needs"),
        ("a.jsonl", '{"positive": "a", "negative": "  "}\n', r"line 1: 'negative' is '  '"),
        (
            "a.jsonl",
            '{"positive": "a", "negative": "b", "weight": 2}\n',
            r"line 1: unknown key\(s\) \['weight'\]; allowed",
        ),
        ("a.jsonl", '["a", "b"]\n', r"line 1: a row is an object with keys"),
        ("a.csv", "pos,neg\na,b\n", r"a.csv line 1: the header must name the columns"),
        ("a.csv", "positive,negative\na,b\nc\n", r"line 3: 1 cells for 2 columns"),
        ("a.csv", "positive,negative\na,\n", r"line 2: 'negative' is ''"),
        ("a.csv", "positive,negative\n", r"no pairs in the file"),
        ("a.txt", "x", r"pair datasets are .jsonl or .csv files"),
    ],
)
def test_malformed_rows_are_one_line_naming_file_row_and_rule(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_pairs(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_builtin(tmp_path):
    with pytest.raises(ConfigError, match="No pair dataset at"):
        load_pairs(tmp_path / "none.csv")
    with pytest.raises(ConfigError, match="built in: builtin:sentiment"):
        load_pairs("builtin:wedding")
