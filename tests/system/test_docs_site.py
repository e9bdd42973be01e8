"""The documentation site's strict build catches a broken link. ``make docs`` (run by
``make test``) builds the real site with ``mkdocs build --strict``; here a copy of the docs
with one link to a page that does not exist must fail that build, naming the link. Needs
mkdocs (``make setup-docs``): without it the test skips, saying why; in CI (``CI`` set) it
fails."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def docs_copy(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        why = "mkdocs is not installed: make setup-docs"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    for linked in ("actadd", "results"):  # the API pages and the report the pages link
        (tmp_path / linked).symlink_to(ROOT / linked)
    return tmp_path


def build(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(root / "site")],
        cwd=root, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_a_broken_link_fails_the_strict_build(docs_copy):
    page = docs_copy / "docs" / "tutorial.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no_such_page.md).\n")
    done = build(docs_copy)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "no_such_page.md" in done.stderr, done.stderr
    # the planted link is the one problem: the copy is otherwise the site that make docs builds
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "'no_such_page.md'" in warnings[0], done.stderr
