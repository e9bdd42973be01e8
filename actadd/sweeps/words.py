"""A sweep's word lists: the target words (next-token log-prob mass) and the topic words
(completions that mention the topic), never a silent default.

A config names each list (a preset of :data:`actadd.config.TOPIC_PRESETS` or a list of
words). Left out, a list is derived from the pairs only when that is unambiguous: every
pair's positive side is one word (``" weddings"``, ``"Love"``) of exactly one preset, the
same for every pair (:func:`derive`); otherwise the config is refused with one line naming
the key and the presets (:func:`missing`). Either way the run says which words it measures
at its start (:func:`describe`) and every table that uses them names them in a column
(:func:`label`: ``target_words`` / ``topic_words``).

Pure data (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actadd.config import TOPIC_PRESETS, Pair, words
from actadd.errors import ConfigError

__all__ = ["WORD_COLUMNS", "derive", "describe", "label", "lines", "missing", "resolve"]

# the tables' columns that name the word lists (the preset name or the words, comma-joined)
WORD_COLUMNS: tuple[str, ...] = ("target_words", "topic_words")


def derive(pairs: Sequence[Pair]) -> str | None:
    """The preset that the pairs name: every pair's positive side, stripped and lowercased,
    is one word of exactly one preset, the same preset for every pair. ``None`` otherwise
    (no guess from longer prompts or words in no preset)."""
    found = set()
    for pair in pairs:
        word = pair.positive.strip().lower()
        hits = [name for name, ws in TOPIC_PRESETS.items() if word and word in ws]
        if len(word.split()) != 1 or len(hits) != 1:
            return None
        found.add(hits[0])
    return found.pop() if len(found) == 1 else None


def resolve(
    pairs: Sequence[Pair], target: Any, topic: Any, next_token: bool, sampled: bool
) -> tuple[Any, Any, tuple[str, ...]]:
    """``(target_words, topic_words, derived keys)`` of a sweep: each list as given
    (checked) or, left out (``None``), derived from ``pairs``. The target words are needed
    by next-token metrics only (unneeded and not derivable, they stay ``None``), the topic
    words by sampled completions (``sampled``). A list needed and neither given nor
    derivable is one ConfigError line (:func:`missing`)."""
    derived = []
    preset = derive(pairs)
    if target is None and preset is not None:
        target, derived = preset, ["target_words"]
    elif target is None and next_token:
        raise missing("target_words", pairs)
    if target is not None:
        words(target, "target_words")
    if sampled and topic is None:
        if preset is None:
            raise missing("generation.topic_words", pairs)
        topic = preset
        derived.append("generation.topic_words")
    return target, topic, tuple(derived)


def lines(spec) -> list[str]:
    """The lines a sweep (:class:`~actadd.sweeps.spec.SweepSpec`) prints at its start: one
    per word list it measures."""
    gen = spec.generation
    lists = [
        (
            "target_words",
            spec.target_words if spec.next_token else None,
            "next-token log-prob mass",
        ),
        ("generation.topic_words", gen and gen.topic_words, "completions on topic"),
    ]
    return [
        describe(key, value, what, spec.pairs if key in spec.derived_words else ())
        for key, value, what in lists
        if value is not None
    ]


def missing(key: str, pairs: Sequence[Pair]) -> ConfigError:
    """The one-line refusal of a word list that is neither given nor derivable."""
    presets = ", ".join(sorted(TOPIC_PRESETS))
    return ConfigError(
        f"{key} is not set, and {_pairs(pairs)} names no preset to derive it from; set "
        f"{key} to a preset ({presets}) or a list of words, e.g. {key.rpartition('.')[2]} = "
        '["cat", "cats", "kitten"].'
    )


def label(value: Any) -> str:
    """A word list as a table cell: the preset's name, or the words comma-joined."""
    return value if isinstance(value, str) else ", ".join(value)


def describe(key: str, value: Any, what: str, derived_from: Sequence[Pair] = ()) -> str:
    """One line naming a word list and its words, e.g. ``target_words (next-token
    log-prob): preset 'weddings' = wedding, weddings, ...``; a derived list says from which
    pairs and how to choose another."""
    listed = ", ".join(words(value, key))
    name = f"preset {value!r} = {listed}" if isinstance(value, str) else listed
    line = f"{key} ({what}): {name}"
    if derived_from:
        line += f" (derived from {_pairs(derived_from)}; set {key} to measure other words)"
    return line


def _pairs(pairs: Sequence[Pair]) -> str:
    names = ", ".join(p.name for p in pairs)
    return f"the pair {names}" if len(pairs) == 1 else f"the pairs ({names})"
