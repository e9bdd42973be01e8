"""The one-sided sensitivity analysis of two-sided confirmatory claims: the exact one-sided p
of the stated direction, its Benjamini–Hochberg value within the family, and the rule it would
meet, reported beside the verdict and never changing it."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from actadd.lab.claims import NOT_SUPPORTED, SUPPORTED, Claim, Paired, adjust, mean_claim
from actadd.lab.stats import bh_adjust, sign_flip_test

# 12 prompt means whose exact two-sided sign-flip p is 164/4096 = 0.040
MEANS = [0.14, 1.7, 1.9, 0.82, 0.91, 0.01, -0.41, -0.4, -0.5, 1.43, 0.44, 0.63]


def planted(means, *, sign=1, alternative="two-sided", family="confirmatory", id="x") -> Claim:
    """A confirmatory sentiment-like claim on 12 prompts × 2 samples whose per-prompt mean
    differences are ``means``."""
    means = np.repeat(np.asarray(means, float), 2)
    cluster = np.repeat(np.arange(len(means) // 2), 2)
    pairs = Paired(means, np.zeros_like(means), cluster)
    return mean_claim(
        pairs, confirmatory=True, experiment="e", id=id, statement="s", family=family,
        sign=sign, alternative=alternative,
    )  # fmt: skip


def test_a_two_sided_p_of_0_04_gives_0_02_on_the_stated_side_and_0_98_against_it():
    up = planted(MEANS)
    assert up.p == pytest.approx(164 / 4096) and round(up.p, 2) == 0.04
    assert up.estimate > 0 and up.sensitivity_p_one_sided == pytest.approx(up.p / 2)
    assert round(up.sensitivity_p_one_sided, 2) == 0.02
    down = planted(-np.asarray(MEANS))
    assert down.p == pytest.approx(up.p) and down.estimate < 0
    # against the stated side: 1 − p/2 plus the probability of the observed sum (exact test)
    assert down.sensitivity_p_one_sided == pytest.approx(sign_flip_test(-np.asarray(MEANS),
                                                                        "greater"))  # fmt: skip
    assert down.sensitivity_p_one_sided >= 1 - down.p / 2
    assert round(down.sensitivity_p_one_sided, 2) == 0.98
    # a "lowers" claim tests the other side
    lowers = planted(-np.asarray(MEANS), sign=-1)
    assert lowers.sensitivity_p_one_sided == pytest.approx(up.p / 2)


def test_the_opposite_side_adds_the_probability_of_a_tied_sum():
    # 4 of 12 prompts have a (negative) difference, 8 have none: the observed sum recurs in
    # 2^8 of the 2^12 flips, so halving (1 − p/2) would understate the one-sided p
    means = [-0.25, -0.25, -0.5, -0.5] + [0.0] * 8
    c = planted(means)
    assert c.p == pytest.approx(sign_flip_test(means)) and c.estimate < 0
    assert c.sensitivity_p_one_sided == pytest.approx(1.0)
    assert 1 - c.p / 2 < 0.99


def test_one_sided_claims_and_scans_carry_no_sensitivity_value():
    assert math.isnan(planted(MEANS, alternative="greater").sensitivity_p_one_sided)
    pairs = Paired(np.ones(8), np.zeros(8), np.arange(8) // 2)
    scan = mean_claim(pairs, confirmatory=False, experiment="e", id="s", statement="s")
    assert math.isnan(scan.sensitivity_p_one_sided)
    (c,) = adjust([scan])
    assert math.isnan(c.sensitivity_p_one_sided_bh) and c.sensitivity_one_sided_rule == ""


def test_bh_of_the_one_sided_p_is_within_the_family_only():
    a, b = planted(MEANS, id="a"), planted(np.asarray(MEANS) * 0.3 - 0.2, id="b")
    other = planted(MEANS, id="c", family="other")
    out = adjust([a, b, other])
    expect = bh_adjust([a.sensitivity_p_one_sided, b.sensitivity_p_one_sided])
    assert [c.sensitivity_p_one_sided_bh for c in out[:2]] == pytest.approx(expect)
    assert out[2].sensitivity_p_one_sided_bh == pytest.approx(other.sensitivity_p_one_sided)


def test_the_sensitivity_analysis_changes_no_verdict():
    # four cells: two-sided the best is p 0.04, BH 0.08 (NOT SUPPORTED); one-sided BH 0.04
    def cell(i, p, est):
        return Claim(experiment="e", id=f"c{i}", statement="s", estimate=est, lo=est / 2,
                     hi=est * 2, p=p, test="t", n="n", family="confirmatory",
                     confirmatory=True, sensitivity_p_one_sided=p / 2)  # fmt: skip

    cells = [cell(0, 0.04, 0.2), cell(1, 0.04, 0.2), cell(2, 0.5, 0.1), cell(3, 0.9, 0.05)]
    with_sens = adjust(cells)
    without = adjust([replace(c, sensitivity_p_one_sided=math.nan) for c in cells])
    assert [c.verdict for c in with_sens] == [c.verdict for c in without]
    assert [c.p_adj for c in with_sens] == [c.p_adj for c in without]
    assert with_sens[0].verdict == NOT_SUPPORTED and with_sens[0].p_adj == pytest.approx(0.08)
    assert with_sens[0].sensitivity_p_one_sided_bh == pytest.approx(0.04)
    assert [c.sensitivity_one_sided_rule for c in with_sens] == ["met", "met"] + ["not met"] * 2
    # and a verdict that passes stays SUPPORTED whatever the sensitivity says
    ok = adjust([replace(cells[0], p=0.001, sensitivity_p_one_sided=0.9)])[0]
    assert ok.verdict == SUPPORTED and ok.sensitivity_one_sided_rule == "not met"
    # the rule one-sided still needs the sign and the interval
    wrong = adjust([replace(cells[0], estimate=0.2, lo=-0.1, sensitivity_p_one_sided=0.001)])[0]
    assert wrong.sensitivity_one_sided_rule == "not met"


def test_the_report_labels_the_sensitivity_section_and_the_csv_its_columns(tmp_path):
    from actadd.lab.claims import table
    from actadd.lab.report import render

    claims = adjust([planted(MEANS, id="a"), planted(-np.asarray(MEANS), id="b"),
                     planted(MEANS, id="c", family="g", alternative="greater")])  # fmt: skip
    text = render(claims, [], Path("results"))
    section = text.split("### Sensitivity: one-sided, not a verdict", 1)[1]
    assert "Sensitivity: one-sided, not a verdict." in section
    assert "2 confirmatory claims were tested two-sided; 1 of 2 would meet" in section
    a = claims[0]
    assert f"| e | `[{a.cite}]` |" in section and f"`[{claims[2].cite}]`" not in section
    assert f"| {a.verdict} | 0.02 | 0.04 | met |" in section
    cols = table(claims).columns
    assert {"sensitivity_p_one_sided", "sensitivity_p_one_sided_bh",
            "sensitivity_one_sided_rule"} <= set(cols)  # fmt: skip
