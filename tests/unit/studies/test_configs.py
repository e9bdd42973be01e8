"""The studies' configs: the saved ``config.json`` of every committed run is what the config
writes today (so every run resumes), the old key ``pads`` of ``pad_confound`` still reads
(with a warning). That importing them imports no model code: tests/unit/test_config_imports.py."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from actadd.lab.report import stale_runs
from actadd.lab.retarget import for_model
from actadd.lab.runner import kind_of, read_config
from actadd.lab.runs import RunDir

ROOT = Path(__file__).resolve().parents[3]
STUDY_KINDS = ("capability", "perplexity", "demo", "pad_confound", "token_injection")
RUNS = sorted(
    p.parent.name
    for p in (ROOT / "results").glob("*/config.json")
    if json.loads(p.read_text())["kind"] in STUDY_KINDS
)


def saved_text(config: dict) -> str:
    """``config.json`` as :meth:`RunDir.start` writes it (``actadd.lab.runinfo.write_json``)."""
    kind = kind_of(config)
    spec = kind.parse({k: v for k, v in config.items() if k != "kind"})
    return json.dumps(kind.saved_config(spec), indent=2, sort_keys=True, default=str) + "\n"


def test_the_committed_runs_of_every_study_kind_are_found():
    assert {json.loads((ROOT / "results" / r / "config.json").read_text())["kind"] for r in RUNS}
    assert len(RUNS) >= 6, RUNS


@pytest.mark.parametrize("run", RUNS)
def test_a_committed_config_reads_back_to_the_same_bytes(run):
    stored = (ROOT / "results" / run / "config.json").read_text()
    with warnings.catch_warnings():
        # the one old name a committed config.json holds (the saved name of pad_tokens);
        # any other warning is still an error
        warnings.filterwarnings("ignore", ".*the key 'pads' is now called", DeprecationWarning)
        text = saved_text(json.loads(stored))
    assert text == stored


@pytest.mark.parametrize("run", RUNS)
def test_the_shipped_experiment_config_resumes_its_committed_run(tmp_path, run):
    # as `actadd run` reads it: a per-model table ([models."..."]) is not the config's own
    config = for_model(read_config(ROOT / "experiments" / f"{run}.toml"), None)
    stored = (ROOT / "results" / run / "config.json").read_text()
    if run in stale_runs(ROOT / "results"):
        # listed as waiting for a rerun: it must really differ (an entry cannot outlive the
        # rerun that fixes it), and REPORT.md says so (tests/system/test_findings.py)
        assert saved_text(config) != stored, f"{run} matches its config: drop it from STALE.toml"
        return
    assert saved_text(config) == stored
    # the run directory policy agrees: the same config resumes, nothing is refused
    out = tmp_path / run
    out.mkdir()
    (out / "config.json").write_text(stored)
    kind = kind_of(config)
    spec = kind.parse({k: v for k, v in config.items() if k != "kind"})
    assert RunDir(out, kind.saved_config(spec), resume=True).resumed


def test_pad_confound_reads_the_old_key_pads_with_a_warning_and_saves_it_as_before():
    config = read_config(ROOT / "experiments" / "pad_confound.toml")
    old = json.loads(json.dumps(config).replace('"pad_tokens"', '"pads"'))
    assert "pads" in old and "pads" in old["generation"]
    with pytest.warns(DeprecationWarning, match="'pads' is now called 'pad_tokens'"):
        assert saved_text(old) == saved_text(config)
    kind = kind_of(config)
    with pytest.raises(Exception, match="give 'pad_tokens' only"):
        kind.parse({**config, "pads": [" "]})


def test_every_stale_entry_names_a_committed_run_and_the_report_warns(tmp_path):
    from actadd.lab.report import stale_section

    stale = stale_runs(ROOT / "results")
    assert set(stale) <= set(RUNS), f"STALE.toml names runs that are not committed: {stale}"
    assert all(info.get("since") and info.get("reason") for info in stale.values())
    assert stale_section(tmp_path) == []  # no file: no section
    (tmp_path / "STALE.toml").write_text('[x]\nsince = "abc"\nreason = "changed"\n')
    section = "\n".join(stale_section(tmp_path))
    assert "## Stale runs (rerun pending)" in section and "**x** (config changed at abc)" in section
