"""The API reference pages, one per package tier, generated at build time (a mkdocs hook).

Each page lists the tier's public modules (files not starting with ``_``) for mkdocstrings,
which renders them from their docstrings; the list is read from the package tree at every
build, so a new module gets its section without anyone editing a page. Sphinx roles in the
docstrings (``:func:`x```) are shown as code.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

PACKAGE = Path(__file__).resolve().parents[2] / "actadd"
# tier -> what it holds (the package map of the README, in import order)
TIERS = {
    "root": "the public names, errors and the config vocabulary",
    "runtime": "what runs a model: backends, hooks, tokens, the fast path",
    "models": "loading SmolLM2, Gemma 3, GGUF files and Hugging Face checkpoints",
    "core": "the steering library: vectors, alignment, steering, methods, generation",
    "interop": "llama.cpp control vectors",
    "lab": "the experiment harness: run directories, statistics, claims, the report",
    "plots": "chart helpers and the house style",
    "sweeps": "sweep specs, the engine, local and Ray executors",
    "studies": "one folder per study: config, kind, claims, figures",
    "ui": "the steering playground",
    "cli": "the actadd command",
}


def modules(tier: str) -> list[str]:
    """The tier's public modules, as dotted names."""
    if tier == "root":
        files = [p for p in PACKAGE.glob("*.py")]
    else:
        files = list((PACKAGE / tier).rglob("*.py"))
    out = []
    for path in sorted(files):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if any(p.startswith("_") and p != "__init__" for p in parts) or "data" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return sorted(set(out), key=lambda m: (m.count("."), m) if tier == "root" else m)


def page(tier: str) -> str:
    lines = [f"# `{'actadd' if tier == 'root' else 'actadd.' + tier}`: {TIERS[tier]}", ""]
    for module in modules(tier):
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def on_files(files, config):
    for tier in TIERS:
        files.append(File.generated(config, f"api/{tier}.md", content=page(tier)))
    return files


ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const|ref):(<code>)~?")


def on_page_content(html, page, config, files):  # noqa: ARG001 (mkdocs API)
    return ROLE.sub(r"\1", html)
