"""One run-directory policy for every kind, and the kind registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from actadd import ConfigError
from actadd.lab.kinds import KIND_MODULES, Kind, get_kind
from actadd.lab.runs import RunDir


def test_a_new_run_writes_nothing_until_started(tmp_path):
    out = tmp_path / "run"
    run = RunDir(out, {"kind": "x", "a": 1})
    assert not out.exists()
    run.start()
    assert json.loads((out / "config.json").read_text()) == {"kind": "x", "a": 1}
    assert "packages" in json.loads((out / "env.json").read_text())


def test_rerun_needs_resume_and_the_same_config(tmp_path):
    out = tmp_path / "run"
    RunDir(out, {"kind": "x", "a": 1}).start()
    with pytest.raises(ConfigError, match="already holds a run"):
        RunDir(out, {"kind": "x", "a": 1})
    with pytest.raises(ConfigError, match="different config"):
        RunDir(out, {"kind": "x", "a": 2}, resume=True)
    assert RunDir(out, {"a": 1, "kind": "x"}, resume=True).resumed  # key order is irrelevant


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        RunDir(f, {"kind": "x"})


def test_parts_mark_units_done_and_finalize_in_key_order(tmp_path):
    run = RunDir(tmp_path / "run", {"kind": "x"}).start()
    run.write_part("b", {"results": pd.DataFrame({"v": [2]}), "extra": pd.DataFrame({"e": [1]})})
    run.write_part("a", {"results": pd.DataFrame({"v": [1]})})
    assert run.done("a") and run.done("b") and not run.done("c")
    with pytest.raises(ConfigError, match="Unit c .* is not finished"):
        run.finalize(["a", "b", "c"])
    final = run.finalize(["a", "b"], ("results", "extra"))
    assert final["results"].v.tolist() == [1, 2] and final["extra"].e.tolist() == [1]
    assert run.read_table("results").v.tolist() == [1, 2]  # parquet and csv at the top
    assert (run.out / "results.csv").is_file()
    assert not list(run.out.rglob("*.tmp"))


def test_the_manifest_records_what_each_start_cost_and_a_kill_keeps_it(tmp_path, monkeypatch):
    """tables.json's ``compute``: one segment per start, kept current as units finish, so a
    run killed after a unit keeps that unit's time; a resume adds a segment."""
    import time

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    out = tmp_path / "run"
    run = RunDir(out, {"kind": "x"}).start()
    t = time.process_time()
    while time.process_time() - t < 0.2:  # CPU work the segment must count
        pass
    run.write_part("a", {"results": pd.DataFrame({"v": [1]})})
    run.close()  # killed here: no mark_complete
    (seg,) = json.loads((out / "tables.json").read_text())["compute"]
    assert seg["cpu_s"] >= 0.2 and seg["wall_s"] >= seg["cpu_s"] - 0.1
    assert seg["omp_num_threads"] == "3" and seg["max_rss_mb"] > 0 and seg["started"]
    again = RunDir(out, {"kind": "x"}, resume=True).start()
    again.mark_complete()
    again.close()
    first, second = json.loads((out / "tables.json").read_text())["compute"]
    assert first == seg and second["started"] >= seg["started"]


def test_a_run_stopped_by_an_error_keeps_what_its_start_cost(tmp_path):
    """A kind with no units that fails (or is interrupted) after computing for a while
    records that time, not the 0 s of its start."""
    import time

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), RunDir(out, {"kind": "x"}).start():
        t = time.process_time()
        while time.process_time() - t < 0.2:
            pass
        raise KeyboardInterrupt
    (seg,) = json.loads((out / "tables.json").read_text())["compute"]
    assert seg["cpu_s"] >= 0.2 and seg["wall_s"] >= 0.2


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux only")
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmRSS")
def test_a_run_s_peak_memory_is_its_own_not_an_earlier_run_s_in_the_same_process(tmp_path):
    """actadd suite runs every experiment in one process: a small run after a large one
    records its own peak resident memory, not the large run's. Each peak is read against
    the resident memory when its run starts (the test process's own history, e.g. memory
    an earlier test left resident, is not the run's)."""
    import threading

    import numpy as np

    def resident_mb():
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(x for x in status if x.startswith("VmRSS:")).split()[1]) / 1024

    def peak_over_start(name, mb):
        run = RunDir(tmp_path / name, {"kind": "x"}).start()
        at_start = resident_mb()
        a = np.ones(mb * 2**20 // 8)  # touched: resident
        worker = threading.Thread(target=lambda: None)  # a thread that ends meanwhile
        worker.start()
        worker.join()
        del a
        run.write_part("u", {"results": pd.DataFrame({"v": [1]})})
        run.close()
        (seg,) = json.loads((tmp_path / name / "tables.json").read_text())["compute"]
        assert seg["max_rss_since"] == "start"
        return seg["max_rss_mb"] - at_start

    assert peak_over_start("large", 300) > 250  # the large run's own peak is recorded
    assert peak_over_start("small", 1) < 100  # and not carried into the next run


def test_existing_reads_a_run_or_says_it_is_not_one(tmp_path):
    RunDir(tmp_path / "run", {"kind": "sweep"}).start()
    assert RunDir.existing(tmp_path / "run").config == {"kind": "sweep"}
    with pytest.raises(ConfigError, match="not a run directory"):
        RunDir.existing(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="no results table"):
        RunDir.existing(tmp_path / "run").read_table("results")


def test_every_registered_kind_follows_the_protocol():
    for name in KIND_MODULES:
        kind = get_kind(name)
        assert isinstance(kind, Kind) and kind.name == name and kind.description
    with pytest.raises(ConfigError, match="known: \\['alignment'"):
        get_kind("nope")


@pytest.mark.slow
def test_kinds_never_import_the_experiment_runner():
    """The dependency runs one way (experiments -> kinds): importing every kind leaves
    actadd.lab.runner unimported."""
    code = (
        "import sys; from actadd.lab.kinds import KIND_MODULES, get_kind; "
        "[get_kind(k) for k in KIND_MODULES]; print('actadd.lab.runner' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_revision_is_dirty_for_code_changes_but_not_for_results(tmp_path):
    from actadd.lab.runinfo import git_revision

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.csv").write_text("a\n1\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert not git_revision(tmp_path).endswith("+dirty")
    (tmp_path / "results" / "t.csv").write_text("a\n2\n")  # a run rewrote its own table
    assert not git_revision(tmp_path).endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_revision(tmp_path).endswith("+dirty")


def test_a_compute_record_that_is_not_a_list_is_one_line_on_resume(tmp_path):
    out = tmp_path / "run"
    run = RunDir(out, {"kind": "x"}).start()
    run.close()
    manifest = json.loads((out / "tables.json").read_text())
    assert (
        manifest["compute"][0]["revision"]
        == json.loads((out / "env.json").read_text())["git_revision"]
    )
    (out / "tables.json").write_text(json.dumps({**manifest, "compute": {"wall_s": 1}}))
    with pytest.raises(ConfigError, match="compute record is not a list"):
        RunDir(out, {"kind": "x"}, resume=True).start()
