"""Repository files the pages link to (a mkdocs hook): the committed report and figures.

A page may link to a file under ``results/`` by its path from the repository root (the
findings page links ``results/REPORT.md`` and a figure of the wedding sweep); this hook adds
exactly the linked files to the site, so they resolve and the rest of ``results/`` stays
out. A link to a file that exists nowhere still fails the strict build.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\((results/[^)#\s]+)")


def on_files(files, config):
    docs = Path(config.docs_dir)
    wanted = set()
    for page in docs.rglob("*.md"):
        wanted |= set(LINK.findall(page.read_text(encoding="utf-8")))
    for target in sorted(wanted):
        if (ROOT / target).is_file() and files.get_file_from_path(target) is None:
            files.append(
                File(
                    target,
                    src_dir=str(ROOT),
                    dest_dir=config.site_dir,
                    use_directory_urls=config.use_directory_urls,
                )
            )
    return files
