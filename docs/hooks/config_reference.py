"""The configuration reference, generated from the config classes (a mkdocs hook).

``docs/configuration.md`` holds the marker ``<!-- config-reference -->``; at build time
:func:`on_page_markdown` replaces it with :func:`render`: one section per experiment kind's
config (the classes :data:`actadd.lab.kinds.KIND_MODULES` leads to) and per table nested in
one (``[generation]``, ``[corpus]``, ...), each key with its type and default read from the
dataclass and its meaning from ``config_keys.toml`` beside this file.

The meanings live in that file, keyed by the class's module path and the TOML key, and
:func:`render` refuses to run when a key has no meaning or a meaning names no key, so the
reference cannot fall behind the code: a new key fails the docs build (and
``tests/unit/test_docs.py``) until it is described.
"""

from __future__ import annotations

import ast
import html
import json
import re
import tomllib
from dataclasses import MISSING, fields, is_dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

MARKER = "<!-- config-reference -->"
MEANINGS = Path(__file__).with_name("config_keys.toml")
# Config subclasses no TOML file holds: Python objects with API pages of their own
PYTHON_ONLY = {
    "actadd.core.sampling.Sampling": "how the next token is drawn (`actadd.Sampling`); "
    "a sweep's `[generation]` table holds its keys flat",
    "actadd.ui.settings.Settings": "the playground panel's settings, read from its widgets",
}


class ReferenceError(Exception):
    """A config key without a meaning, or a meaning without a key."""


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def rst_to_md(text: str) -> str:
    """Docstring text as Markdown: Sphinx roles (``:class:`~a.b.C```) become code spans."""
    text = re.sub(r":(?:py:)?[a-z]+:`~?([^`<]*?)(?: <[^`>]*>)?`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def kind_configs() -> dict[str, type]:
    """Each experiment kind's config class, by kind name (importing the kinds: torch)."""
    from actadd.lab.kinds import KIND_MODULES
    from actadd.studies.sweep.kind import SweepKind
    from actadd.sweeps.spec import SweepSpec

    out = {}
    for name, module in KIND_MODULES.items():
        kind = import_module(module).KIND
        config = getattr(kind, "config_type", None)
        if config is None and isinstance(kind, SweepKind):
            config = SweepSpec
        if config is None:
            raise ReferenceError(f"kind {name!r} ({module}) names no config_type")
        out[name] = config
    return out


def nested(cls: type) -> list[type]:
    """The config classes ``cls``'s fields hold (tables in its TOML), in field order."""
    scope = vars(import_module(cls.__module__))
    out = []
    for f in fields(cls):
        for name in re.findall(r"[A-Za-z_]\w*", str(f.type)):
            obj = scope.get(name)
            if isinstance(obj, type) and is_dataclass(obj) and hasattr(obj, "from_dict"):
                if obj not in out and obj is not cls:
                    out.append(obj)
    return out


def toml_configs() -> list[type]:
    """Every config class a TOML file can hold: the kinds' and the tables nested in them."""
    order: list[type] = []
    todo = list(dict.fromkeys(kind_configs().values()))
    while todo:
        cls = todo.pop(0)
        if cls not in order:
            order.append(cls)
            todo += nested(cls)
    return order


def display_type(annotation: str) -> str:
    """A field's annotation as a TOML user reads it: ``Validated[...]`` unwrapped, tuples
    as lists, ``Sequence`` as ``list``."""
    t = str(annotation).replace("'", "")
    while (m := re.search(r"Validated\[", t)) is not None:
        depth, i = 1, m.end()
        while depth:
            depth += {"[": 1, "]": -1}.get(t[i], 0)
            i += 1
        t = t[: m.start()] + t[m.end() : i - 1] + t[i:]
    t = re.sub(r"tuple\[([^\[\]]+|[^\[\]]*\[[^\[\]]*\][^\[\]]*), \.\.\.\]", r"list[\1]", t)
    return t.replace("Sequence[", "list[").replace("dict[", "table[")


def toml_value(value: Any) -> str:
    """A default as it would be written in TOML."""
    if value is None:
        return "not set"
    if hasattr(value, "to_dict"):
        return "(the table's defaults)" if not value.to_dict() else json.dumps(value.to_dict())
    if hasattr(value, "positive") and hasattr(value, "negative"):
        return json.dumps([value.positive, value.negative])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def code(text: str) -> str:
    """A code span that survives a table cell: a ``|`` in it would end the cell, and an
    escaped one keeps its backslash inside backticks."""
    return "<code>" + html.escape(text).replace("|", "&#124;") + "</code>"


def anchor(cls: type) -> str:
    return "cfg-" + qualname(cls).removeprefix("actadd.").replace(".", "-").lower()


def key_rows(cls: type, meanings: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(key, type, default, meaning)`` for every key ``cls`` reads from its table."""
    from actadd.config import Pair

    by_name = {f.name: f for f in fields(cls)}
    pair_fields = {f.name: f for f in fields(Pair)}
    required = set(getattr(cls, "REQUIRED", ()))
    rows = []
    for key in cls.keys():
        entry = meanings.get(key)
        if entry is None:
            raise ReferenceError(f"{qualname(cls)}: key {key!r} has no meaning in {MEANINGS.name}")
        entry = {"meaning": entry} if isinstance(entry, str) else entry
        f = by_name.get(key) or pair_fields.get(key)
        type_ = entry.get("type") or (display_type(f.type) if f else "")
        if key in required or f is None or (f.default is MISSING and f.default_factory is MISSING):
            default = "*required*" if key in required or f is not None else "*not set*"
        else:
            value = f.default if f.default is not MISSING else f.default_factory()
            default = "*not set*" if value is None else code(toml_value(value))
        type_ = re.sub(r" \| None\b", "", type_)
        rows.append((key, type_, default, entry["meaning"]))
    unused = set(meanings) - set(cls.keys()) - {"__doc__"}
    if unused:
        raise ReferenceError(
            f"{qualname(cls)}: {MEANINGS.name} describes keys the config does not have: "
            f"{sorted(unused)}"
        )
    return rows


def cell(text: str, links: dict[str, str]) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    for name, target in links.items():
        text = re.sub(rf"\b{name}\b", f"[{name}](#{target})", text, count=1)
    return text


def section(cls: type, kinds: list[str], meanings: dict[str, Any]) -> str:
    where = getattr(cls, "WHERE", "config")
    used_by = ", ".join(f"`{k}`" for k in kinds) if kinds else ""
    title = f"`{cls.__name__}`" + (f": kind {used_by}" if used_by else f": the `{where}` table")
    doc = rst_to_md((cls.__doc__ or "").split("\n\n")[0].strip())
    doc = re.sub(r"\s+", " ", doc)
    aliases = getattr(cls, "ALIASES", {})
    lines = [f"### {title} {{#{anchor(cls)}}}", "", f"*{qualname(cls)}*. {doc}", ""]
    if aliases:
        old = ", ".join(f"`{o}` (now `{n}`)" for o, n in aliases.items())
        lines += [f"Old key names still read, with a warning: {old}.", ""]
    links = {c.__name__: anchor(c) for c in nested(cls)}
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, type_, default, meaning in key_rows(cls, meanings):
        ty = cell(type_, links) if type_ else ""
        lines.append(f"| `{key}` | {ty} | {default} | {cell(meaning, {})} |")
    return "\n".join(lines) + "\n"


def load_meanings(path: Path = MEANINGS) -> dict[str, dict[str, Any]]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def render(meanings: dict[str, dict[str, Any]] | None = None) -> str:
    """The reference as Markdown (raises :class:`ReferenceError` on a missing or stale
    meaning)."""
    meanings = load_meanings() if meanings is None else meanings
    configs = kind_configs()
    classes = toml_configs()
    stale = set(meanings) - {qualname(c) for c in classes}
    if stale:
        raise ReferenceError(f"{MEANINGS.name} describes classes no config uses: {sorted(stale)}")
    out = ["| kind | config | what it runs |", "|---|---|---|"]
    for name, cls in configs.items():
        what = import_module(_kind_module(name)).KIND.description
        out.append(f"| `{name}` | [`{cls.__name__}`](#{anchor(cls)}) | {cell(what, {})} |")
    out.append("")
    for cls in classes:
        kinds = [k for k, c in configs.items() if c is cls]
        out.append(section(cls, kinds, meanings.get(qualname(cls), {})))
    out += ["### Configs of the Python API", ""]
    out += [f"- `{name}`: {why}." for name, why in PYTHON_ONLY.items()]
    return "\n".join(out) + "\n"


def _kind_module(name: str) -> str:
    from actadd.lab.kinds import KIND_MODULES

    return KIND_MODULES[name]


def config_classes_in(package: Path) -> dict[str, str]:
    """Every dataclass in ``package``'s source that derives (directly or through another)
    from ``Config``, found statically (no imports): ``{module.Class: file}``. Mixins that are
    not dataclasses themselves (``Written``) are bases, not configs."""
    found: dict[str, str] = {}
    bases: dict[str, tuple[str, list[str], bool]] = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = [
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                ]
                decorated = any("dataclass" in ast.unparse(d) for d in node.decorator_list)
                bases[f"{module}.{node.name}"] = (str(path), names, decorated)
    config_names = {"Config"}
    changed = True
    while changed:
        changed = False
        for name, (_path, names, _) in bases.items():
            short = name.rsplit(".", 1)[1]
            if short not in config_names and set(names) & config_names:
                config_names.add(short)
                changed = True
    for name, (path, names, decorated) in bases.items():
        if decorated and set(names) & config_names:
            found[name] = path
    return found


def uncovered(package: Path) -> list[str]:
    """Config classes in ``package`` that the reference neither documents nor lists as
    Python-only (:data:`PYTHON_ONLY`): each needs its meanings, or a reason to be left out."""
    covered = {qualname(c) for c in toml_configs()} | set(PYTHON_ONLY)
    return sorted(set(config_classes_in(package)) - covered)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (mkdocs API)
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render())
    return markdown
