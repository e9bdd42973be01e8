"""Short claim ids (``actadd.lab.cite``): the rule gives the ids the preregistration names,
ids are unique and do not depend on the order of the claims, a slug collision still gives
unique ids, and two experiments cannot share an abbreviation."""

from __future__ import annotations

import random

import pytest

from actadd import ConfigError
from actadd.lab.cite import abbreviation, aliases, check_abbreviations, family_alias, slug
from actadd.lab.claims import Claim, adjust

PAD_A = "' weddings' − '' (pad ' a')"
CONFIRM3 = [f"topic_any:{PAD_A}:L{L}:c{c}:front" for L, c in ((6, 4), (16, 1), (6, 1), (16, 4))]


def test_the_rule_gives_the_ids_the_preregistration_cites():
    assert aliases("word_count_confirm3", CONFIRM3) == {
        CONFIRM3[0]: "wc3.L6c4",
        CONFIRM3[1]: "wc3.L16c1",
        CONFIRM3[2]: "wc3.L6c1",
        CONFIRM3[3]: "wc3.L16c4",
    }
    ids = [f"sentiment:Love − Hate (pad ' a'):L{L}:c{c}:front" for L, c in ((4, 1), (6, 5))]
    assert set(aliases("sentiment_confirm3", ids).values()) == {"sc3.L4c1", "sc3.L6c5"}


def test_parts_that_differ_stay_and_layers_and_coefficients_are_never_dropped():
    ids = [
        "topic_any:' weddings' − '':L16:c1:front",
        f"topic_any:{PAD_A}:L16:c1:front",
        "sentiment:Love − ' ':L16:c1:offset:1",
    ]
    assert sorted(aliases("failure_cases", ids).values()) == [
        "fc.sentiment.Love_space.L16c1.offset.1",
        "fc.topic_any.weddings.L16c1.front",
        "fc.topic_any.weddings_pad_a.L16c1.front",
    ]
    # one claim: nothing is shared with another, the layer is still there
    assert aliases("methods", ["rank:x:L3:c8:all"]) == {"rank:x:L3:c8:all": "meth.rank.x.L3c8.all"}


def test_aliases_do_not_depend_on_the_order_of_the_claims():
    ids = [f"target_up:{p}:L{L}" for p in ("dog", "love_hate", "ocean") for L in (0, 2, 8)]
    ids += [f"specific:{n}:{p}:L2" for n in ("words", "residual") for p in ("dog", "cat")]
    first = aliases("token_injection_v2", ids)
    shuffled = ids[:]
    random.Random(0).shuffle(shuffled)
    assert aliases("token_injection_v2", shuffled) == first
    assert len(set(first.values())) == len(ids)


def test_parts_with_one_slug_still_get_unique_ids():
    ids = ["x:Love − Hate:L1", "x:Love_Hate:L1", "x:'Love'-'Hate':L1"]
    got = aliases("demo_exp", ids)
    assert len(set(got.values())) == 3
    assert sorted(v.split("~")[0] for v in got.values()) == ["de.Love_Hate.L1"] * 3
    assert aliases("demo_exp", ids) == got


def test_slugs_name_punctuation_and_drop_quotes():
    assert slug("' weddings' − '' (pad ' a')") == "weddings_pad_a"
    assert slug("'Love'-'Hate'") == "Love_Hate"
    assert slug("' '") == "space" and slug("'.'") == "dot" and slug("'\\n'") == "nl"
    assert slug("off-diagonal") == "off-diagonal"


def test_abbreviations_and_family_ids():
    assert abbreviation("word_count_confirm2") == "wc2"
    assert abbreviation("my_new_test2") == "mnt2"
    assert family_alias("wedding_sweep", "scan topic_any") == "ws/scan topic_any"
    with pytest.raises(ConfigError, match="both abbreviate to 'wc'.*ABBREVIATIONS"):
        check_abbreviations(["word_count_confirm", "weird_cat"])


def test_adjust_gives_every_claim_its_id():
    def claim(exp, cid):
        return Claim(exp, cid, "s", 0.1, 0.0, 0.2, 0.01, "t", "n", family="f")

    out = adjust(
        [claim("word_count_confirm3", i) for i in CONFIRM3] + [claim("capability", "a:L1:c1")]
    )
    assert [c.cite for c in out] == ["wc3.L6c4", "wc3.L16c1", "wc3.L6c1", "wc3.L16c4", "cap.a.L1c1"]
