"""Run directories hold up under damage, a changed model, concurrency and a full disk.

Every file a run records (tables, parts, config, env, the manifest) is checked by
``actadd verify``; ``figures``, ``report`` and ``--resume`` refuse (or repair) a damaged run
with one line naming the file; a resume never mixes two models or drops a unit's table."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import actadd
from actadd import ConfigError
from actadd.cli import main
from actadd.errors import DiskFullError
from actadd.lab.runner import figures_for, read_config, run_experiment
from actadd.lab.runs import LOCK, RunDir
from actadd.sweeps import SweepSpec, run_sweep

TOML = """kind = "sweep"
name = "s"
model = "{model}"
layers = [1, 2]
coeffs = [1.0, 2.0]
prompts = ["I went up to my friend and said", "Hello"]
target_words = ["w"]
[[pairs]]
positive = "Love"
negative = "Hate"
[generation]
n_samples = 2
max_new_tokens = 4
topic_words = ["a"]
"""
GENERATION_PART = "parts/generation-pair0-right-L001.completions.parquet"


def write_config(path: Path, model: str = "tiny-llama") -> Path:
    path.write_text(TOML.format(model=model))
    return path


def spec_of(config: Path) -> SweepSpec:
    return SweepSpec.from_dict({k: v for k, v in read_config(config).items() if k != "kind"})


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_llama) -> tuple[Path, Path]:
    """(config file, a finished sweep run with parts, made by the run store)."""
    root = tmp_path_factory.mktemp("made")
    config = write_config(root / "s.toml")
    # on one thread, as every test (tests/unit/conftest.py): a module fixture is made before
    # the per-test one-thread fixture, and another thread count sums in another order
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(spec_of(config), tiny_llama, out=root / "run", progress=False)
    finally:
        torch.set_num_threads(previous)
    return config, root / "run"


@pytest.fixture
def run(made, tmp_path) -> Path:
    """A fresh copy of the finished run, alone in a results directory."""
    shutil.copytree(made[1], tmp_path / "results" / "s")
    return tmp_path / "results" / "s"


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error(err: str) -> str:
    """The one ``actadd: error:`` line of a refusal (and no traceback)."""
    lines = [line for line in err.splitlines() if line.startswith("actadd: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tables(out: Path) -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(out / f"{t}.parquet") for t in ("results", "completions")}


def assert_same_tables(a: Path, b: Path) -> None:
    for name, df in tables(a).items():
        pd.testing.assert_frame_equal(df, tables(b)[name], obj=name)


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncate": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3]),
    "flip": flip,
    "delete": lambda p: p.unlink(),
}


# ---------------------------------------------------------------------- verify (case 1)


def test_verify_passes_a_sound_run_and_the_committed_results(run, capsys):
    rc, out, _ = cli(capsys, "verify", run)
    assert rc == 0 and out.strip() == f"{run}: ok"
    results = Path(actadd.__file__).parents[1] / "results"
    rc, out, err = cli(capsys, "verify", "--all", results)
    assert rc == 0, out + err
    assert out.count(": ok") == len(list(results.glob("*/config.json"))) > 10


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize(
    ("name", "resume_repairs"),
    [
        ("completions.csv", True),  # a final table: rebuilt from the parts
        (GENERATION_PART, True),  # a unit's part: recomputed
        ("env.json", True),  # rewritten by the resume
        ("config.json", False),  # the run's identity: restore it, or start again
        ("tables.json", None),  # the manifest: a deleted one is rebuilt, a damaged one refused
    ],
)
def test_each_damaged_file_is_named_by_verify_figures_report_and_resume(
    made, run, tiny_llama, capsys, name, resume_repairs, damage
):
    path = run / name
    DAMAGE[damage](path)
    rc, out, _ = cli(capsys, "verify", run)
    assert rc == 1 and path.name in out, out
    for command in (("figures", run), ("report", "--results", run.parent)):
        rc, _, err = cli(capsys, *command)
        assert rc == 2 and path.name in one_error(err), err
    assert not (run / "figures").exists()  # nothing was drawn from a damaged run

    env_before = (run / "env.json").read_bytes() if (run / "env.json").exists() else None
    repairs = resume_repairs if resume_repairs is not None else damage == "delete"
    if not repairs:
        with pytest.raises(ConfigError, match=path.name):
            run_sweep(spec_of(made[0]), tiny_llama, out=run, resume=True, progress=False)
        after = (run / "env.json").read_bytes() if (run / "env.json").exists() else None
        assert after == env_before and not (run / LOCK).exists()  # refused before writing
        return
    run_sweep(spec_of(made[0]), tiny_llama, out=run, resume=True, progress=False)
    assert cli(capsys, "verify", run)[0] == 0
    assert_same_tables(run, made[1])


def test_an_unrecorded_table_is_refused_not_read_unchecked(run, capsys):
    """A table file the run never wrote (here a CSV beside the recorded Parquet) is named."""
    (run / "results.parquet").unlink()
    (run / "extra.csv").write_text("a\n1\n")
    rc, out, _ = cli(capsys, "verify", run)
    assert rc == 1 and "extra.csv is not one of the tables the run recorded" in out
    assert "results.parquet is missing" in out


# ---------------------------------------------------------------------- model (case 2)


def test_a_resume_with_another_model_is_refused_before_anything_is_written(
    made, run, tiny_gpt2, tiny_llama
):
    (run / "parts" / "next_token-pair0-right-L002.sha256").unlink()  # killed partway
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for other in (tiny_gpt2, actadd.load_model("tiny-llama", seed=1)):
        with pytest.raises(ConfigError, match="resuming would mix two models") as info:
            run_sweep(spec_of(made[0]), other, out=run, resume=True, progress=False)
        assert "--fresh or a new --out" in str(info.value)
    weights = json.loads((run / "tables.json").read_text())["model"]["weights_sha256"]
    assert weights in str(info.value)  # the run's weights, and the other model's
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    run_sweep(spec_of(made[0]), tiny_llama, out=run, resume=True, progress=False)
    assert_same_tables(run, made[1])  # the run's own model finishes it


def test_replacing_the_gguf_file_of_a_run_refuses_the_resume_naming_both_hashes(
    tmp_path, monkeypatch, capsys
):
    from unit.models.synthetic_gguf import write_tiny_llama_gguf

    monkeypatch.setenv("ACTADD_CACHE_DIR", str(tmp_path / "cache"))  # never the shared cache
    gguf = tmp_path / "model.gguf"
    write_tiny_llama_gguf(gguf, seed=0)
    config = write_config(tmp_path / "g.toml", model=str(gguf))
    monkeypatch.setattr(RunDir, "redraw", lambda self, draw: [])  # figures are not the point
    assert cli(capsys, "sweep", config, "--out", tmp_path / "run")[0] == 0
    old = json.loads((tmp_path / "run" / "env.json").read_text())["model"]["model_sha256"]
    write_tiny_llama_gguf(gguf, seed=1)  # another model at the same path
    new = actadd.load_model(gguf).actadd_source["sha256"]
    env = (tmp_path / "run" / "env.json").read_bytes()
    rc, _, err = cli(capsys, "sweep", config, "--out", tmp_path / "run", "--resume")
    line = one_error(err)
    assert rc == 2 and old in line and new in line and old != new
    assert (tmp_path / "run" / "env.json").read_bytes() == env  # still the old model's


# ---------------------------------------------------------------------- parts (case 3)


def test_a_unit_whose_checksums_omit_a_table_is_recomputed_not_dropped(made, run, tiny_llama):
    sums = run / "parts" / "generation-pair0-right-L001.sha256"
    record = json.loads(sums.read_text())
    listed = record.get("tables", record)  # {table: sha256}, in either checksum format
    only_results = {"results": listed["results"]}
    sums.write_text(
        json.dumps({**record, "tables": only_results} if "tables" in record else only_results)
    )
    assert not RunDir.existing(run).done("generation-pair0-right-L001", ("completions", "results"))
    run_sweep(spec_of(made[0]), tiny_llama, out=run, resume=True, progress=False)
    assert_same_tables(run, made[1])  # no completion lost
    assert set(json.loads(sums.read_text())["tables"]) == {"completions", "results"}


def test_finalize_refuses_a_unit_without_an_expected_table(tmp_path):
    run = RunDir(tmp_path / "run", {"kind": "x"}).start()
    run.write_part("a", {"results": pd.DataFrame({"v": [1]})})
    with pytest.raises(ConfigError, match="Unit a .* has no completions table"):
        run.finalize(["a"], ("results", "completions"), {"a": ("results", "completions")})


# ---------------------------------------------------------------------- broken files (case 4)


def _kind(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "kind": "capability"}))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda r: (r / "tables.json").write_text("[1, 2, 3]"),
            "tables.json is not a run manifest",
        ),
        (lambda r: (r / "config.json").write_text("[]"), "config.json is not a run config"),
        (_kind, "config.json was changed after the run wrote it"),
        (lambda r: (r / "env.json").write_text("garbage"), "env.json was changed after the run"),
    ],
    ids=["tables-list", "config-list", "kind-edited", "env-garbage"],
)
def test_report_on_a_broken_run_is_one_line(run, capsys, damage, message):
    damage(run)
    rc, _, err = cli(capsys, "report", "--results", run.parent)
    assert rc == 2 and message in one_error(err)


def _legacy(run: Path) -> None:
    """Make ``run`` look like one made before manifest format 2 (like results/)."""
    manifest = json.loads((run / "tables.json").read_text())
    (run / "tables.json").write_text(json.dumps(manifest["tables"]))
    env = json.loads((run / "env.json").read_text())
    del env["run_format"]
    (run / "env.json").write_text(json.dumps(env))
    shutil.rmtree(run / "parts")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_kind, "cannot compute its claims (KeyError"),
        (lambda r: (r / "env.json").write_text("garbage"), "env.json is not a JSON object"),
    ],
    ids=["kind-edited", "env-garbage"],
)
def test_report_on_a_broken_legacy_run_is_one_line(run, capsys, damage, message):
    _legacy(run)
    assert cli(capsys, "verify", run)[0] == 0
    damage(run)
    rc, _, err = cli(capsys, "report", "--results", run.parent)
    assert rc == 2 and message in one_error(err)


def test_a_resume_where_parts_is_a_file_is_one_line(made, run, capsys):
    shutil.rmtree(run / "parts")
    (run / "parts").write_text("not a directory")
    rc, _, err = cli(capsys, "sweep", made[0], "--out", run, "--resume")
    assert rc == 2 and "parts is a file, not the directory" in one_error(err)


# ---------------------------------------------------------------------- concurrency (case 5)


def _thread(target, errors: list) -> threading.Thread:
    def body():
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    t = threading.Thread(target=body)
    t.start()
    return t


@pytest.mark.slow
def test_figures_wait_for_a_writer_drawing_them_and_never_break_it(
    made, tmp_path, tiny_llama, monkeypatch
):
    from actadd.studies.sweep.kind import SweepKind

    drawing, release = threading.Event(), threading.Event()
    real = SweepKind.figures

    def held(self, run):
        drawing.set()
        release.wait(60)
        return real(self, run)

    monkeypatch.setattr(SweepKind, "figures", held)
    out, errors = tmp_path / "run", []
    config = read_config(made[0])
    writer = _thread(lambda: run_experiment(config, out, model=tiny_llama), errors)
    assert drawing.wait(120)
    reader = _thread(lambda: figures_for(out), errors)
    time.sleep(1.0)
    assert reader.is_alive() and not errors  # waiting for the lock, not failing
    release.set()
    writer.join(120)
    reader.join(120)
    assert not errors, errors
    assert len(list((out / "figures").glob("*.png"))) > 4
    assert not list(out.glob(".figures*")) and not (out / LOCK).exists()


def test_figures_on_a_run_being_computed_is_refused_at_once(run):
    with RunDir.existing(run).hold("writing", wait=0):
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=r"in use by another writer \(pid \d+ .*writing"):
            figures_for(run)
        assert time.monotonic() - t0 < 5


@pytest.mark.slow
def test_three_figures_commands_at_once_all_succeed(run):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "actadd.cli", "figures", str(run)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert len(list((run / "figures").glob("*.png"))) > 4
    assert not list(run.glob(".figures*")) and not (run / LOCK).exists()


# ---------------------------------------------------------------------- full disk (case 6)


@pytest.fixture
def tmpfs(tmp_path):
    """A 64 KiB tmpfs (root only), unmounted afterwards; yields (directory, resize)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)

    try:
        yield mnt, resize
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_sweep_on_a_full_disk_is_one_line_and_resumes_exactly(made, tmpfs, tiny_llama, capsys):
    mnt, resize = tmpfs
    out = mnt / "run"
    rc, _, err = cli(capsys, "sweep", made[0], "--out", out)
    line = one_error(err)
    assert rc == 2 and "no space left on device writing" in line and "--resume" in line
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no half files
    assert not (out / LOCK).exists() and list((out / "parts").glob("*.sha256"))
    resize("16m")
    run_sweep(spec_of(made[0]), tiny_llama, out=out, resume=True, progress=False)
    assert_same_tables(out, made[1])


def test_figures_on_a_full_disk_are_one_line_and_leave_the_old_ones(run, tmpfs, capsys):
    mnt, resize = tmpfs
    resize("16m")
    shutil.copytree(run, mnt / "run")
    (mnt / "run" / "figures").mkdir()
    (mnt / "run" / "figures" / "old.png").write_bytes(b"old")
    free = shutil.disk_usage(mnt).free
    (mnt / "filler").write_bytes(b"\0" * (free - 8192))
    rc, _, err = cli(capsys, "figures", mnt / "run")
    line = one_error(err)
    assert rc == 2 and "no space left on device" in line and "actadd figures" in line
    assert (mnt / "run" / "figures" / "old.png").read_bytes() == b"old"
    assert not list((mnt / "run").glob(".figures*")) and not (mnt / "run" / LOCK).exists()


def test_a_full_disk_while_writing_a_part_leaves_no_half_file(
    made, tmp_path, tiny_llama, monkeypatch
):
    """The same, simulated: the Parquet writer raises ENOSPC on its fifth file."""
    real, calls = pd.DataFrame.to_parquet, []

    def to_parquet(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 5:
            Path(path).write_bytes(b"half")  # what a full disk leaves behind
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    out = tmp_path / "run"
    with pytest.raises(DiskFullError, match="no space left on device writing .*--resume"):
        run_sweep(spec_of(made[0]), tiny_llama, out=out, progress=False)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.undo()
    run_sweep(spec_of(made[0]), tiny_llama, out=out, resume=True, progress=False)
    assert_same_tables(out, made[1])


# ---------------------------------------------------------------------- minor (case 7)


def test_a_missing_manifest_is_refused_or_warned_loudly_and_verify_reports_it(run, capsys):
    (run / "tables.json").unlink()
    results = run / "results.csv"
    results.write_text(results.read_text().replace("0.", "9.", 1))  # an edited number
    rc, _, err = cli(capsys, "report", "--results", run.parent)
    assert rc == 2 and "tables.json is missing" in one_error(err)  # this run wrote one
    env = json.loads((run / "env.json").read_text())
    del env["run_format"]  # a run from before manifests
    (run / "env.json").write_text(json.dumps(env))
    rc, _, err = cli(capsys, "report", "--results", run.parent)
    assert rc == 0 and "actadd: warning:" in err and "has no tables.json" in err
    rc, out, _ = cli(capsys, "verify", run)
    assert rc == 1 and "tables.json is missing" in out


def test_a_run_killed_between_its_final_tables_is_refused_until_resumed(
    made, tmp_path, tiny_llama, capsys, monkeypatch
):
    class Killed(BaseException):
        pass

    real = RunDir.write_table

    def killed(self, name, df, formats=("csv",)):
        if name == "completions":
            raise Killed  # killed after the results table, before the completions
        return real(self, name, df, formats)

    monkeypatch.setattr(RunDir, "write_table", killed)
    out = tmp_path / "results" / "s"
    with pytest.raises(Killed):
        run_sweep(spec_of(made[0]), tiny_llama, out=out, progress=False)
    monkeypatch.undo()
    assert (out / "results.parquet").exists() and not (out / "completions.parquet").exists()
    for command in (("figures", out), ("report", "--results", out.parent)):
        rc, _, err = cli(capsys, *command)
        assert rc == 2 and "is incomplete" in one_error(err) and "--resume" in err
    assert cli(capsys, "verify", out)[0] == 1
    run_sweep(spec_of(made[0]), tiny_llama, out=out, resume=True, progress=False)
    assert cli(capsys, "verify", out)[0] == 0


def test_a_garbage_lock_file_is_named_with_what_it_holds(run, made, capsys):
    (run / LOCK).write_text("garbage")
    for command in (("figures", run), ("sweep", made[0], "--out", run, "--resume")):
        rc, _, err = cli(capsys, *command)
        line = one_error(err)
        assert rc == 2 and "is not a lock actadd wrote (it holds 'garbage')" in line
        assert f"delete {run / LOCK}" in line and "None" not in line
