"""Exceptions raised by actadd. Each message says what was wrong and what is allowed.

:class:`Validated` marks the arguments that a function checks itself, so that a wrong type
gets the same clear error as a wrong value.

:class:`ConfigErrors` carries several problems of one config at once (one line each), so a
config with three mistakes is fixed in one pass; :func:`collect` runs independent checks and
raises what they found together, and :func:`suggest` is the "did you mean" of every message
that names an unknown word.
"""

import difflib
import re
import warnings
from collections.abc import Callable, Collection, Sequence
from typing import Annotated, Any

__all__ = [
    "ActAddError",
    "ChatTemplateError",
    "ConfigError",
    "ConfigErrors",
    "DiskFullError",
    "FigureSubsetWarning",
    "FigureTextWarning",
    "LeadingTokenWarning",
    "ModelCacheWarning",
    "ModelLoadError",
    "SteeringError",
    "UncheckedRunWarning",
    "Validated",
    "VectorFileError",
    "VectorFileWarning",
    "build_all",
    "closest",
    "collect",
    "every_problem",
    "key_problems",
    "problems_of",
    "raise_all",
    "suggest",
]


class ActAddError(Exception):
    """Base class of every error actadd raises on purpose."""


class ModelLoadError(ActAddError, ValueError):
    """A model name, path or file could not be loaded."""


class SteeringError(ActAddError, ValueError):
    """A steering vector or its application was given bad input."""


class VectorFileError(ActAddError, ValueError):
    """A saved steering-vector file is missing, corrupt, or belongs to another model."""


class ConfigError(ActAddError, ValueError):
    """An experiment or sweep configuration is invalid."""


class ConfigErrors(ConfigError):
    """Several problems of one configuration, reported together: :attr:`problems` holds one
    line each, and ``str()`` is those lines joined by newlines."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


def problems_of(exc: ConfigError) -> list[str]:
    """The lines of a :class:`ConfigError`: its problems, or its one message."""
    return list(exc.problems) if isinstance(exc, ConfigErrors) else [str(exc)]


def raise_all(problems: Sequence[str]) -> None:
    """Raise nothing for no problem, a :class:`ConfigError` for one, a :class:`ConfigErrors`
    for several (repeats dropped, order kept)."""
    unique = list(dict.fromkeys(problems))
    if len(unique) == 1:
        raise ConfigError(unique[0])
    if unique:
        raise ConfigErrors(unique)


def collect(*checks: Callable[[], Any]) -> list[Any]:
    """Run every check (independent callables) and return their results; the problems of
    every check that raised a :class:`ConfigError` are raised together afterwards."""
    results, problems = [], []
    for check in checks:
        try:
            results.append(check())
        except ConfigError as exc:
            problems += problems_of(exc)
    raise_all(problems)
    return results


def closest(word: object, choices: Collection[str]) -> str | None:
    """The one of ``choices`` closest to ``word`` (a likely typo of it), or None."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: object, choices: Collection[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``word``, or ``""``."""
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


def every_problem(
    build: Callable[[dict], Any],
    table: dict,
    first: list[str],
    movable: Collection[str],
    set_aside: Callable[[dict, str], dict],
) -> list[str]:
    """Every problem of ``table`` (a config's keys and values), given the ``first`` lines
    ``build(table)`` raised (a check stops at its first problem; this keeps going).

    After each problem the key it belongs to (one of ``movable``) is set aside
    (``set_aside(table, key)``: the key at its default or a stand-in value) and the table
    built again, until it builds or no key accounts for a problem. A key accounts for a
    problem when, set aside, the problem does not recur: a key the problem names counts
    then; another only when the table then builds. A later problem that names a key
    already set aside follows from the stand-in, not from the file, and is not reported.
    """
    found, lines, aside = list(first), list(first), []
    with warnings.catch_warnings():  # the first build gave its warnings; retries repeat them
        warnings.simplefilter("ignore")
        while True:
            keys = [k for k in table if k in movable and k not in aside]
            # the keys the problems name, the first named first (a line starts with its key)
            at = {k: [i for line in lines if (i := _at(line, k)) is not None] for k in keys}
            first_at = {k: min(at[k], default=None) for k in keys}
            named = sorted((k for k in keys if first_at[k] is not None), key=first_at.__getitem__)
            key = None
            for candidate in named + [k for k in keys if k not in named]:
                try:
                    build(set_aside(table, candidate))
                except ConfigError as exc:
                    if candidate not in named or set(problems_of(exc)) & set(lines):
                        continue
                key = candidate
                break
            if key is None:
                return found
            aside.append(key)
            table = set_aside(table, key)
            try:
                build(table)
                return found
            except ConfigError as exc:
                lines = problems_of(exc)
            found += [line for line in lines if not _names(line, aside)]


def build_all(
    build: Callable[[dict], Any],
    table: dict,
    movable: Collection[str],
    stand_ins: dict[str, Any],
    problems: Sequence[str] = (),
) -> Any:
    """``build(table)``, or every problem of ``table`` raised at once (``problems``, found
    before, first): a key of ``movable`` that a problem belongs to is set aside (its
    stand-in from ``stand_ins``, else left out, so at its default; see
    :func:`every_problem`)."""
    try:
        result = build(table)
    except ConfigError as exc:
        first = problems_of(exc)
    else:
        raise_all(problems)
        return result

    def set_aside(t: dict, key: str) -> dict:
        rest = {k: v for k, v in t.items() if k != key}
        return {**rest, key: stand_ins[key]} if key in stand_ins else rest

    raise_all([*problems, *every_problem(build, table, first, movable, set_aside)])


def key_problems(
    raw: dict, allowed: Collection[str], where: str, *, required: Collection[str] = ()
) -> list[str]:
    """The problems of ``raw``'s keys: one line for unknown keys, one for missing ones."""
    problems = []
    unknown = sorted(set(raw) - set(allowed), key=str)
    if unknown:
        close = {k: c for k in unknown if (c := closest(k, allowed))}
        hint = ", ".join(
            f"{c!r}" + (f" for {k!r}" if len(unknown) > 1 else "") for k, c in close.items()
        )
        hint = f" (did you mean {hint}?)" if hint else ""
        problems.append(f"{where}: unknown key(s) {unknown}{hint}; allowed: {sorted(allowed)}.")
    # a missing key that an unknown one was a typo of is said once, by the "did you mean"
    meant = {closest(k, allowed) for k in unknown}
    missing = [k for k in required if k not in raw and k not in meant]
    if missing:
        problems.append(f"{where}: missing keys {missing}.")
    return problems


def _at(line: str, key: str) -> int | None:
    """Where ``line`` first names ``key`` (see :func:`_names`), or None."""
    found = (re.search(rf"(?<!\w){re.escape(w)}(?!\w)", line) for w in {key, key.removesuffix("s")})
    return min((m.start() for m in found if m), default=None)


def _names(line: str, keys: Collection[str]) -> bool:
    """Whether a problem's line names one of ``keys`` as a word, plural or not (``coeffs``,
    ``coeff``, ``[generation]``; ``generation.seed`` names ``generation`` and ``seed``)."""
    return any(_at(line, k) is not None for k in keys)


class ChatTemplateError(ActAddError, ValueError):
    """A model has no chat template, or chat messages are malformed."""


class DiskFullError(ActAddError, OSError):
    """The device ran out of space while a result file was written; nothing half-written is
    left (files are written to a temporary name and renamed into place)."""


class ModelCacheWarning(UserWarning):
    """A damaged converted-model cache entry was found and is being rebuilt."""


class VectorFileWarning(UserWarning):
    """A steering-vector file loaded, but part of it could not be verified (no checksum)."""


class FigureSubsetWarning(UserWarning):
    """A run's figures were drawn from a subset of its grid (the tables hold all of it)."""


class FigureTextWarning(UserWarning):
    """A figure has overlapping text, or text outside its canvas (it is still written)."""


class LeadingTokenWarning(UserWarning):
    """Every addition of a steering context lands on the leading token only (an attention
    sink the model barely reads), so the steering will change almost nothing."""


class UncheckedRunWarning(UserWarning):
    """A run directory has no manifest (``tables.json``), so its tables cannot be checked
    against the run that wrote them: its numbers are used as they are."""


class Validated:
    """``Validated[T]`` annotates a user-facing argument that the function checks itself: it
    should be a ``T``, and anything else raises a typed :class:`ActAddError` that names what
    is allowed, never a bare ``TypeError``. Type checkers (and the runtime checker the tests
    run under) read it as ``object``; the ``T`` is documentation."""

    def __class_getitem__(cls, item: object) -> object:
        return Annotated[object, f"Validated[{getattr(item, '__name__', item)}]"]
