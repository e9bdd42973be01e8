"""The findings checker (``actadd.lab.findings``) on a small claims table: a page that
states its claims' numbers passes, and each kind of error is caught with a line naming it."""

from __future__ import annotations

import pandas as pd
import pytest

from actadd.lab.findings import check_findings, sentences

CLAIMS = pd.DataFrame(
    [
        dict(
            experiment="word_count_confirm3",
            family="confirmatory",
            cite="wc3.L16c1",
            id="a",
            estimate=0.0703,
            lo=0.0156,
            hi=0.1328,
            p_adj=0.0469,
            clusters=32,
            numbers="12/128 vs 3/128; discordant 11:2",
            n="128 pairs over 32 prompts",
            verdict="SUPPORTED",
        ),
        dict(
            experiment="word_count_confirm3",
            family="confirmatory",
            cite="wc3.L6c4",
            id="b",
            estimate=0.0312,
            lo=-0.0234,
            hi=0.0938,
            p_adj=0.219,
            clusters=32,
            numbers="7/128 vs 3/128; discordant 7:3",
            n="128 pairs over 32 prompts",
            verdict="NOT SUPPORTED",
        ),
        dict(
            experiment="failure_cases",
            family="equivalence",
            cite="fc.eq.L1c2",
            id="c",
            estimate=-0.12,
            lo=-0.67,
            hi=0.42,
            p_adj=0.82,
            clusters=2,
            numbers="mean 0.24 vs 0.36",
            n="16 pairs over 2 prompts",
            verdict="NOT ASSESSED (2 prompts < 5)",
        ),
        dict(
            experiment="wedding_perplexity",
            family="texts",
            cite="ppl.prompt.L-1c1",
            id="d",
            estimate=-0.0594,
            lo=-0.089,
            hi=-0.030,
            p_adj=0.000167,
            clusters=None,
            numbers="perplexity ratio 0.942 [0.915, 0.971]",
            n="150 texts",
            verdict="SUPPORTED",
        ),
    ]
)

GOOD = """<!-- findings -->
- **Round three** [wc3/confirmatory]: 1 of 2 cells pass. At L16, c = 1 [wc3.L16c1] the rate
  rises: 12/128 vs 3/128, +0.07 [+0.02, +0.13], p (BH) 0.047, SUPPORTED (32 prompts); at L6,
  c = 4 [wc3.L6c4] +0.03 [−0.02, +0.09], p (BH) 0.22, NOT SUPPORTED.
- Love alone [fc.eq.L1c2] is NOT ASSESSED on 2 prompts, and [fc/equivalence] 1 of 1 cells
  NOT ASSESSED. Prepending lowers perplexity [ppl.prompt.L-1c1] (ratio 0.942 [0.915, 0.971]).
<!-- /findings -->
"""


def test_a_page_that_states_its_claims_passes():
    assert check_findings(GOOD, CLAIMS) == []
    assert len(sentences(GOOD.split("-->")[1])) == 4


@pytest.mark.parametrize(
    "old, new, caught",
    [
        ("0.047, SUPPORTED", "0.047, NOT SUPPORTED", "says NOT SUPPORTED, the claim is SUPPORTED"),
        ("0.22, NOT SUPPORTED", "0.22, SUPPORTED", "says SUPPORTED, the claim is NOT SUPPORTED"),
        ("is NOT ASSESSED", "is NOT SUPPORTED", "the claim is NOT ASSESSED"),
        ("1 of 2 cells", "2 of 2 cells", "'2 of 2', but 1 of its 2 claims are SUPPORTED"),
        ("1 of 1 cells", "0 of 1 cells", "'0 of 1', but 1 of its 1 claims are NOT ASSESSED"),
        ("12/128 vs 3/128", "12/128 vs 2/128", "'12/128 vs 2/128' is not in the claim's numbers"),
        ("+0.07 [", "−0.07 [", "estimate −0.07"),
        ("[−0.02, +0.09]", "[+0.02, +0.09]", "lo +0.02"),
        ("0.942 [0.915, 0.971]", "0.942 [0.915, 0.991]", "hi 0.991"),
        ("p (BH) 0.047", "p (BH) 0.01", "p (BH) 0.01, the claim has 0.0469"),
        ("(32 prompts)", "(16 prompts)", "'16 prompts', but the claim spans 32 prompts"),
        (" [wc3.L16c1]", "", "'+0.07 [+0.02, +0.13]' comes before the sentence's first citation"),
        (" [ppl.prompt.L-1c1]", "", "uncited sentence: 'Prepending"),
        ("[wc3.L6c4]", "[wc3.L6c5]", "unknown claim id [wc3.L6c5]"),
        ("[fc/equivalence]", "[fc/equivalent]", "no family [fc/equivalent]"),
    ],
)
def test_each_planted_error_is_caught_with_a_line_that_names_it(old, new, caught):
    assert old in GOOD
    problems = check_findings(GOOD.replace(old, new, 1), CLAIMS)
    assert any(caught in p for p in problems), problems


def test_a_page_without_a_findings_block_is_refused():
    assert check_findings("no block here", CLAIMS) == [
        "no <!-- findings --> … <!-- /findings --> block"
    ]


# the one-sided sensitivity analysis (two-sided confirmatory cells): its own adjusted p and
# its own count, never mistaken for the verdict's
SENS_CLAIMS = CLAIMS.iloc[:2].assign(
    sensitivity_p_one_sided_bh=[0.031, 0.11], sensitivity_one_sided_rule=["met", "not met"]
)
SENS = """<!-- findings -->
- [wc3/confirmatory] 1 of 2 would pass in the one-sided sensitivity analysis, not a verdict:
  [wc3.L16c1] p (BH) 0.047, one-sided p (BH) 0.031; [wc3.L6c4] one-sided p (BH) 0.11.
<!-- /findings -->
"""


def test_a_page_that_states_the_sensitivity_analysis_passes():
    assert check_findings(SENS, SENS_CLAIMS) == []


@pytest.mark.parametrize(
    "old, new, caught",
    [
        ("one-sided p (BH) 0.031", "one-sided p (BH) 0.047", "one-sided p (BH) 0.047, the claim"),
        ("p (BH) 0.047,", "p (BH) 0.031,", "p (BH) 0.031, the claim has 0.0469"),
        ("1 of 2 would", "2 of 2 would", "but 1 of its 2 claims are met one-sided (sensitivity)"),
        ("1 of 2 would", "0 of 2 would", "but 1 of its 2 claims are met one-sided (sensitivity)"),
    ],
)
def test_each_planted_sensitivity_error_is_caught(old, new, caught):
    assert old in SENS
    problems = check_findings(SENS.replace(old, new, 1), SENS_CLAIMS)
    assert any(caught in p for p in problems), problems


def test_a_one_sided_p_on_a_claim_without_one_is_caught():
    problems = check_findings(SENS, CLAIMS)  # a table without the sensitivity columns
    assert any("the claim has none (its test was not two-sided)" in p for p in problems)


TABLE = """<!-- findings -->
| cell | result |
|---|---|
| L16, c = 1 | [wc3.L16c1] 12/128 vs 3/128, SUPPORTED |
| L6, c = 4 | [wc3.L6c4] 7/128 vs 3/128, NOT SUPPORTED |
<!-- /findings -->
"""


def test_each_table_row_is_a_sentence_and_the_header_is_not():
    assert sentences(TABLE.split("-->")[1].split("<!--")[0]) == [
        "L16, c = 1; [wc3.L16c1] 12/128 vs 3/128, SUPPORTED",
        "L6, c = 4; [wc3.L6c4] 7/128 vs 3/128, NOT SUPPORTED",
    ]
    assert check_findings(TABLE, CLAIMS) == []
    # a row's numbers are checked against its own citation, not the row above's
    swapped = TABLE.replace("[wc3.L6c4] 7/128", "[wc3.L6c4] 12/128")
    assert any("[wc3.L6c4]: '12/128 vs 3/128'" in p for p in check_findings(swapped, CLAIMS))
    uncited = TABLE.replace("[wc3.L6c4] ", "")
    assert any("uncited sentence: 'L6, c = 4" in p for p in check_findings(uncited, CLAIMS))


def test_a_character_class_is_a_glob_over_claim_ids():
    page = "<!-- findings -->\n- Both [wc3.L[16]*] (1 of 2 SUPPORTED).\n<!-- /findings -->\n"
    assert check_findings(page, CLAIMS) == []
    wrong = page.replace("1 of 2", "2 of 2")
    assert any("'2 of 2', but 1 of its 2" in p for p in check_findings(wrong, CLAIMS))


def _set_claims():
    """Two conditional SUPPORTED claims whose numbers hold a derived interval, and a
    NOT SUPPORTED one."""
    base = dict(experiment="e", family="f", p_adj=0.01, clusters=1, n="8 pairs over 1 prompts")
    return pd.DataFrame(
        [
            dict(base, id="a", cite="x.a", estimate=0.51, lo=0.2, hi=0.8,
                 numbers="ratio 1.50 [1.20, 1.80]",
                 verdict="SUPPORTED (conditional on one prompt)"),
            dict(base, id="b", cite="x.b", estimate=0.50, lo=0.1, hi=0.7,
                 numbers="ratio 1.40 [1.10, 1.70]",
                 verdict="SUPPORTED (conditional on one prompt)"),
            dict(base, id="c", cite="x.c", estimate=0.30, lo=-0.1, hi=0.7, numbers="",
                 verdict="NOT SUPPORTED"),
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    "sentence",
    [
        "Both [x.a + x.b] (+0.51 and +0.50) are SUPPORTED (conditional on one prompt).",
        "The ratios [x.a + x.b] are 1.50 [1.20, 1.80] and 1.40 [1.10, 1.70].",
        "Both [x.a + x.c] (+0.51 [+0.2, +0.8] and +0.30) are cited.",
    ],
)
def test_a_set_citation_that_states_its_claims_passes(sentence):
    page = f"<!-- findings -->\n{sentence}\n<!-- /findings -->"
    assert check_findings(page, _set_claims()) == []


@pytest.mark.parametrize(
    "sentence, caught",
    [
        ("Both [x.a + x.c] are NOT SUPPORTED.", "says NOT SUPPORTED of all 2, but 1"),
        ("Both [x.a + x.b] are SUPPORTED.", "says SUPPORTED of all 2, but 2"),
        ("Both [x.a + x.c] (+0.61 and +0.30) are cited.", "+0.61 is no cited claim's"),
        ("Both [x.a + x.b] are 1.50 [1.20, 1.90].", "is no cited claim's estimate and interval"),
    ],
)
def test_a_set_citation_s_wrong_verdict_or_number_is_caught(sentence, caught):
    page = f"<!-- findings -->\n{sentence}\n<!-- /findings -->"
    problems = check_findings(page, _set_claims())
    assert any(caught in p for p in problems), problems
