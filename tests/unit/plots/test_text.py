"""The words on a figure: pair titles, alignments, interval notes, word lists."""

from __future__ import annotations

import pandas as pd
import pytest

from actadd.plots import WordLists, align_words, ci_note, pair_title


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("' weddings' − ''", "weddings − (empty)"),
        ("' weddings'-''", "weddings − (empty)"),
        ("' weddings' − '' (pad ' a')", "weddings − (empty) (pad ' a')"),
        ("'Love' − 'Hate'", "Love − Hate"),
        ("\"it's\" − 'no'", "it's − no"),
        ("'I talk' −\n'I do not'", "I talk −\nI do not"),
        ("Love − Hate", "Love − Hate"),
        ("(unsteered)", "(unsteered)"),
    ],
)
def test_pair_title_turns_reprs_into_words(name, title):
    assert pair_title(name) == title


def test_align_words():
    assert [align_words(a) for a in ("front", "back", "all", "offset:1", "offset:3")] == [
        "front-aligned",
        "back-aligned",
        "every position",
        "offset by 1 token",
        "offset by 3 tokens",
    ]
    assert ci_note("Wilson") == "95% CI, Wilson"


def test_word_lists_from_config_and_from_table_columns():
    config = {"target_words": "weddings", "generation": {"topic_words": ["cat", "cats", "kitten"]}}
    words = WordLists.of(config)
    assert words.target == '"weddings" words'
    assert words.topic == "words: cat, cats, kitten"
    table = pd.DataFrame({"target_words": ["cats", "cats"], "topic_words": [3, 4]})
    words = WordLists.of(config, table)
    assert words.target == '"cats" words'  # the table's column wins
    assert words.topic == "words: cat, cats, kitten"  # a count column is no word list
    assert WordLists.of({}).describe("target") == "word list not recorded"
