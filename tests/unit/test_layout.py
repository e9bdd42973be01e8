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
     "actadd.progress", "actadd._legacy", "actadd._io", "actadd._lazy", "actadd.data"},
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


#: the one import cycle kept on purpose: ``SweepSpec.validate(model)`` (a public method that
#: callers and benchmarks use) runs the plan step, :func:`actadd.sweeps.plan.check`, through a
#: function-level import, while the plan module imports ``SweepSpec`` for its signatures. The
#: spec stays pure data at import time; the plan step still owns every model check.
KEPT_CYCLES = [{"actadd.sweeps.plan", "actadd.sweeps.spec"}]


def import_graph() -> dict[str, set[str]]:
    """Module -> the actadd modules it imports, at module level or inside a function.
    ``from pkg import mod`` imports the module ``pkg.mod`` (not ``pkg``); ``from pkg import
    name`` imports ``pkg``. Importing ``a.b.c`` also runs ``a/__init__`` and ``a.b/__init__``;
    those implied edges are left out, as they would make every lazy package ``__init__`` a
    cycle with its own submodules."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in paths.items():
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    out.add(sub if sub in paths else node.module)
        graph[mod] = out & paths.keys()
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(component)
    return cycles


def test_no_import_cycle_but_the_one_kept_on_purpose():
    cycles = import_cycles(import_graph())
    unexpected = [sorted(c) for c in cycles if c not in KEPT_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"
    gone = [sorted(c) for c in KEPT_CYCLES if c not in cycles]
    assert not gone, f"remove these from KEPT_CYCLES, they are broken: {gone}"


def test_the_cycle_check_catches_a_planted_cycle():
    # a imports b as ``from pkg import mod``; b imports a back inside a function
    a = PACKAGE / "runtime" / "_planted_a_for_test.py"
    b = PACKAGE / "runtime" / "_planted_b_for_test.py"
    a.write_text("from actadd.runtime import _planted_b_for_test\n")
    b.write_text("def f():\n    from actadd.runtime._planted_a_for_test import x\n")
    try:
        cycles = import_cycles(import_graph())
    finally:
        a.unlink()
        b.unlink()
    planted = {"actadd.runtime._planted_a_for_test", "actadd.runtime._planted_b_for_test"}
    assert planted in cycles
    assert [c for c in cycles if c != planted] == KEPT_CYCLES


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
