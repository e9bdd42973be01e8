"""The locked environment: the lock's shape, what env.json records of it, and the bridge's
KV cache under both names transformers has given it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from conftest import BRIDGE_MODELS

from actadd.lab import runinfo
from actadd.runtime.backends import HF_CACHE_KWARGS, hf_cache_kwarg, route_hf_cache

ROOT = Path(__file__).resolve().parents[2]
LOCKS = sorted((ROOT / "requirements").glob("*.txt"))


def test_there_is_a_lock_for_every_environment_make_builds():
    names = {p.stem for p in LOCKS}
    assert {"full", "main", "ray", "playground", "interop", "tl4", "nodeps", "bootstrap"} <= names
    makefile = (ROOT / "Makefile").read_text()
    for name in names - {"full"}:
        assert f"requirements/{name}.txt" in makefile, f"make installs nothing from {name}.txt"


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_every_locked_package_is_pinned_exactly_with_hashes(lock):
    entries = re.split(r"\n(?=\S)", lock.read_text())
    pins = [e for e in entries if e and not e.startswith(("#", "-"))]
    assert pins, f"{lock.name} locks nothing"
    for entry in pins:
        head = entry.split()[0]
        assert re.fullmatch(r"[A-Za-z0-9._\[\],-]+==[^=\s]+", head), f"not an exact pin: {head}"
        assert "--hash=sha256:" in entry, f"{head} has no hash in {lock.name}"


def test_the_cpu_torch_and_transformerlens_3_are_what_the_main_lock_holds():
    text = (ROOT / "requirements" / "main.txt").read_text()
    assert re.search(r"^torch==2\.13\.0\+cpu ", text, re.M)
    assert re.search(r"^transformer-lens==3\.", text, re.M)
    assert re.search(r"^transformer-lens==4\.", (ROOT / "requirements/tl4.txt").read_text(), re.M)


def test_every_install_in_the_makefile_checks_hashes_or_installs_actadd_itself():
    for line in (ROOT / "Makefile").read_text().splitlines():
        if "pip install" in line and "LATEST_VENV" not in line and "PIP_LOCKED :=" not in line:
            assert "--no-deps -e ." in line, f"an unlocked install: {line.strip()}"


def test_license_is_an_spdx_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"


def test_env_json_records_the_lock_and_any_drift_from_it(tmp_path, monkeypatch):
    info = runinfo.env_info()
    assert info["lock"]["file"].startswith("requirements/")
    assert re.fullmatch(r"[0-9a-f]{64}", info["lock"]["sha256"])
    assert info["lock"]["drift"] == {}, "this environment does not follow its lock"
    # a lock that names another numpy: the drift says so
    import numpy

    (tmp_path / "full.txt").write_text("numpy==0.0.1 \\\n    --hash=sha256:00\n")
    (tmp_path / "tl4.txt").write_text("numpy==0.0.1 \\\n    --hash=sha256:00\n")
    monkeypatch.setattr(runinfo, "LOCK_DIR", tmp_path)
    drift = runinfo.lock_info()["drift"]
    assert drift == {"numpy": {"locked": "0.0.1", "installed": numpy.__version__}}


@pytest.mark.parametrize("spec", BRIDGE_MODELS)
def test_the_bridge_cache_keyword_is_the_one_the_installed_transformers_takes(spec):
    import inspect

    import actadd

    model = actadd.load_model(spec.split(":")[1], backend="bridge")
    name = hf_cache_kwarg(model)
    assert name in HF_CACHE_KWARGS
    assert name in inspect.signature(type(model.original_model).forward).parameters
    before = sum(len(m._forward_pre_hooks) for m in model.modules())
    route_hf_cache(model)  # idempotent: loading routed it already
    assert sum(len(m._forward_pre_hooks) for m in model.modules()) == before
