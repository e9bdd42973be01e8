"""Sweeps on Ray actors: the same numbers as the local run, a killed worker's unit is retried,
resume crosses local and Ray runs, bad ``--ray`` input is one clear line before any compute.

Runs on a local Ray cluster (2 CPUs, no dashboard) started once for this module and shut
down in its ``finally``. Ray is the optional extra ``actadd[ray]``; ``make test`` installs it
(``make setup-ray``). Outside CI a missing Ray skips these tests; in CI it fails them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from actadd import ConfigError
from actadd.cli import main
from actadd.lab.runs import RunDir
from actadd.sweeps import SweepSpec, run_sweep
from actadd.sweeps.engine import units

if os.environ.get("CI"):
    import ray  # CI installs the extra (`make test`): a missing Ray must fail, not skip
else:
    ray = pytest.importorskip("ray", reason="needs the optional extra: make setup-ray")

from actadd.sweeps.distributed import RayExecutor, RayOptions  # noqa: E402

SPEC = dict(
    name="tiny_ray",
    model="tiny-llama",
    pairs=[{"positive": "Love", "negative": "Hate"}, {"positive": " wed", "negative": ""}],
    layers="all",
    coeffs=[1.0, -2.0, 4.0],
    aligns=["front", "back"],
    prompts=["I went up to my friend and said", "Hello there"],
    target_words=["w", "e"],
    generation={"n_samples": 3, "max_new_tokens": 8, "topic_words": ["a"], "sentiment": True},
)
METRIC_KEYS = ["pair", "pad", "layer", "coeff", "align", "text_kind", "text_index", "sample"]


def spec(**over) -> SweepSpec:
    return SweepSpec.from_dict({**SPEC, **over})


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster with room for 2 one-CPU workers."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def backend(ray_cluster):
    b = RayExecutor(RayOptions(workers=2, num_cpus=1))
    try:
        yield b
    finally:
        b.close()  # kills the actors; the module's cluster stays up


def assert_same_run(a, b) -> None:
    """Two runs' tables agree: same rows in the same order, metric values within 1e-5,
    completions identical."""
    ra, rb = pd.read_parquet(a / "results.parquet"), pd.read_parquet(b / "results.parquet")
    assert len(ra) == len(rb) and not rb.duplicated(METRIC_KEYS + ["metric"]).any()
    pd.testing.assert_frame_equal(ra.drop(columns="value"), rb.drop(columns="value"))
    np.testing.assert_allclose(rb.value, ra.value, rtol=0, atol=1e-5)
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "completions.parquet"), pd.read_parquet(b / "completions.parquet")
    )


def test_a_ray_run_on_two_workers_equals_the_local_run(tmp_path, tiny_llama, backend):
    s = spec()
    run_sweep(s, tiny_llama, out=tmp_path / "local", progress=False)
    run_sweep(s, tiny_llama, out=tmp_path / "ray", progress=False, backend=backend)
    assert_same_run(tmp_path / "local", tmp_path / "ray")
    keys = [u.key for u in units(s, tiny_llama.cfg.n_layers)]
    # every unit came from an actor, both actors worked, and the driver wrote each part
    assert sorted(backend.computed) == sorted(keys) and backend.retried == []
    assert len(backend.done_by) == 2 and os.getpid() not in backend.done_by
    run = RunDir.existing(tmp_path / "ray")
    assert all(run.done(k) for k in keys)
    assert not (tmp_path / "ray" / ".lock").exists()
    comps = pd.read_parquet(tmp_path / "ray" / "completions.parquet")
    assert comps.completion.nunique() > 10  # real, varied text was compared


def test_resume_crosses_local_and_ray_runs_of_one_directory(tmp_path, tiny_llama, backend):
    s = spec(generation=None)
    whole, out = tmp_path / "whole", tmp_path / "run"
    run_sweep(s, tiny_llama, out=whole, progress=False)
    run_sweep(s, tiny_llama, out=out, progress=False)
    keys = [u.key for u in units(s, tiny_llama.cfg.n_layers)]

    def drop(victims):
        for k in victims:
            RunDir.existing(out)._sums_path(k).unlink()

    drop(keys[1:4])  # a local run "killed" before these three units: Ray finishes it
    run_sweep(s, tiny_llama, out=out, resume=True, progress=False, backend=backend)
    assert sorted(backend.computed) == sorted(keys[1:4])
    assert_same_run_results(whole, out)
    drop(keys[-3:])  # and a Ray run's directory is finished locally
    run_sweep(s, tiny_llama, out=out, resume=True, progress=False)
    assert_same_run_results(whole, out)
    assert sorted(backend.computed) == sorted(keys[1:4])


def assert_same_run_results(a, b) -> None:
    ra, rb = pd.read_parquet(a / "results.parquet"), pd.read_parquet(b / "results.parquet")
    pd.testing.assert_frame_equal(ra.drop(columns="value"), rb.drop(columns="value"))
    np.testing.assert_allclose(rb.value, ra.value, rtol=0, atol=1e-5)


def test_a_worker_killed_mid_unit_is_replaced_and_its_unit_retried(tmp_path, tiny_llama, backend):
    # generation units long enough (~0.2-1 s each) that a worker is busy when it is killed
    s = spec(generation={**SPEC["generation"], "max_new_tokens": 24, "n_samples": 4})
    run_sweep(s, tiny_llama, out=tmp_path / "local", progress=False)
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            parts = list((out / "parts").glob("*.sha256")) if out.exists() else []
            if len(backend.pids) == 2 and len(parts) >= 2:
                pid = backend.pids[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        run_sweep(s, tiny_llama, out=out, progress=False, backend=backend)
    finally:
        killer.join()
    n_units = len(units(s, tiny_llama.cfg.n_layers))
    assert killed, "the worker was never killed"
    assert len(backend.retried) >= 1  # the unit the dead worker held was sent again
    assert killed[0] not in backend.pids.values()  # a replacement took its place
    assert len(backend.computed) == len(set(backend.computed)) == n_units
    assert len(list((out / "parts").glob("*.sha256"))) == n_units
    assert_same_run(tmp_path / "local", out)  # no row lost, duplicated or changed


def test_an_actor_with_another_model_is_refused_before_any_unit(tmp_path, tiny_llama, backend):
    s = spec(model="tiny-gpt2", generation=None)  # actors load tiny-gpt2, the driver has llama
    with pytest.raises(ConfigError, match="different model"):
        run_sweep(s, tiny_llama, out=tmp_path / "run", progress=False, backend=backend)
    assert backend.computed == []
    assert not list((tmp_path / "run" / "parts").glob("*"))


CONFIG = """
kind = "sweep"
name = "cli"
model = "tiny-llama"
layers = [1]
coeffs = [1.0]
prompts = ["Hello there"]
target_words = ["w"]
[[pairs]]
positive = "Love"
negative = "Hate"
"""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ray", "127.0.0.1:1"], "No Ray cluster answers at 127.0.0.1:1"),
        (["--ray", "nonsense"], "is not HOST:PORT"),
        (["--ray", "--ray-workers", "0"], "(--ray-workers) must be a whole number >= 1"),
        (["--ray", "--ray-cpus", "0"], "need resources (--ray-cpus, --ray-gpus)"),
        (["--ray-gpus", "1"], "only apply with --ray"),
    ],
)
def test_bad_ray_options_are_one_line_before_any_compute(
    tmp_path, capsys, monkeypatch, args, message
):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    monkeypatch.setattr("actadd.models.load_model", _no_model)
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("actadd: error:")
    assert not out.exists()


def test_ray_not_installed_is_one_line(tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when it is missing
    monkeypatch.setattr("actadd.models.load_model", _no_model)
    results = str(tmp_path / "results")
    assert main(["suite", "--suite", str(_suite(tmp_path)), "--results", results, "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "actadd: error: --ray needs Ray, an optional extra that is not installed here: "
        "pip install 'actadd[ray]' (or `make setup-ray`), or run without --ray."
    )


def _suite(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text('experiments = ["c"]\n')
    return suite


def _no_model(*a, **k):
    raise AssertionError("a model was loaded despite bad --ray input")


DEMO = """
kind = "demo"
model = "tiny-llama"
pair = ["Love", "Hate"]
layer = 1
coeff = 2.0
prompts = ["Hello there"]
n_samples = 1
max_new_tokens = 4
"""


def test_the_suite_on_ray_runs_sweep_units_there_and_other_kinds_here(
    tmp_path, capsys, ray_cluster
):
    from actadd.lab.runner import run_config

    (tmp_path / "c.toml").write_text(CONFIG.replace("coeffs = [1.0]", "coeffs = [1.0, 3.0]"))
    (tmp_path / "demo.toml").write_text(DEMO)
    suite = tmp_path / "suite.toml"
    suite.write_text('experiments = ["c", "demo"]\n')
    results = tmp_path / "results"
    # "auto" joins the cluster this process is connected to (the module's local cluster)
    args = ["suite", "--suite", str(suite), "--results", str(results), "--ray", "auto"]
    assert main([*args, "--ray-workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "c -> " in out and "(on Ray)" in out and "(here: not sweep units)" in out
    run_config(tmp_path / "c.toml", tmp_path / "local")
    assert_same_run_results(tmp_path / "local", results / "c")
    assert (results / "demo" / "config.json").is_file()
    assert ray.is_initialized()  # the suite did not shut down a cluster it did not start
