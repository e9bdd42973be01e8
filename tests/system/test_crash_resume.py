"""Crash and resume with real processes: a sweep run by the command line, killed with SIGKILL
mid-run (once after a few units, and three times at random moments), then resumed, gives the
table of an uninterrupted run. Each test starts several ``python -m actadd.cli`` processes on
the tiny random Llama (about a minute each on 2 cores)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from actadd import ConfigError
from actadd.sweeps import load_results

CLI_CONFIG = """
kind = "sweep"
name = "kill"
model = "tiny-llama"
layers = "all"
coeffs = [1.0, 2.0, 4.0]
aligns = ["front", "back"]
prompts = ["I went up to my friend and said", "Hello there", "One more prompt here"]
target_words = ["w"]
batch_rows = 8
[[pairs]]
positive = "Love"
negative = "Hate"
[[pairs]]
positive = "Calm"
negative = "Anger"
[generation]
n_samples = 4
max_new_tokens = 12
topic_words = ["a"]
"""


def _cli(*args):
    return [sys.executable, "-m", "actadd.cli", *args]


def test_killed_sweep_resumes_to_the_uninterrupted_table(tmp_path):
    config = tmp_path / "kill.toml"
    config.write_text(CLI_CONFIG)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _cli("sweep", str(config), "--out", str(out)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    total = 2 * (1 + 2 * 4)  # (baseline + pairs × layers) for next-token and generation
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            done = list((out / "parts").glob("*.results.parquet")) if out.exists() else []
            if len(done) >= 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    n_done = len(list((out / "parts").glob("*.results.parquet")))
    assert 3 <= n_done < total, f"kill came too late ({n_done}/{total} units done)"
    assert not (out / "results.parquet").exists()

    with pytest.raises(ConfigError, match="--resume"):
        from actadd.lab.runner import run_config

        run_config(config, out)
    assert (
        subprocess.run(
            _cli("sweep", str(config), "--out", str(out), "--resume"), env=env, capture_output=True
        ).returncode
        == 0
    )
    assert (
        subprocess.run(
            _cli("sweep", str(config), "--out", str(tmp_path / "whole")),
            env=env,
            capture_output=True,
        ).returncode
        == 0
    )
    resumed, whole = load_results(out), load_results(tmp_path / "whole")
    assert len(resumed) == len(whole) and not resumed.duplicated().any()
    pd.testing.assert_frame_equal(resumed, whole)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "completions.parquet"),
        pd.read_parquet(tmp_path / "whole" / "completions.parquet"),
    )
    cfg = json.loads((out / "config.json").read_text())
    env_info = json.loads((out / "env.json").read_text())
    assert cfg["kind"] == "sweep" and cfg["coeffs"] == [1.0, 2.0, 4.0]
    assert env_info["model"]["name"] == "tiny-llama" and env_info["packages"]["torch"]
    assert list((out / "figures").glob("*.png")) and list((out / "figures").glob("*.pdf"))


def test_a_sweep_killed_at_random_moments_resumes_to_the_uninterrupted_table(tmp_path):
    """Fault injection: kill -9 three times at random moments, then resume to the end."""
    config = tmp_path / "f.toml"
    config.write_text(
        'kind = "sweep"\nname = "f"\nmodel = "tiny-llama"\nlayers = "all"\ncoeffs = [1.0, 3.0]\n'
        'prompts = ["I went up to my friend and said", "Hello"]\ntarget_words = ["w"]\n'
        'batch_rows = 4\n[[pairs]]\npositive = "Love"\nnegative = "Hate"\n'
        '[generation]\nn_samples = 2\nmax_new_tokens = 6\ntopic_words = ["a"]\n'
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "actadd.cli", "sweep", str(config)]
    out = tmp_path / "run"
    rng = random.Random(0)
    for attempt in range(3):
        proc = subprocess.Popen(
            [*cli, "--out", str(out), *(["--resume"] if attempt else [])],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # wait until it is computing (a part or two written), then a random extra moment
        deadline = time.time() + 180
        start = len(list(out.glob("parts/*.sha256")))
        while time.time() < deadline and proc.poll() is None:
            if len(list(out.glob("parts/*.sha256"))) > start:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run([*cli, "--out", str(out), "--resume"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    whole = subprocess.run([*cli, "--out", str(tmp_path / "whole")], env=env, capture_output=True)
    assert whole.returncode == 0
    resumed = load_results(out)
    assert not resumed.duplicated().any()
    pd.testing.assert_frame_equal(resumed, load_results(tmp_path / "whole"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "completions.parquet"),
        pd.read_parquet(tmp_path / "whole" / "completions.parquet"),
    )
