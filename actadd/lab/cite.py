"""Short claim ids that prose can cite: ``[wc3.L16c1]`` for one claim, ``[ws/scan topic_any]``
for a family.

A claim's full id (``topic_any:' weddings' − '' (pad ' a'):L16:c1:front``) is exact but too
long for a sentence. Its **alias** (the ``cite`` column of ``claims.csv``, shown in REPORT.md)
is ``<experiment abbreviation>.<cell>``:

- the abbreviation is :data:`ABBREVIATIONS`' entry for the experiment, else the initials of
  its ``_``-separated words followed by any trailing digits (``my_new_test2`` → ``mnt2``);
- the cell is the id's ``:``-separated parts, each made a slug (:func:`slug`), dropping the
  parts that every claim of that experiment shares (the metric, the pair or the alignment
  where only one was run), but never a layer or a coefficient; a layer and the coefficient
  right after it are written together (``L16c1``), and the parts are joined with ``.``.

Aliases depend only on the experiment's set of claim ids (not on their order), so
regenerating the report from the same tables gives the same aliases. A run that adds a metric
or a pair to an experiment changes its aliases; a findings page that cites the old ones then
fails its check (:mod:`actadd.lab.findings`) with the unknown id named. Two parts that make
the same slug would give two claims one alias: the later one (by full id) gets ``~`` and
6 hex digits of the full id's sha1, so aliases are unique whatever the ids.

A **family** is cited as ``[<abbreviation>/<family name>]`` (``[ws/scan topic_any]``), and a
set of claims by a glob over aliases (``[ppl.wedding.actadd.*]``); ``+`` joins several
(``[wc/confirmatory + wc2/confirmatory]``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

from actadd.errors import ConfigError

__all__ = [
    "ABBREVIATIONS",
    "abbreviation",
    "aliases",
    "check_abbreviations",
    "family_alias",
    "slug",
]

#: the abbreviations of the suite's experiments (others get :func:`abbreviation`'s rule)
ABBREVIATIONS: dict[str, str] = {
    "wedding_sweep": "ws",
    "wedding_word_count": "wwc",
    "word_count_confirm": "wc",
    "word_count_confirm2": "wc2",
    "word_count_confirm3": "wc3",
    "wedding_perplexity": "ppl",
    "wedding_perplexity_essays": "pple",
    "sentiment": "sent",
    "sentiment_confirm": "sc",
    "sentiment_confirm2": "sc2",
    "sentiment_confirm3": "sc3",
    "capability": "cap",
    "failure_cases": "fc",
    "failure_cases_confirm": "fcc",
    "failure_cases_confirm2": "fcc2",
    "alignment": "align",
    "token_injection": "ti",
    "token_injection_v2": "ti2",
    "methods": "meth",
    "pad_confound": "pad",
    "behaviours": "beh",
    "behaviours_full": "behf",
}

_LAYER = re.compile(r"L-?\d+")
_COEFF = re.compile(r"c-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_NAMED = {" ": "space", ".": "dot", "\\n": "nl", "\n": "nl", ",": "comma", ":": "colon"}


def abbreviation(experiment: str) -> str:
    """The experiment's abbreviation: :data:`ABBREVIATIONS`, else its words' initials and
    trailing digits (``token_injection_v2`` → ``tiv2`` were it not listed)."""
    if experiment in ABBREVIATIONS:
        return ABBREVIATIONS[experiment]
    digits = re.search(r"\d+$", experiment)
    stem = experiment[: digits.start()] if digits else experiment
    initials = "".join(w[0] for w in re.split(r"[_\W]+", stem) if w)
    return (initials or "x").lower() + (digits.group() if digits else "")


def slug(part: str) -> str:
    """One id part as alias text: quoted strings lose their quotes (a quoted string of
    punctuation is named: ``' '`` → ``space``, ``'\\n'`` → ``nl``), every run of other
    characters but letters, digits, ``_`` and ``-`` becomes ``_``.
    ``' weddings' − '' (pad ' a')`` → ``weddings_pad_a``; ``Love − Hate`` → ``Love_Hate``."""

    def unquote(m: re.Match) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        if inner in _NAMED or (inner and not re.search(r"\w", inner)):
            name = _NAMED.get(inner) or "_".join(f"u{ord(ch):04x}" for ch in inner)
            return f" {name} "
        return f" {inner} "

    text = _QUOTED.sub(unquote, part)
    text = re.sub(r"(?<![\w])[-−]|[-−](?![\w])", " ", text)  # a minus between names
    text = re.sub(r"[^\w-]+", "_", text).strip("_")
    return re.sub(r"_+", "_", text)


def _cell(parts: Sequence[str]) -> str:
    out: list[str] = []
    for part in parts:
        if _COEFF.fullmatch(part) and out and _LAYER.fullmatch(out[-1]):
            out[-1] += part
        else:
            out.append(part if _LAYER.fullmatch(part) or _COEFF.fullmatch(part) else slug(part))
    return ".".join(p for p in out if p)


def aliases(experiment: str, ids: Iterable[str]) -> dict[str, str]:
    """{full id: alias} for the claims of one experiment (module docstring for the rule)."""
    ids = sorted(set(ids))
    split = {i: i.split(":") for i in ids}
    shared = set.intersection(*(set(p) for p in split.values())) if len(ids) > 1 else set()
    shared = {p for p in shared if not (_LAYER.fullmatch(p) or _COEFF.fullmatch(p))}
    abbrev = abbreviation(experiment)
    out: dict[str, str] = {}
    taken: set[str] = set()
    for i in ids:
        cell = _cell([p for p in split[i] if p not in shared]) or slug(i) or "claim"
        alias = f"{abbrev}.{cell}"
        if alias in taken:
            alias += "~" + hashlib.sha1(i.encode()).hexdigest()[:6]
        taken.add(alias)
        out[i] = alias
    return out


def family_alias(experiment: str, family: str) -> str:
    """How a family is cited: ``ws/scan topic_any``."""
    return f"{abbreviation(experiment)}/{family}"


def check_abbreviations(experiments: Iterable[str]) -> None:
    """ConfigError when two experiments get one abbreviation (their aliases would collide)."""
    seen: dict[str, str] = {}
    for e in experiments:
        a = abbreviation(e)
        if seen.setdefault(a, e) != e:
            raise ConfigError(
                f"Experiments {seen[a]!r} and {e!r} both abbreviate to {a!r} in claim ids; add "
                f"one of them to actadd.lab.cite.ABBREVIATIONS with a distinct abbreviation."
            )
