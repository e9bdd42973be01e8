"""The coefficient rule's table, written into the config file (``actadd coeffs --write``).

:func:`write_table` puts :func:`actadd.sweeps.coeff_plan.mapped_table` (``coeffs`` and
``confirmatory``) into the config's ``[models."<target>"]`` table between two marker
comments, updated in place on a rerun, with a comment giving the rule, every cell's ``r``
on both models and the date. Where the file has a table for the target already, the keys go
under its header; a table of its own goes at the end. The new text is parsed back and
checked (every other key unchanged; read through the ``--model`` rule, the cells run at the
written layers and coefficients and pass the sweep spec's checks) before it replaces the
file in one rename: a problem is one :class:`ConfigError` line and the file as it was.
Pure data: no torch.
"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from actadd._io import atomic_write, read_text
from actadd.errors import ConfigError
from actadd.lab.retarget import MODELS_KEY, RULE_KEY, canonical_model, for_model
from actadd.sweeps.coeff_plan import (
    COEFF_RULE,
    MAPPED_KEYS,
    CellMap,
    CoeffPlan,
    mapped_table,
    spec_keys,
    without_mapped,
)
from actadd.sweeps.spec import SweepSpec

__all__ = ["table_text", "write_table"]


def table_text(plan: CoeffPlan, cells: list[CellMap], today: date, *, header: bool = True) -> str:
    """The marked block: comments (the rule, every cell's r on both models, the date), the
    table's header unless the file has one already, ``coeffs`` and ``confirmatory``."""
    table = mapped_table(cells)
    lines = [
        _marker(">>>", plan.target),
        f"# Written on {today.isoformat()} by `actadd coeffs CONFIG --model {plan.target} "
        "--write` (rerun it",
        "# to update; edit nothing between the markers): the confirmatory coefficients of "
        f"{plan.source},",
        *(f"#   {line}" for line in COEFF_RULE),
        "# Per cell: pair, layer -> mapped layer, r on each model (vector norm / residual "
        "norm), c -> c':",
        *(f"#   {c.line(plan.source, plan.target)}" for c in cells),
    ]
    if header:
        lines.append(f"[{MODELS_KEY}.{json.dumps(plan.target)}]")
    lines.append(f"coeffs = [{', '.join(_value(c) for c in table['coeffs'])}]")
    lines.append("confirmatory = [")
    for cell in table["confirmatory"]:
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in cell.items())
        lines.append(f"    {{ {items} }},")
    lines += ["]", _marker("<<<", plan.target)]
    return "\n".join(lines) + "\n"


def write_table(path: str | Path, plan: CoeffPlan, cells: list[CellMap], today: date) -> Path:
    """Add (or update) the mapped table in the config file ``path``, atomically; the new
    text is checked first (module docstring) and a problem leaves the file as it was."""
    path = Path(path)
    old = read_text(path)
    lines = old.splitlines(keepends=True)
    begin = [i for i, x in enumerate(lines) if x.rstrip() == _marker(">>>", plan.target)]
    end = [i for i, x in enumerate(lines) if x.rstrip() == _marker("<<<", plan.target)]
    if len(begin) > 1 or len(begin) != len(end) or (begin and end[0] < begin[0]):
        raise ConfigError(
            f"{path}: the markers of the mapped table for {plan.target} are not one pair "
            f"({_marker('>>>', plan.target)!r} ... {_marker('<<<', plan.target)!r}); fix them."
        )
    rest = lines[: begin[0]] + lines[end[0] + 1 :] if begin else lines
    try:
        written = tomllib.loads("".join(rest))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if without_mapped(written, plan.target) != written:
        raise ConfigError(
            f"{path}: its table for {plan.target} sets {' or '.join(MAPPED_KEYS)} outside the "
            "marked block: remove them (the rule writes them there), then rerun."
        )
    at = _header_line(rest, plan.target)
    if begin:  # a rerun: the block is replaced where it is
        block = table_text(plan, cells, today, header=at is None)
        new = lines[: begin[0]] + [block] + lines[end[0] + 1 :]
    elif at is None:  # a table of its own, after a blank line at the end of the file
        text = "".join(lines)
        sep = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
        new = [text, sep, table_text(plan, cells, today)]
    else:  # the file's own [models."<target>"]: the keys go right under its header
        block = table_text(plan, cells, today, header=False)
        new = lines[: at + 1] + [block] + lines[at + 1 :]
    text = "".join(new)
    _check_written(old, text, plan, mapped_table(cells), str(path))
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


_HEADER = re.compile(
    r"""^\s*\[\s*models\s*\.\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*\]\s*(?:\#.*)?$"""
)


def _header_line(lines: list[str], target: str) -> int | None:
    for i, line in enumerate(lines):
        m = _HEADER.match(line.rstrip("\r\n"))
        if m:
            name = next(g for g in m.groups() if g is not None)
            try:
                if canonical_model(name) == target:
                    return i
            except ConfigError:
                continue
    return None


def _marker(kind: str, target: str) -> str:
    return f"# {kind} actadd coeffs: {target}"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    """A TOML value (a cell's values are strings, numbers and booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise ConfigError(f"a confirmatory cell's value {value!r} is not a string, number or bool.")


def _check_written(old: str, new: str, plan: CoeffPlan, table: dict[str, Any], where: str) -> None:
    """``new`` parses, differs from ``old`` only in the mapped keys, and through the rule
    runs each cell at its written layer and coefficient; else one ConfigError line."""
    fail = f"{where}: not written (the file is unchanged): "
    try:
        before, after = tomllib.loads(old), tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{fail}the table would make invalid TOML ({exc}).") from None
    if without_mapped(before, plan.target) != without_mapped(after, plan.target):
        raise ConfigError(f"{fail}adding the table would change other keys of the config.")
    after.pop("quick", None)
    after.setdefault("name", plan.config.get("name"))
    on_target = for_model(after, plan.target, where)
    SweepSpec.from_dict(spec_keys(on_target))
    overrides = on_target.get(RULE_KEY, {}).get("overrides", {})
    if (
        on_target.get("coeffs") != table["coeffs"]
        or on_target.get("confirmatory") != table["confirmatory"]
        or any(overrides.get(k, {}).get("to") != table[k] for k in MAPPED_KEYS)
    ):
        raise ConfigError(
            f"{fail}read back through the --model rule, the cells would not run at the "
            "mapped layers and coefficients."
        )
