"""The package layout: tiers as folders, imports pointing down, old paths that still work.

Tiers, lowest first. A module may import its own tier and the tiers below it, never above
(function-level imports count too: hiding an import inside a function does not change which
way the dependency points).
"""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

from actadd._legacy import MOVED

PACKAGE = Path(__file__).resolve().parents[2] / "actadd"

TIERS = [
    # the package root's small shared pieces
    {"actadd", "actadd.errors", "actadd.config", "actadd.paths", "actadd._compat",
     "actadd.progress", "actadd._legacy", "actadd._io", "actadd.data"},
    {"actadd.runtime"},
    {"actadd.models"},
    {"actadd.core"},
    {"actadd.interop"},
    {"actadd.lab"},
    {"actadd.plots"},
    {"actadd.sweeps"},
    {"actadd.studies"},
    {"actadd.ui"},
    {"actadd.cli"},
]  # fmt: skip

#: upward imports that exist today, each to be removed by splitting or inverting it; the test
#: fails on any new one, and on an entry here that no longer exists (so the list only shrinks)
KNOWN_UPWARD: set[tuple[str, str]] = set()  # none left: keep it that way
#: the public API re-exports names from every tier (lazily); it is the top, not a tier
EXEMPT = {"actadd"}


def tier_of(module: str) -> int:
    parts = module.split(".")
    for depth in (2, 1):
        prefix = ".".join(parts[:depth])
        for i, tier in enumerate(TIERS):
            if prefix in tier:
                return i
    raise AssertionError(f"{module} is in no tier")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("actadd")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("actadd"):
            out.add(node.module)
    return out


def upward_imports() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        mod = module_name(path)
        if mod in EXEMPT:
            continue
        for target in imports_of(path):
            if tier_of(target) > tier_of(mod):
                found.add((mod, target))
    return found


def test_imports_point_down_the_tiers():
    found = upward_imports()
    new = sorted(found - KNOWN_UPWARD)
    assert not new, "imports from a lower tier into a higher one:\n" + "\n".join(
        f"  {a} -> {b}" for a, b in new
    )
    gone = sorted(KNOWN_UPWARD - found)
    assert not gone, f"remove these from KNOWN_UPWARD, they are fixed: {gone}"


def test_the_tier_check_catches_a_planted_upward_import(tmp_path, monkeypatch):
    planted = PACKAGE / "runtime" / "_planted_for_test.py"
    planted.write_text("from actadd.lab.runs import RunDir\n")
    try:
        assert ("actadd.runtime._planted_for_test", "actadd.lab.runs") in upward_imports()
    finally:
        planted.unlink()


def test_plots_import_no_study():
    for path in (PACKAGE / "plots").rglob("*.py"):
        assert not any(t.startswith("actadd.studies") for t in imports_of(path)), path


def test_the_package_root_holds_at_most_ten_modules():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 10, root


def test_nothing_in_the_repository_imports_an_old_path():
    repo = PACKAGE.parent
    for folder in ("actadd", "tests", "experiments", "benchmarks", "notebooks"):
        for path in (repo / folder).rglob("*"):
            if path.suffix not in (".py", ".ipynb") or path.name == "_legacy.py":
                continue
            if path == Path(__file__).resolve():
                continue
            text = path.read_text()
            for old in MOVED:
                for form in (f"import {old}\n", f"from {old} import", f"import {old} as"):
                    assert form not in text, f"{path} imports the old path {old}"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_import_path_warns_and_gives_the_new_module(old):
    new = importlib.import_module(MOVED[old])
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    if old in ("actadd.analysis", "actadd.kinds"):
        # a forwarding package: every public name resolves to the new module's object
        for name in getattr(new, "__all__", ()):
            assert getattr(module, name) is getattr(new, name)
    else:
        assert module is new


def test_old_submodule_names_resolve_through_an_old_package():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from actadd.analysis import pads  # noqa: F401
        from actadd.kinds import get_kind

    from actadd.lab.kinds import get_kind as new_get_kind
    from actadd.studies.pad_confound import analysis

    assert pads is analysis and get_kind is new_get_kind
