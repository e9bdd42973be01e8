"""The published findings are the report's, claim by claim.

Findings sections are marked in ``docs/findings.md`` and ``experiments/README.md`` with
``<!-- findings -->`` … ``<!-- /findings -->``. In both, every sentence (and every table row)
cites claim ids, and each cited claim's estimate (with its sign), interval, counts, p (BH),
one-sided sensitivity p (BH) and verdict, and each cited family's count of SUPPORTED claims,
must be what the claims table regenerated from the committed tables holds
(:func:`actadd.lab.findings.check_findings`; copies of each page with planted errors show
each one caught). As a backstop for the numbers no pattern
checks (run sizes, the unsteered accuracy), every number in either page must also occur
somewhere in ``results/REPORT.md`` or ``results/claims.csv``; the committed report and
``claims.csv`` are exactly what the committed tables give.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
CROSSMODEL_CLAIMS = "crossmodel/rank_claims.csv"
READMES = ("docs/findings.md", "experiments/README.md")
BLOCK = re.compile(r"<!-- findings -->(.*?)<!-- /findings -->", re.S)
NUMBER = re.compile(r"\d+(?:\.\d+)?")

pytestmark = pytest.mark.skipif(
    not (RESULTS / "REPORT.md").exists(), reason="no committed reference results"
)


def numbers(text: str) -> list[str]:
    from actadd.lab.findings import _CITE

    # figure paths, links and claim citations (ids, globs) are not claims
    text = re.sub(r"!?\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"`[^`]*`", "", text)
    return NUMBER.findall(_CITE.sub("", text))


def findings(path: str) -> list[str]:
    return BLOCK.findall((ROOT / path).read_text())


@pytest.mark.parametrize("path", READMES)
def test_every_number_in_the_findings_is_in_the_report(path):
    blocks = findings(path)
    assert blocks, f"{path} has no <!-- findings --> section"
    # REPORT.md lists a large family's SUPPORTED claims only; claims.csv holds them all
    text = "".join(
        (RESULTS / f).read_text() for f in ("REPORT.md", "claims.csv", CROSSMODEL_CLAIMS)
    )
    report = set(NUMBER.findall(text))
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


@pytest.fixture(scope="module")
def citable(claims_table):
    """What a findings block may cite: the report's claims and the cross-model analyses'
    (``actadd crossmodel``; tests/system/test_crossmodel.py checks them against their
    tables)."""
    import pandas as pd

    cross = pd.read_csv(RESULTS / CROSSMODEL_CLAIMS)
    return pd.concat([claims_table, cross], ignore_index=True)


def test_the_committed_report_is_what_the_committed_tables_give(regenerated):
    from actadd.lab.report import render

    claims, prov = regenerated
    assert render(claims, prov, Path("results")) == (RESULTS / "REPORT.md").read_text()


@pytest.fixture(scope="module")
def replication_table(regenerated):
    """The replication rows ``actadd report`` computes (``results/replication.csv``)."""
    import pandas as pd

    from actadd.lab.report import replications

    reps = replications(regenerated[0], RESULTS)
    assert reps, "no other model's results to replicate on"
    return pd.concat([r.rows for r in reps])


def test_the_committed_replication_table_is_what_the_committed_tables_give(
    replication_table, claims_table
):
    # every confirmatory claim of the experiments run on both models is a row, matched
    # through the runs' recorded layer mappings (a wrong record is refused by actadd report)
    assert replication_table.to_csv(index=False) == (RESULTS / "replication.csv").read_text()
    conf = replication_table[replication_table.confirmatory]
    both = set(replication_table.experiment)
    expected = claims_table[claims_table.confirmatory & claims_table.experiment.isin(both)]
    assert sorted(conf.base_cite) == sorted(expected.cite) and len(conf) >= 26


def test_each_other_model_s_committed_report_is_what_its_tables_give():
    # results/<model>/ (made with --model): its own REPORT.md, regenerated the same way
    from actadd.lab.report import collect, render

    others = [d for d in RESULTS.iterdir() if (d / "REPORT.md").is_file() and d.name[0] not in "_."]
    assert others, "no results/<model>/ report committed"
    for d in others:
        claims, prov = collect(d)
        expected = render(claims, prov, Path("results") / d.name)
        assert expected == (d / "REPORT.md").read_text(), f"{d}/REPORT.md is stale"


def test_the_committed_claim_ids_are_the_rule_s_and_unique(claims_table, citable):
    from actadd.lab.report import read_claims

    committed = read_claims(RESULTS)
    cols = ["experiment", "id", "cite", "verdict"]
    assert committed[cols].equals(claims_table[cols].astype(committed[cols].dtypes))
    dup = citable.cite[citable.cite.duplicated()].tolist()
    assert not dup, f"claim ids cited by more than one claim: {dup}"


@pytest.mark.parametrize("path", READMES)
def test_every_findings_sentence_cites_claims_that_hold_its_numbers(
    path, citable, replication_table
):
    from actadd.lab.findings import check_findings

    problems = check_findings((ROOT / path).read_text(), citable, replication_table)
    assert not problems, f"{path}:\n" + "\n".join(problems)


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
        'where it had failed with `" "`\n  [ti2/confirmatory] (2 of 2 confirmatory cells '
        "SUPPORTED; L8\n  [ti2.target_vs_control.love_hate.L8] +1.17 [+0.88, +1.45] nats).",
        'where it had failed with `" "`.',
        'uncited sentence: \'With the `" a"` pad, Love − Hate steers',
    ),
}


#: errors planted in a copy of experiments/README.md: (sentence, with the error, caught as)
PLANTED_README = {
    "flipped verdict of a set with no quantifier": (
        "(+0.51 and +0.50) is NOT SUPPORTED",
        "(+0.51 and +0.50) is SUPPORTED",
        "[cm.kl.smollm2 + cm.kl.gemma3-270m]: the sentence says SUPPORTED of all 2, but 2",
    ),
    "a number in a set that no cited claim holds": (
        "(+0.51 and +0.50) is NOT",
        "(+0.61 and +0.50) is NOT",
        "[cm.kl.smollm2 + cm.kl.gemma3-270m]: +0.61 is no cited claim's estimate",
    ),
    "wrong estimate of a cross-model claim": (
        "(ρ −0.45 [−0.54, −0.04] on SmolLM2)",
        "(ρ +0.45 [−0.54, −0.04] on SmolLM2)",
        "[cm.target_logprob_delta.smollm2]: estimate +0.45",
    ),
    "wrong replication count": (
        "[rep.gemma3-270m] 2 of 26 replicated",
        "[rep.gemma3-270m] 3 of 26 replicated",
        "[rep.gemma3-270m]: '3 of 26', but 2 of its 26 rows are replicated",
    ),
    "wrong replication verdict": (
        "[rep.gemma3-270m.wc3.L16c1] is\nreplicated",
        "[rep.gemma3-270m.wc3.L16c1] is\nmodel-specific",
        "[rep.gemma3-270m.wc3.L16c1]: the sentence says model-specific, the row is replicated",
    ),
    "flipped verdict": (
        "the third design [wc3.L16c1] confirms it (SUPPORTED)",
        "the third design [wc3.L16c1] confirms it (NOT SUPPORTED)",
        "[wc3.L16c1]: the sentence says NOT SUPPORTED, the claim is SUPPORTED",
    ),
    "wrong count of a family": (
        "[ws/scan topic_any] 9 of 150 cells",
        "[ws/scan topic_any] 10 of 150 cells",
        "[ws/scan topic_any]: '10 of 150', but 9 of its 150 claims are SUPPORTED",
    ),
    "wrong counts in a table row": (
        "[wc2.L16c1] 16/64 vs 3/64",
        "[wc2.L16c1] 16/64 vs 2/64",
        "[wc2.L16c1]: '16/64 vs 2/64' is not in the claim's numbers",
    ),
    "wrong sign": (
        "[ti.negative_multiple.weddings.L2] (+2.87 [+1.40, +4.34] nats)",
        "[ti.negative_multiple.weddings.L2] (−2.87 [+1.40, +4.34] nats)",
        "[ti.negative_multiple.weddings.L2]: estimate −2.87",
    ),
    "quantifier the old wording got wrong": (
        "[ti/negative multiples] (0 of 5 pairs SUPPORTED",
        "[ti/negative multiples] (all 5 pairs SUPPORTED",
        "[ti/negative multiples]: 'all 5', but 0 of its 5 claims are SUPPORTED",
    ),
    "wrong one-sided sensitivity": (
        "[wc2.L16c1] one-sided p (BH)\n0.027",
        "[wc2.L16c1] one-sided p (BH)\n0.055",
        "[wc2.L16c1]: one-sided p (BH) 0.055, the claim has 0.0273",
    ),
    "sensitivity count": (
        "4 of 18\nwould pass in the one-sided sensitivity analysis",
        "5 of 18\nwould pass in the one-sided sensitivity analysis",
        "'5 of 18', but 4 of its 18 claims are met one-sided (sensitivity)",
    ),
    "uncited sentence": (
        'The paper\'s prompting arm, `" weddings"` prepended as text, lowers it\n'
        "[ppl.ppl_wedding.prompt.L-1c1]: ratio",
        'The paper\'s prompting arm, `" weddings"` prepended as text, lowers it: ratio',
        "uncited sentence: 'The paper\\'s prompting arm",  # as repr() quotes it
    ),
}
PLANTS = [("docs/findings.md", k, v) for k, v in PLANTED.items()]
PLANTS += [("experiments/README.md", k, v) for k, v in PLANTED_README.items()]


@pytest.mark.parametrize(
    "path, plant, case", PLANTS, ids=[f"{p.split('/')[0]}: {k}" for p, k, _ in PLANTS]
)
def test_errors_planted_in_a_copy_of_the_findings_are_caught(
    path, plant, case, citable, replication_table, tmp_path
):
    from actadd.lab.findings import check_findings

    old, new, caught = case
    page = (ROOT / path).read_text()
    assert page.count(old) == 1, f"the sentence to plant in is gone from {path}: {old!r}"
    assert not check_findings(page, citable, replication_table), f"{path} must pass before planting"
    copy = tmp_path / Path(path).name
    copy.write_text(page.replace(old, new))
    problems = check_findings(copy.read_text(), citable, replication_table)
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
