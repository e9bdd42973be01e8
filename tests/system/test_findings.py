"""The published findings are the report's: the findings pages quote only numbers that the
generated report holds, and the committed report is exactly what the committed tables give.

Findings sections are marked in ``docs/findings.md`` and ``experiments/README.md`` with
``<!-- findings -->`` … ``<!-- /findings -->``. Every number in them (counts, layers,
estimates, intervals, p-values) must occur in ``results/REPORT.md``.
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


def test_the_committed_report_is_what_the_committed_tables_give():
    from actadd.lab.report import collect, render

    claims, prov = collect(RESULTS)
    assert render(claims, prov, Path("results")) == (RESULTS / "REPORT.md").read_text()


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
