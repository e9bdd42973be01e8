"""The published findings are the report's, claim by claim.

Findings sections are marked in ``docs/findings.md`` and ``experiments/README.md`` with
``<!-- findings -->`` … ``<!-- /findings -->``. In ``docs/findings.md`` every sentence cites
claim ids, and each cited claim's estimate (with its sign), interval, counts, p (BH) and
verdict, and each cited family's count of SUPPORTED claims, must be what the claims table
regenerated from the committed tables holds (:func:`actadd.lab.findings.check_findings`;
a copy with planted errors shows each one caught). As a backstop for the numbers no pattern
checks (run sizes, the unsteered accuracy), every number in either page must also occur
somewhere in ``results/REPORT.md``; the committed report and ``claims.csv`` are exactly what
the committed tables give.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
READMES = ("docs/findings.md", "experiments/README.md")
BLOCK = re.compile(r"<!-- findings -->(.*?)<!-- /findings -->", re.S)
NUMBER = re.compile(r"\d+(?:\.\d+)?")

pytestmark = pytest.mark.skipif(
    not (RESULTS / "REPORT.md").exists(), reason="no committed reference results"
)


def numbers(text: str) -> list[str]:
    # figure paths and links are not claims
    text = re.sub(r"!?\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"`[^`]*`", "", text)
    return NUMBER.findall(text)


def findings(path: str) -> list[str]:
    return BLOCK.findall((ROOT / path).read_text())


@pytest.mark.parametrize("path", READMES)
def test_every_number_in_the_findings_is_in_the_report(path):
    blocks = findings(path)
    assert blocks, f"{path} has no <!-- findings --> section"
    report = set(NUMBER.findall((RESULTS / "REPORT.md").read_text()))
    missing = sorted({n for b in blocks for n in numbers(b)} - report)
    assert not missing, f"{path}: numbers in its findings that the report does not hold: {missing}"


@pytest.fixture(scope="module")
def regenerated():
    """The claims and provenance rows ``actadd report`` computes from the committed tables."""
    from actadd.lab.report import collect

    return collect(RESULTS)


@pytest.fixture(scope="module")
def claims_table(regenerated):
    from actadd.lab.claims import table

    return table(regenerated[0])


def test_the_committed_report_is_what_the_committed_tables_give(regenerated):
    from actadd.lab.report import render

    claims, prov = regenerated
    assert render(claims, prov, Path("results")) == (RESULTS / "REPORT.md").read_text()


def test_the_committed_claim_ids_are_the_rule_s_and_unique(claims_table):
    from actadd.lab.report import read_claims

    committed = read_claims(RESULTS)
    cols = ["experiment", "id", "cite", "verdict"]
    assert committed[cols].equals(claims_table[cols].astype(committed[cols].dtypes))
    dup = claims_table.cite[claims_table.cite.duplicated()].tolist()
    assert not dup, f"claim ids cited by more than one claim: {dup}"


def test_every_findings_sentence_cites_claims_that_hold_its_numbers(claims_table):
    from actadd.lab.findings import check_findings

    problems = check_findings((ROOT / "docs/findings.md").read_text(), claims_table)
    assert not problems, "docs/findings.md:\n" + "\n".join(problems)


PLANTED = {
    "flipped verdict": (
        "p (BH) 0.047, SUPPORTED",
        "p (BH) 0.047, NOT SUPPORTED",
        "[wc3.L16c1]: the sentence says NOT SUPPORTED, the claim is SUPPORTED",
    ),
    "wrong count": (
        "[ws/scan topic_any] 9 of 150",
        "[ws/scan topic_any] 10 of 150",
        "[ws/scan topic_any]: '10 of 150', but 9 of its 150 claims are SUPPORTED",
    ),
    "wrong counts of a cell": (
        "12/128 vs 3/128",
        "12/128 vs 2/128",
        "[wc3.L16c1]: '12/128 vs 2/128' is not in the claim's numbers",
    ),
    "wrong sign": (
        "[wc3.L16c1] raises the wedding-word rate:\n  12/128 vs 3/128, +0.07",
        "[wc3.L16c1] raises the wedding-word rate:\n  12/128 vs 3/128, −0.07",
        "[wc3.L16c1]: estimate −0.07",
    ),
    "uncited sentence": (
        "Those sampled-text counts [ti2/generation: topic-word rate] are stale",
        "Those sampled-text counts are stale",
        "uncited sentence: 'Those sampled-text counts are stale",
    ),
}


@pytest.mark.parametrize("plant", list(PLANTED))
def test_errors_planted_in_a_copy_of_the_findings_are_caught(plant, claims_table, tmp_path):
    from actadd.lab.findings import check_findings

    old, new, caught = PLANTED[plant]
    page = (ROOT / "docs/findings.md").read_text()
    assert page.count(old) == 1, f"the sentence to plant in is gone: {old!r}"
    copy = tmp_path / "findings.md"
    copy.write_text(page.replace(old, new))
    problems = check_findings(copy.read_text(), claims_table)
    assert any(caught in p for p in problems), problems


def test_reference_results_come_from_one_clean_committed_revision():
    suite = json.loads((RESULTS / "suite.json").read_text())
    revision = suite["revision"]
    assert revision and not revision.endswith("+dirty") and not suite["allow_dirty"]
    for name in suite["experiments"]:
        env = json.loads((RESULTS / name / "env.json").read_text())
        assert env["git_revision"] == revision, name
        model = env["model"]
        assert model["quantization"] == "Q4_1" and len(model["model_sha256"]) == 64, name


def test_every_committed_run_comes_from_the_revision_it_names():
    # every run under results/ (the analysis runs too, which no suite record lists): its
    # config is the experiment's config at the revision its env.json names, and where the
    # run recorded its checkout, that checkout was clean and its code is that revision's
    # (tests/unit/lab/test_provenance.py shows each check failing on a planted mismatch)
    from actadd.lab.runs import run_dirs
    from actadd.lab.runs.provenance import provenance_problems

    runs = run_dirs(RESULTS)
    assert {"pad_confound", "token_injection_v2"} <= {r.name for r in runs}
    # and the runs on other models (results/<model>/<run>, made with --model)
    others = [d for d in RESULTS.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))]
    runs += [r for d in others if d not in runs for r in run_dirs(d)]
    problems = [p for run in runs for p in provenance_problems(run, ROOT)]
    assert not problems, "\n".join(problems)
