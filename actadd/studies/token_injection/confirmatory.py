"""Confirmatory cells of the ``token_injection`` kind: cells chosen before the run, declared
in the config, each tested as one claim of the family ``confirmatory``.

The kind's other claims (:mod:`actadd.studies.token_injection.claims`) scan every pair ×
layer and are exploratory. A confirmatory cell is one (pair, layer) of one of those
families, with its sidedness stated before the data exists::

    [[confirmatory]]
    pair = "love_hate"             # a pair the run computes
    layer = 4                      # one of [settings] layers
    family = "target_vs_control"   # one of FAMILIES
    alternative = "greater"        # "greater" (one-sided: "raises") or "two-sided"

Its claim keeps the scan's id (``target_vs_control:love_hate:L4``) and leaves that scan's
family, so one cell is one claim. The test is the sign-flip test over prompts on the
per-prompt values (one deterministic value per prompt for these next-token metrics;
:func:`actadd.lab.stats.sign_flip_test`: exact to 40 prompts, Monte Carlo above), with the
stated ``alternative``; the interval is a cluster bootstrap over prompts; Benjamini–Hochberg
runs within the run's confirmatory cells; the verdict is REPORT.md's decision rule
(:data:`actadd.lab.claims.DECISION_RULE`).

Pure data: :func:`check_cells` runs when the config is built, before any model or torch
import (one :class:`~actadd.errors.ConfigError` line per problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from actadd.config import check_keys
from actadd.errors import ConfigError, raise_all

__all__ = ["ALTERNATIVES", "CELL_KEYS", "FAMILIES", "Family", "cell_id", "check_cells"]

#: the keys of a ``[[confirmatory]]`` table (all required: a preregistered cell states them)
CELL_KEYS: tuple[str, ...] = ("pair", "layer", "family", "alternative")
#: the sidedness a cell may state; every family's hypothesis is "raises"
ALTERNATIVES: tuple[str, ...] = ("greater", "two-sided")


@dataclass(frozen=True)
class Family:
    """A scan family a cell can be confirmed in: the ``condition`` whose ``column`` (a
    column of the ``results`` table) exceeds that of ``other`` (``None``: exceeds 0), per
    prompt. ``needs`` says what the run must compute for it, as ``(what the config must
    hold, a predicate on the Settings)``."""

    condition: str
    other: str | None
    column: str
    statement: str
    what: str
    needs: tuple[tuple[str, Any], ...] = ()


_CONTROLS = ("[settings] control_words (the control set)", lambda s: bool(s.control_words))

#: the families a confirmatory cell may name; the key is the scan claims' id prefix
FAMILIES: dict[str, Family] = {
    "target_vs_control": Family(
        "actadd",
        None,
        "target_vs_control",
        "ActAdd raises the target words' log-probability more than the control words'",
        "Δ target − Δ control (nats)",
        (_CONTROLS,),
    ),
    "representation_gap": Family(
        "patch",
        "actadd",
        "target_vs_control",
        "the contextual patch (the tokens' own layer-L residual) raises the target vs control "
        "more than ActAdd",
        "Δ target − Δ control (nats)",
        (_CONTROLS, ("'patch' in [settings] injections", lambda s: "patch" in s.injections)),
    ),
    "like_tokens_beyond_null": Family(
        "actadd",
        "null_residual",
        "replace_corr",
        "ActAdd's effect resembles p+'s tokens at the same positions more than "
        "residual-distribution random vectors (norm-matched per row) do",
        "similarity",
        (
            ("'replace' in [settings] injections", lambda s: "replace" in s.injections),
            (
                "residual null draws ([settings] null_kinds with 'residual' and null_draws or "
                "null_draws_per_prompt > 0)",
                lambda s: "residual" in s.null_kinds and (s.null_draws or s.null_draws_per_prompt),
            ),
        ),
    ),
}


def cell_id(cell: dict[str, Any]) -> str:
    """The claim id of a cell: the scan's id of the same (family, pair, layer)."""
    return f"{cell['family']}:{cell['pair']}:L{cell['layer']}"


def check_cells(cells: Any, pairs: Sequence[str], settings) -> tuple[dict[str, Any], ...]:
    """The ``[[confirmatory]]`` cells, each once, or every problem at once, one line each:
    unknown or missing keys, a pair the run does not compute (``pairs``: its names, after
    ``only_pairs``), a layer not in ``settings.layers``, an unknown family or alternative, a
    family whose conditions the settings do not run, one cell with two alternatives.

    A cell given twice alike is one cell: on a shallower model two layers can map to one
    (:mod:`actadd.lab.retarget`: "two layers that map to one are one cell")."""
    if isinstance(cells, (str, dict)) or not isinstance(cells, Sequence):
        raise ConfigError(
            f"confirmatory must be a list of tables {{{', '.join(CELL_KEYS)}}} "
            f"([[confirmatory]]), got {cells!r}."
        )
    problems: list[str] = []
    seen: dict[str, dict[str, Any]] = {}
    for i, cell in enumerate(cells):
        where = f"confirmatory[{i}]"
        try:
            check_keys(cell, CELL_KEYS, where, required=CELL_KEYS)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        problems += _cell_problems(cell, where, pairs, settings)
        key = cell_id(cell)
        if key in seen and seen[key]["alternative"] != cell["alternative"]:
            problems.append(
                f"{where}: the cell {key} is given twice, with alternatives "
                f"{seen[key]['alternative']!r} and {cell['alternative']!r}; state one."
            )
        seen.setdefault(key, cell)
    raise_all(problems)
    return tuple(seen.values())


def _cell_problems(cell: dict, where: str, pairs: Sequence[str], settings) -> list[str]:
    out = []
    if cell["pair"] not in pairs:
        out.append(f"{where}: pair {cell['pair']!r} is not one the run computes {list(pairs)}.")
    layer = cell["layer"]
    if isinstance(layer, bool) or not isinstance(layer, int) or layer not in settings.layers:
        out.append(
            f"{where}: layer {layer!r} is not one of [settings] layers {list(settings.layers)}."
        )
    family = FAMILIES.get(cell["family"])
    if family is None:
        out.append(f"{where}: family {cell['family']!r} unknown; allowed: {sorted(FAMILIES)}.")
    else:
        missing = [what for what, ok in family.needs if not ok(settings)]
        if missing:
            out.append(f"{where}: family {cell['family']!r} needs {'; '.join(missing)}.")
    if cell["alternative"] not in ALTERNATIVES:
        out.append(
            f"{where}: alternative {cell['alternative']!r} unknown; allowed: 'greater' "
            "(one-sided, the hypothesis \"raises\") or 'two-sided'."
        )
    return out
