"""A run records the checkout it ran from, and a run that names a revision whose config or
code differ from what made it is caught (:func:`actadd.lab.runs.provenance.provenance_problems`).
Every check is shown failing on a planted mismatch, in a throwaway git repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from actadd.lab.runinfo import checkout_info
from actadd.lab.runner import kind_of, read_config
from actadd.lab.runs.provenance import provenance_problems

CONFIG = """kind = "word_count"
model = "tiny-llama"
layers = [1]
coeffs = [{coeff}]
prompts = ["I went up to my friend and said"]
target_words = ["w"]
pairs = [{{ positive = " wed", negative = "" }}]
[generation]
n_samples = 2
max_new_tokens = 3
topic_words = ["we", "a"]
"""


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout


def commit(repo: Path, coeff: float, code: str) -> str:
    (repo / "experiments").mkdir(exist_ok=True)
    (repo / "actadd").mkdir(exist_ok=True)
    (repo / "experiments" / "wc.toml").write_text(CONFIG.format(coeff=coeff))
    (repo / "actadd" / "code.py").write_text(code)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"c = {coeff}")
    return git(repo, "rev-parse", "HEAD").strip()


def make_run(repo: Path, coeff: float, revision: str, checkout) -> Path:
    """A run directory ``results/wc`` as ``actadd run`` writes its config and env."""
    out = repo / "results" / "wc"
    out.mkdir(parents=True, exist_ok=True)
    config = read_config(repo / "experiments" / "wc.toml")
    config["coeffs"] = [coeff]
    kind = kind_of(config)
    saved = kind.saved_config(kind.parse({k: v for k, v in config.items() if k != "kind"}))
    (out / "config.json").write_text(json.dumps(saved, default=list))
    env = {"git_revision": revision, **({"checkout": checkout} if checkout else {})}
    (out / "env.json").write_text(json.dumps(env))
    return out


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("results/\n__pycache__/\n")
    return tmp_path


def test_checkout_info_records_the_trees_on_disk(repo):
    rev = commit(repo, 1.0, "x = 1\n")
    info = checkout_info(repo)
    assert info["head"] == rev and info["dirty"] is False and info["path"] == str(repo)
    for folder in ("actadd", "experiments"):
        assert info["trees"][folder] == git(repo, "rev-parse", f"HEAD:{folder}").strip()
    # an edit on disk changes the recorded tree (and marks the checkout dirty); an ignored
    # file does not
    (repo / "actadd" / "__pycache__").mkdir()
    (repo / "actadd" / "__pycache__" / "code.pyc").write_bytes(b"\0")
    assert checkout_info(repo)["trees"] == info["trees"]
    (repo / "actadd" / "code.py").write_text("x = 2\n")
    edited = checkout_info(repo)
    assert edited["dirty"] is True and edited["trees"]["actadd"] != info["trees"]["actadd"]
    assert edited["trees"]["experiments"] == info["trees"]["experiments"]


def test_a_run_from_the_revision_it_names_passes(repo):
    rev = commit(repo, 1.0, "x = 1\n")
    assert provenance_problems(make_run(repo, 1.0, rev, checkout_info(repo)), repo) == []
    # a run made before runs recorded their checkout: the config check alone
    assert provenance_problems(make_run(repo, 1.0, rev, None), repo) == []


def test_a_run_relabelled_with_another_revision_is_caught(repo):
    rev1 = commit(repo, 1.0, "x = 1\n")
    made = checkout_info(repo)  # the run is made at rev1 ...
    rev2 = commit(repo, 4.0, "x = 2\n")
    # ... but its env.json names rev2, whose config and code differ
    out = make_run(repo, 1.0, rev2, {**made, "head": rev2})
    problems = provenance_problems(out, repo)
    assert any("config.json is not experiments/wc.toml" in p for p in problems)
    assert any("actadd/ as the run found it" in p for p in problems)
    # the config check alone catches it for a run with no checkout record
    assert provenance_problems(make_run(repo, 1.0, rev2, None), repo) != []
    # named honestly, the same run passes
    assert provenance_problems(make_run(repo, 1.0, rev1, made), repo) == []


def test_a_run_resumed_at_another_revision_is_caught(repo):
    """Parts computed at rev1, the rest after a resume at rev2: env.json names rev2 alone,
    but the manifest's compute record names both starts' revisions."""
    rev1 = commit(repo, 1.0, "x = 1\n")
    rev2 = commit(repo, 1.0, "x = 2\n")  # a code change between the kill and the resume
    out = make_run(repo, 1.0, rev2, checkout_info(repo))
    starts = [{"revision": rev1, "wall_s": 5.0}, {"revision": rev2, "wall_s": 3.0}]
    (out / "tables.json").write_text(json.dumps({"format": 2, "compute": starts}))
    (problem,) = provenance_problems(out, repo)
    assert "resumed across revisions" in problem and rev1[:12] in problem
    # every start at the revision env.json names: no problem
    (out / "tables.json").write_text(json.dumps({"format": 2, "compute": starts[1:]}))
    assert provenance_problems(out, repo) == []


def test_a_run_from_uncommitted_code_is_caught(repo):
    rev = commit(repo, 1.0, "x = 1\n")
    (repo / "actadd" / "code.py").write_text("x = 'edited, never committed'\n")
    out = make_run(repo, 1.0, rev, checkout_info(repo))
    problems = provenance_problems(out, repo)
    assert any("uncommitted changes" in p for p in problems)
    assert any("actadd/ as the run found it" in p for p in problems)
    # a HEAD that is not the named revision
    other = {**checkout_info(repo), "head": "0" * 40, "dirty": False}
    assert any("checkout's HEAD was" in p for p in provenance_problems(
        make_run(repo, 1.0, rev, other), repo))  # fmt: skip


@pytest.mark.parametrize(
    ("revision", "message"),
    [("", "names no git revision"), ("abc+dirty", "dirty tree"), ("f" * 40, "not a commit")],
)
def test_a_run_without_a_usable_revision_is_caught(repo, revision, message):
    commit(repo, 1.0, "x = 1\n")
    (problem,) = provenance_problems(make_run(repo, 1.0, revision, None), repo)
    assert message in problem


def test_a_run_on_another_model_is_checked_through_the_rule_it_recorded(repo):
    from actadd.lab.retarget import for_model

    (repo / "experiments").mkdir(exist_ok=True)
    text = (
        CONFIG.format(coeff=1.0)
        .replace('model = "tiny-llama"\n', "")
        .replace("layers = [1]", "layers = [16]")
    )
    (repo / "experiments" / "wc.toml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a SmolLM2 config")
    rev = git(repo, "rev-parse", "HEAD").strip()

    def run_on_gemma(edit=None) -> Path:
        out = repo / "results" / "gemma3-270m" / "wc"
        out.mkdir(parents=True, exist_ok=True)
        config = for_model(read_config(repo / "experiments" / "wc.toml"), "gemma3-270m")
        if edit:
            edit(config)
        kind = kind_of(config)
        spec = {k: v for k, v in config.items() if k not in ("kind", "model_rule")}
        saved = {**kind.saved_config(kind.parse(spec)), "model_rule": config["model_rule"]}
        (out / "config.json").write_text(json.dumps(saved, default=list))
        (out / "env.json").write_text(json.dumps({"git_revision": rev}))
        return out

    honest = run_on_gemma()
    assert json.loads((honest / "config.json").read_text())["layers"] == [10]  # 16 of 30 -> 10
    assert provenance_problems(honest, repo) == []
    # planted: a mapped layer that is not the rule's (L9 where the rule gives L10)
    edited = run_on_gemma(lambda c: c.update(layers=[9]))
    assert any(
        "config.json is not experiments/wc.toml" in p for p in provenance_problems(edited, repo)
    )
