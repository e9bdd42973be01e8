"""The words on a figure: human pair titles, alignments in words, interval notes, word lists.

- :func:`pair_title` — ``"' weddings' − ''"`` → ``"weddings − (empty)"``; a label that is not
  two reprs (``"Love − Hate"``) is kept as it is;
- :func:`align_words` — ``"front"`` → ``"front-aligned"``, ``"all"`` → ``"every position"``;
- :func:`ci_note` — ``"95% CI, Wilson"``: the legend title or caption of every interval;
- :class:`WordLists` — the target and topic word lists of a run, read from the table's
  ``target_words`` / ``topic_words`` columns where it has them, else from the run's config,
  and :meth:`WordLists.describe` names one for an axis label or title.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["WordLists", "align_words", "ci_note", "pair_title", "words_text"]

# one Python string literal, single- or double-quoted, with escapes
_REPR = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_PAIR = re.compile(rf"^\s*({_REPR})(\s*)[-−](\s*)({_REPR})(.*)$", re.S)


def _side(literal: str) -> str:
    text = ast.literal_eval(literal).strip()
    return text if text else "(empty)"


def pair_title(name: str) -> str:
    """A pair's name as a figure title: ``'p+' − 'p−'`` reprs (either minus sign) become the
    stripped words, an empty side ``(empty)``, ``−`` (U+2212) between them; a trailing
    note such as ``(pad ' a')`` is kept, and a line break between the two sides too. A name
    that is not two reprs (a user's label, ``"(unsteered)"``) is returned unchanged."""
    m = _PAIR.match(name)
    if m is None:
        return name
    pos, gap_a, gap_b, neg, rest = m.groups()
    sep = "\n" if "\n" in gap_a + gap_b else " "
    rest = rest.strip()
    return f"{_side(pos)} −{sep}{_side(neg)}" + (f" {rest}" if rest else "")


_ALIGN = {
    "front": "front-aligned",
    "back": "back-aligned",
    "all": "every position",
    "positions": "chosen positions",
    "none": "unsteered",
}


def align_words(align: str | None) -> str:
    """An alignment in words: ``front-aligned``, ``back-aligned``, ``every position``,
    ``offset:3`` → ``offset by 3 tokens``; an unknown one is returned as it is."""
    if align is None:
        return ""
    if align.startswith("offset:"):
        n = align.split(":", 1)[1]
        return f"offset by {n} token{'' if n == '1' else 's'}"
    return _ALIGN.get(align, align)


def ci_note(method: str) -> str:
    """``"95% CI, <method>"``: how every interval drawn is labelled."""
    return f"95% CI, {method}"


def words_text(words: Any, limit: int = 4) -> str | None:
    """A word list for a figure: a preset's name (a string with no comma or space) as
    ``'"weddings" words'``; words (a list, or a comma-separated string) as
    ``"words: love, happy, great, …"`` (the first ``limit``). None or empty gives None."""
    if words is None or (isinstance(words, float) and words != words):
        return None
    if isinstance(words, str):
        text = words.strip()
        if not text:
            return None
        if "," not in text and " " not in text:
            return f'"{text}" words'
        words = [w for w in re.split(r"\s*,\s*", text) if w]
    items = [str(w).strip() for w in words if str(w).strip()]
    if not items:
        return None
    more = ", …" if len(items) > limit else ""
    return "words: " + ", ".join(items[:limit]) + more


def _column(table: pd.DataFrame | None, col: str) -> str | None:
    if table is None or col not in table.columns:
        return None
    if not (table[col].dtype == object or pd.api.types.is_string_dtype(table[col])):
        return None  # e.g. a count of topic words per text, not a word list
    values = [v for v in dict.fromkeys(table[col].dropna()) if str(v).strip()]
    if not values:
        return None
    return " / ".join(t for t in (words_text(v) for v in values) if t) or None


@dataclass(frozen=True)
class WordLists:
    """The word lists behind a run's word-based metrics, each already in words for a
    figure (:func:`words_text`): ``target`` (target log-probabilities), ``topic``
    (topic-word counts of completions). None where the run has none."""

    target: str | None = None
    topic: str | None = None

    @classmethod
    def of(
        cls, config: Mapping[str, Any] | None = None, table: pd.DataFrame | None = None
    ) -> WordLists:
        """From the table's ``target_words`` / ``topic_words`` columns where present, else
        from ``config`` (``target_words``; ``topic_words`` at the top or in
        ``[generation]``)."""
        config = config or {}
        gen = config.get("generation") if isinstance(config.get("generation"), Mapping) else {}
        target = _column(table, "target_words") or words_text(config.get("target_words"))
        topic = _column(table, "topic_words") or words_text(
            config.get("topic_words", gen.get("topic_words"))
        )
        return cls(target=target, topic=topic)

    def describe(self, which: str, default: str = "word list not recorded") -> str:
        """The ``"target"`` or ``"topic"`` list in words, or ``default``."""
        return getattr(self, which) or default
