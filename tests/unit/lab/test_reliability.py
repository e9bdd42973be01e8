"""Reliability: run directories are locked and checksummed, figures are checked against the
tables their run wrote, and bad input is one clear line before any compute or write. (Kill -9
at random moments and resume: tests/system/test_crash_resume.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import actadd
from actadd import ConfigError, SteeringError
from actadd.lab.runs import LOCK, RunDir
from actadd.sweeps import SweepSpec, load_results, run_sweep

SMALL = dict(
    name="small",
    pairs=[["Love", "Hate"]],
    layers=[1, 2],
    coeffs=[1.0, 2.0],
    prompts=["I went up to my friend and said"],
    target_words=["w"],
)


def small(**over):
    return SweepSpec.from_dict({**SMALL, **over})


# ---------------------------------------------------------------------- the lock


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    first = RunDir(tmp_path / "run", {"kind": "x"}).start()
    with pytest.raises(ConfigError, match=r"in use by another writer \(pid \d+"):
        RunDir(tmp_path / "run", {"kind": "x"}, resume=True).start()
    first.close()
    assert not (tmp_path / "run" / LOCK).exists()
    RunDir(tmp_path / "run", {"kind": "x"}, resume=True).start().close()


def test_two_configs_started_together_cannot_both_write(tmp_path):
    """Both pass the config check before either writes; the lock lets one through."""
    a = RunDir(tmp_path / "run", {"kind": "x", "grid": 1})
    b = RunDir(tmp_path / "run", {"kind": "x", "grid": 2})
    a.start()
    with pytest.raises(ConfigError, match="in use by another writer"):
        b.start()
    a.close()
    with pytest.raises(ConfigError, match="already holds a run"):
        b.start()  # rechecked under the lock: a's config is there now


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    RunDir(out, {"kind": "x"}).start().close()


def test_the_lock_is_released_after_a_run_and_after_a_failure(tmp_path, tiny_llama, monkeypatch):
    run_sweep(small(), tiny_llama, out=tmp_path / "ok", progress=False)
    assert not (tmp_path / "ok" / LOCK).exists()
    import actadd.sweeps.engine as engine

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine, "next_token_unit", boom)  # UnitRunner calls it
    with pytest.raises(RuntimeError):
        run_sweep(small(), tiny_llama, out=tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / LOCK).exists()
    monkeypatch.undo()
    df = run_sweep(small(), tiny_llama, out=tmp_path / "bad", resume=True, progress=False)
    pd.testing.assert_frame_equal(df, load_results(tmp_path / "ok"))


# ---------------------------------------------------------------------- parts


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_sums"])
def test_a_damaged_part_counts_as_not_done_and_is_recomputed(tmp_path, tiny_llama, damage):
    whole = run_sweep(small(), tiny_llama, out=tmp_path / "run", progress=False)
    part = sorted((tmp_path / "run" / "parts").glob("*L001.results.parquet"))[0]
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:50])
    elif damage == "flip":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    else:
        part.with_name(part.name.replace(".results.parquet", ".sha256")).unlink()
    again = run_sweep(small(), tiny_llama, out=tmp_path / "run", resume=True, progress=False)
    pd.testing.assert_frame_equal(again, whole)


# ---------------------------------------------------------------------- figures


def _cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "actadd.cli", *args], env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_figures_check_each_table_fail_per_run_and_leave_no_stale_files(tmp_path, tiny_llama):
    for name in ("a", "b"):
        run_sweep(small(name=name), tiny_llama, out=tmp_path / name, progress=False)
    stale = tmp_path / "b" / "figures" / "old_figure.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    results = tmp_path / "a" / "results.csv"
    results.write_text("\n".join(results.read_text().splitlines()[:3]) + "\n")  # truncated
    (tmp_path / "a" / "results.parquet").unlink()
    done = _cli("figures", "--results", str(tmp_path))
    assert done.returncode == 2
    assert "results.csv does not match the run that wrote it" in done.stderr
    assert "1 of 2 runs failed" in done.stderr and "Traceback" not in done.stderr
    assert f"{tmp_path / 'b'}:" in done.stdout
    assert not stale.exists() and list((tmp_path / "b" / "figures").glob("*.png"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "not a run directory"),
        (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "config.json").write_text('{"kind": "sweep"}'), "no results table"),
    ],
)
def test_figures_on_a_broken_run_is_one_clear_line(tmp_path, setup, message):
    run = tmp_path / "run"
    run.mkdir()
    setup(run)
    done = _cli("figures", str(run))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------- input


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"layers": 3}, "non-empty list of ints, got 3"),
        ({"layers": [2.5]}, "2.5 is not an int"),
        ({"coeffs": 4.0}, "coeffs must be a list, got 4.0"),
        ({"coeffs": [1.0, 1.0]}, r"\[1.0\] given more than once"),
        ({"layers": [1, 1]}, r"\[1\] given more than once"),
        ({"prompts": ["a", "a"]}, r"prompts: \['a'\] given more than once"),
        ({"pairs": [["Love", "Hate"], ["Love", "Hate"]]}, "pairs: .* given more than once"),
        (
            {"pairs": [["Love", "Hate"], {"positive": "x", "label": "Love − Hate"}]},
            "share a name",
        ),
    ],
)
def test_bad_sweep_configs_fail_before_the_model_loads_or_a_file_is_written(
    tmp_path, over, message
):
    config = tmp_path / "c.toml"
    lines = ['kind = "sweep"', 'model = "tiny-llama"']
    for key, value in {**SMALL, **over}.items():
        lines.append(f"{key} = {_toml(value)}")
    config.write_text("\n".join(lines) + "\n")
    done = _cli("sweep", str(config), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert __import__("re").search(message, done.stderr), done.stderr
    assert not (tmp_path / "out").exists()


def test_output_paths_that_cannot_hold_a_run_are_refused(tmp_path, tiny_llama):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        run_sweep(small(), tiny_llama, out=a_file, progress=False)
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(ConfigError, match="Cannot write to"):
            run_sweep(small(), tiny_llama, out=locked / "out", progress=False)
    finally:
        locked.chmod(0o700)


def test_sequences_past_the_context_are_refused_before_compute(tiny_llama):
    n_ctx = tiny_llama.cfg.n_ctx
    long = "ab " * n_ctx
    with pytest.raises(SteeringError, match=f"context of {n_ctx} tokens"):
        actadd.generate(tiny_llama, "Hello", max_new_tokens=n_ctx)
    with pytest.raises(SteeringError, match=f"context of {n_ctx}"):
        actadd.SteeringVector.from_pair(tiny_llama, long, "x", 1)
    spec = small(generation={"n_samples": 1, "max_new_tokens": n_ctx})
    with pytest.raises(ConfigError, match="lower generation.max_new_tokens"):
        run_sweep(spec, tiny_llama, progress=False)
    for bad in (2.5, 0, True):
        with pytest.raises(SteeringError, match="n_samples must be an int >= 1"):
            actadd.generate(tiny_llama, "Hello", n_samples=bad)


def test_importing_actadd_and_the_cli_help_do_not_load_torch():
    code = "import sys, actadd, actadd.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    assert _cli("--help").returncode == 0
    assert Path(actadd.__file__).is_file()
