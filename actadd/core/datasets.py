"""Contrast-pair datasets: the built-in ones and the user's CSV or JSONL files.

A dataset is a tuple of :class:`actadd.config.Pair` (the one pair type), ready for the
dataset methods of :mod:`actadd.core.methods` (CAA, PCA). Sources:

- ``"builtin:<name>"``: a dataset shipped in ``actadd/data`` (:data:`BUILTIN`); each was
  written for actadd and is CC0 (``actadd/data/PAIRS_LICENSE.md``);
- a ``.jsonl`` file: one JSON object a line with the keys ``positive``, ``negative`` and
  optionally ``label`` (blank lines are skipped);
- a ``.csv`` file: a header row naming the columns ``positive``, ``negative`` and optionally
  ``label``, then one pair a row.

A malformed row is a :class:`~actadd.errors.ConfigError` of one line that names the file and
line, what was wrong, and what is allowed, raised before any model is touched.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from actadd.config import Pair, read_text
from actadd.errors import ActAddError, ConfigError

__all__ = [
    "BUILTIN",
    "DATA_DIR",
    "ROW_KEYS",
    "load_pairs",
]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
BUILTIN: dict[str, str] = {"sentiment": "pairs_sentiment.jsonl"}
ROW_KEYS: tuple[str, ...] = ("positive", "negative", "label")
_ALLOWED = "each row needs non-empty text in 'positive' and 'negative' (optional: 'label')"


def load_pairs(source: str | Path) -> tuple[Pair, ...]:
    """The pairs of ``source``: ``"builtin:<name>"``, or a path to a ``.jsonl`` / ``.csv``."""
    if isinstance(source, str) and source.startswith("builtin:"):
        name = source.partition(":")[2]
        if name not in BUILTIN:
            raise ConfigError(
                f"Unknown built-in pair dataset {name!r}; built in: "
                f"{', '.join('builtin:' + n for n in sorted(BUILTIN))}."
            )
        return load_pairs(DATA_DIR / BUILTIN[name])
    if not isinstance(source, (str, Path)):
        raise ConfigError(
            f"A pair dataset is 'builtin:<name>' or a path to a .jsonl or .csv file, "
            f"got {source!r}."
        )
    path = Path(source)
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise ConfigError(f"{path}: pair datasets are .jsonl or .csv files (got {path.suffix!r}).")
    if not path.is_file():
        raise ConfigError(f"No pair dataset at {path}.")
    text = read_text(path, "pair dataset")  # UTF-8, a leading byte-order mark dropped
    rows = _jsonl_rows(path, text) if path.suffix.lower() == ".jsonl" else _csv_rows(path, text)
    pairs = tuple(_pair(path, line, row) for line, row in rows)
    if not pairs:
        raise ConfigError(f"{path}: no pairs in the file; {_ALLOWED}.")
    return pairs


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, object]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append((line, json.loads(raw)))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path} line {line}: not valid JSON ({exc.msg}); each line is one object "
                'like {"positive": "...", "negative": "..."}.'
            ) from None
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, object]]:
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or not {"positive", "negative"} <= {h.strip() for h in header}:
        raise ConfigError(
            f"{path} line 1: the header must name the columns 'positive' and 'negative' "
            f"(optional: 'label'), got {header!r}."
        )
    names = [h.strip() for h in header]
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            raise ConfigError(
                f"{path} line {line}: {len(cells)} cells for {len(names)} columns {names}; "
                "quote cells that contain commas."
            )
        row = dict(zip(names, cells))
        if not row.get("label"):
            row.pop("label", None)
        rows.append((line, row))
    return rows


def _pair(path: Path, line: int, row: object) -> Pair:
    where = f"{path} line {line}"
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: a row is an object with keys {list(ROW_KEYS)}, got {row!r}.")
    unknown = sorted(set(row) - set(ROW_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {list(ROW_KEYS)}.")
    for key in ("positive", "negative"):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            got = "missing" if key not in row else f"{value!r}"
            raise ConfigError(f"{where}: {key!r} is {got}; {_ALLOWED}.")
    try:
        return Pair(row["positive"], row["negative"], row.get("label"))
    except ActAddError as exc:
        raise ConfigError(f"{where}: {exc}") from None
