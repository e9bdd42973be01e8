"""The config vocabulary every experiment shares: the one config idiom (:class:`Config`, a
frozen dataclass read with ``from_dict`` and written with ``to_dict``), pairs, texts, word
presets, number and layer lists, and one check for unknown keys. Every problem is a
:class:`ConfigError` whose message says what was wrong and what is allowed.

A **pair** is written in a TOML config as ``[positive, negative]`` or as a table
``{positive = "...", negative = "...", label = "...", pad_token = " a"}``; in Python it is a
:class:`Pair`. **Layers** follow one rule everywhere: ``resid_pre`` layers ``0..n_layers``
(``n_layers`` is the final residual stream; see :func:`actadd.runtime.hooks.check_layer`), written
as
a list or as ``"all"`` / ``"a:b[:step]"`` / ``"3"``. **Target words** are a preset name
(:data:`TOPIC_PRESETS`) or a list of words. **Scalars** go through :func:`integer`,
:func:`number` and :func:`boolean`, which refuse a wrong type by name (``"64"`` is "the
string '64'", not a Python comparison error) and state the allowed range; coefficients are
bounded by :data:`MAX_COEFF`.

This module imports no model code, so configs are checked in well under a second.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Collection, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from actadd._io import read_text, read_toml
from actadd.errors import (
    ActAddError,
    ConfigError,
    Validated,
    build_all,
    key_problems,
    raise_all,
)

__all__ = [
    "ANGER_WORDS",
    "COEFF_MODES",
    "EQUALIZE_RULES",
    "LOVE_WORDS",
    "MAX_COEFF",
    "PAIR_KEYS",
    "TOPIC_PRESETS",
    "WEDDING_WORDS",
    "Config",
    "Pair",
    "boolean",
    "check_keys",
    "check_layers",
    "coeff_mode",
    "coefficients",
    "describe",
    "integer",
    "number",
    "number_list",
    "pair_label",
    "parse_layers",
    "parse_pairs",
    "read_text",
    "read_toml",
    "text_list",
    "words",
]

WEDDING_WORDS: tuple[str, ...] = (
    "wedding",
    "weddings",
    "wed",
    "marry",
    "married",
    "marriage",
    "bride",
    "groom",
    "honeymoon",
)
ANGER_WORDS: tuple[str, ...] = (
    "anger",
    "angry",
    "furious",
    "rage",
    "hate",
    "mad",
    "outraged",
    "annoyed",
    "livid",
)
LOVE_WORDS: tuple[str, ...] = ("love", "loving", "loved", "adore", "affection", "care", "kind")
TOPIC_PRESETS: dict[str, tuple[str, ...]] = {
    "weddings": WEDDING_WORDS,
    "anger": ANGER_WORDS,
    "love": LOVE_WORDS,
}
PAIR_KEYS: tuple[str, ...] = ("positive", "negative", "label", "pad_token")
# the largest |coefficient|: far past any meaningful steering (residual norms are O(1..100)),
# and huge ones (1e300) overflow the activations to inf/NaN after compute has started
MAX_COEFF: float = 1e6


# ---------------------------------------------------------------------- the config idiom

C = TypeVar("C", bound="Config")


class Config:
    """The one config idiom: mix into a ``@dataclass(frozen=True)``.

    A config is pure data (no model, no torch at import): every value is checked in
    ``__post_init__`` and a problem is one :class:`ConfigError` line. What needs the model
    (layer ranges, single-token words, lengths in tokens) is a separate plan step that the
    kind runs after loading it.

    - :meth:`from_dict` reads a TOML table: it drops ``kind``, renames deprecated keys
      (:attr:`ALIASES`, with a :class:`DeprecationWarning`), refuses unknown and missing keys
      (:attr:`REQUIRED`) by name, turns lists into tuples and lets :meth:`_convert` parse
      nested tables (pairs, sampling, ...); all problems at once (``ConfigErrors``);
    - :meth:`to_dict` is what ``config.json`` holds and what ``--resume`` compares: stable, so
      fields added later (:attr:`LEFT_OUT_AT_DEFAULT`) are left out at their default and old
      run directories still resume.
    """

    #: how messages name the table ("sweep config", "[generation]", ...)
    WHERE: ClassVar[str] = "config"
    #: keys the table must have
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    #: deprecated key -> its name now; accepted with a DeprecationWarning
    ALIASES: ClassVar[dict[str, str]] = {}
    #: fields :meth:`to_dict` leaves out while they hold their default
    LEFT_OUT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ()
    #: stand-ins for wrong required keys while the rest is checked (else the search ends)
    EXAMPLE: ClassVar[dict[str, Any]] = {}

    @classmethod
    def keys(cls) -> list[str]:
        """The keys a table may have: the dataclass's init fields."""
        return [f.name for f in fields(cls) if f.init]  # type: ignore[arg-type]

    @classmethod
    def required_keys(cls) -> list[str]:
        """:attr:`REQUIRED` and every key whose field has no default."""
        bare = [f.name for f in fields(cls) if f.default is f.default_factory is MISSING]  # type: ignore[arg-type]
        return list(dict.fromkeys([*cls.REQUIRED, *(k for k in bare if k in cls.keys())]))

    @classmethod
    def from_dict(cls: type[C], raw: Any, where: str | None = None) -> C:
        """The config from a table, or every problem at once (:func:`~actadd.errors.build_all`)."""
        where = where or cls.WHERE
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table, got {describe(raw)}.")
        raw = dict(raw)
        raw.pop("kind", None)
        for old, new in cls.ALIASES.items():
            if old not in raw:
                continue
            if new in raw:
                raise ConfigError(f"{where}: give {new!r} only ({old!r} is its old name).")
            warnings.warn(
                f"{where}: the key {old!r} is now called {new!r}; the old name goes in the "
                "next release.",
                DeprecationWarning,
                stacklevel=2,
            )
            raw[new] = raw.pop(old)
        keys, required = cls.keys(), cls.required_keys()
        problems = key_problems(raw, keys, where, required=required)
        known = {k: v for k, v in raw.items() if k in keys}
        if any(k not in known for k in required):
            raise_all(problems)  # nothing to build without them
        movable = [k for k in known if k in cls.EXAMPLE or k not in required]
        return build_all(lambda t: cls._build(t, where), known, movable, cls.EXAMPLE, problems)

    @classmethod
    def _build(cls: type[C], raw: dict[str, Any], where: str) -> C:
        values = cls._convert({k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def _convert(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Parse nested tables (override); ``raw``'s keys are already checked."""
        return raw

    @classmethod
    def from_toml(cls: type[C], path: str | Path) -> C:
        return cls.from_dict(read_toml(path))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able config (``config.json``; compared on resume): its :meth:`keys`."""
        out = {k: v for k, v in asdict(self).items() if k in self.keys()}  # type: ignore[call-overload]
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in self.LEFT_OUT_AT_DEFAULT and f.name in out:
                default = f.default if f.default_factory is MISSING else f.default_factory()
                if out[f.name] == default:
                    del out[f.name]
        return out


# ---------------------------------------------------------------------- the pair


@dataclass(frozen=True)
class Pair:
    """A contrast pair: the prompts ``positive`` (p+) and ``negative`` (p−), an optional
    ``label`` for tables and figures, and the ``pad_token`` that pads the shorter prompt
    (a single-token string or a token id; the paper's is ``" "``).

    ``name`` is the label, or :func:`pair_label` of the prompts when there is none
    (``Love − Hate``): the value of the ``pair`` column in every results table.
    """

    positive: str
    negative: str = ""
    label: str | None = None
    pad_token: str | int = " "

    def __post_init__(self) -> None:
        if not isinstance(self.positive, str) or not isinstance(self.negative, str):
            raise ConfigError(
                f"A pair's positive and negative must be strings, got {self.positive!r}, "
                f"{self.negative!r}."
            )
        if not self.positive and not self.negative:
            raise ConfigError(
                "A pair has two empty prompts (both sides are empty): at least one side needs text."
            )
        if self.label is not None and (not isinstance(self.label, str) or not self.label):
            raise ConfigError(f"A pair's label must be a non-empty string, got {self.label!r}.")
        pad = self.pad_token
        if isinstance(pad, bool) or not isinstance(pad, (str, int)) or pad == "":
            raise ConfigError(
                f"pad_token must be a single-token string (e.g. ' ' or ' a') or a token id, "
                f"got {pad!r}."
            )

    @property
    def name(self) -> str:
        return self.label or pair_label(self.positive, self.negative)

    @classmethod
    def parse(cls, raw: Any, where: str = "pair") -> Pair:
        """A pair from ``[positive, negative]``, a table with :data:`PAIR_KEYS`, or a Pair."""
        if isinstance(raw, Pair):
            return raw
        if isinstance(raw, (list, tuple)) and len(raw) == 2:
            if not all(isinstance(x, str) for x in raw):
                raise ConfigError(f"{where}: both sides of {raw!r} must be strings.")
            return cls(raw[0], raw[1])
        if isinstance(raw, dict):
            check_keys(raw, PAIR_KEYS, where, required=("positive",))
            return cls(**raw)
        raise ConfigError(
            f"{where}: a pair is [positive, negative] or a table with keys "
            f"{list(PAIR_KEYS)}; got {raw!r}."
        )


def pair_label(positive: str, negative: str) -> str:
    """The one label of a pair (reprs, tables, figures): ``Love − Hate``, U+2212 with spaces;
    a side that is empty, has whitespace at an end, or holds a quote, newline, tab or ``−``
    is written as its repr (``' weddings' − ''``, ``Love − ' '``)."""
    sides = (positive, negative)
    plain = [s and s == s.strip() and not any(c in s for c in "'\"\n\t−") for s in sides]
    return " − ".join(s if ok else repr(s) for s, ok in zip(sides, plain))


def parse_pairs(raw: Any, where: str = "pairs") -> tuple[Pair, ...]:
    """A non-empty list of pairs (see :meth:`Pair.parse`)."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of pairs ([positive, negative]).")
    try:
        return tuple(Pair.parse(p, f"{where}[{i}]") for i, p in enumerate(raw))
    except ConfigError:
        raise
    except ActAddError as exc:
        raise ConfigError(f"{where}: {exc}") from None


# ---------------------------------------------------------------------- files, keys, lists, words


def check_keys(
    raw: Validated[dict],
    allowed: Collection[str],
    where: str,
    *,
    required: Collection[str] = (),
) -> None:
    """Raise unless ``raw``'s keys are among ``allowed`` and include ``required`` (both
    problems at once, unknown keys with a "did you mean")."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table, got {raw!r}.")
    raise_all(key_problems(raw, allowed, where, required=required))


def number_list(raw: Any, where: str, *, integer: bool = False, allow_empty: bool = False) -> list:
    """A list of finite numbers (ints with ``integer``), without repeats."""
    if not isinstance(raw, (list, tuple)) or (not raw and not allow_empty):
        kind = "ints" if integer else "numbers"
        raise ConfigError(f"{where} must be a non-empty list of {kind}, got {raw!r}.")
    kind = numbers.Integral if integer else numbers.Real
    for x in raw:
        if isinstance(x, bool) or not isinstance(x, kind):
            raise ConfigError(
                f"{where}: {describe(x)} is not {'an int' if integer else 'a number'} "
                f"(need {'ints' if integer else 'finite numbers'})."
            )
        if not math.isfinite(x):
            raise ConfigError(f"{where}: {x!r} is not a finite number.")
    values = [int(x) if integer else float(x) for x in raw]
    repeated = sorted({x for x in values if values.count(x) > 1})
    if repeated:
        raise ConfigError(f"{where}: {repeated} given more than once; list each value once.")
    return values


def text_list(raw: Any, what: str = "texts") -> list[str]:
    """A non-empty list of non-empty strings (a lone string counts as a list of one)."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"No {what} given: at least one non-empty string is needed.")
    bad = [t for t in raw if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ConfigError(
            f"{what} must be non-empty strings (not only whitespace); got {bad[:3]!r}."
        )
    return list(raw)


# ---------------------------------------------------------------------- scalars


def describe(value: Any) -> str:
    """A config value as an error names it: ``the string '64'``, ``the boolean true``,
    ``2.5``; so a wrong type reads as what the file holds, not as a Python error."""
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (list, tuple)):
        return f"the list {list(value)!r}"
    if isinstance(value, dict):
        return f"the table {value!r}"
    return repr(value)


def _bounds(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None and not low_open:
        return f" in {low:g}..{high:g}"
    parts = [f"{'>' if low_open else '>='} {low:g}"] if low is not None else []
    parts += [f"<= {high:g}"] if high is not None else []
    return (" " + " and ".join(parts)) if parts else ""


def integer(
    raw: Any, where: str, *, low: int | None = None, high: int | None = None, why: str = ""
) -> int:
    """``raw`` as an int in ``low..high`` (either end optional), or a ConfigError naming
    ``where``, the value and the allowed range (``why``: the reason for the bound)."""
    allowed = f"an integer{_bounds(low, high)}"
    if isinstance(raw, bool) or not isinstance(raw, numbers.Integral):
        raise ConfigError(f"{where} must be {allowed}, got {describe(raw)}.")
    value = int(raw)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{where} must be {allowed}, got {value}{why and f' ({why})'}.")
    return value


def number(
    raw: Any,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    why: str = "",
) -> float:
    """``raw`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``;
    either end optional), or a ConfigError naming ``where``, the value and what is allowed."""
    allowed = f"a finite number{_bounds(low, high, low_open)}"
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        raise ConfigError(f"{where} must be {allowed}, got {describe(raw)}.")
    try:
        value = float(raw)
    except OverflowError:  # an int past float range
        value = math.inf
    below = low is not None and (value <= low if low_open else value < low)
    if not math.isfinite(value) or below or (high is not None and value > high):
        raise ConfigError(f"{where} must be {allowed}, got {raw!r}{why and f' ({why})'}.")
    return value


def boolean(raw: Any, where: str) -> bool:
    """``raw`` if it is a TOML boolean; the string ``"false"`` is not one (it would count as
    true), so it is refused by name."""
    if not isinstance(raw, bool):
        raise ConfigError(
            f"{where} must be true or false (a TOML boolean, unquoted), got {describe(raw)}."
        )
    return raw


def coefficients(raw: Any, where: str = "coeffs", *, allow_empty: bool = False) -> list[float]:
    """A list of steering coefficients: finite numbers, each once, ``|c| <= MAX_COEFF``."""
    values = number_list(raw, where, allow_empty=allow_empty)
    big = [c for c in values if abs(c) > MAX_COEFF]
    if big:
        raise ConfigError(
            f"{where}: {big[0]:g} is too large; allowed |coeff| <= {MAX_COEFF:g} (far past any "
            "meaningful steering; huge ones overflow the activations to inf/NaN)."
        )
    return values


def words(raw: Any, where: str = "target_words") -> tuple[str, ...]:
    """A preset name from :data:`TOPIC_PRESETS`, or a non-empty list of words."""
    if isinstance(raw, str):
        if raw not in TOPIC_PRESETS:
            raise ConfigError(
                f"{where}: unknown preset {raw!r}; presets: {sorted(TOPIC_PRESETS)}, "
                "or give a list of words."
            )
        return TOPIC_PRESETS[raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where} must be a preset name or a non-empty list of words.")
    bad = ", ".join(repr(w) for w in raw if not (isinstance(w, str) and w.strip()))
    if bad:  # every bad entry at once, not one per try
        raise ConfigError(
            f"{where}: not words: {bad}; give a preset name or a non-empty list of words."
        )
    return tuple(raw)


# ---------------------------------------------------------------------- layers


def parse_layers(spec: str | Sequence[int], n_layers: int, where: str = "layers") -> list[int]:
    """A layer list: ``"all"`` → ``0..n-1``; ``"a:b[:step]"`` → ``range(a, b, step)``;
    ``"3"`` → ``[3]``; a list of ints as given. Range-checked by :func:`check_layers`."""
    if not isinstance(spec, str):
        return number_list(spec, where, integer=True)
    s = spec.strip().lower()
    if s == "all":
        return list(range(n_layers))
    parts = s.split(":")
    try:
        nums = [int(p) if p else None for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1 and nums[0] is not None:
        return [nums[0]]
    if len(nums) in (2, 3):
        start = nums[0] or 0
        stop = nums[1] if nums[1] is not None else n_layers
        step = nums[2] if len(nums) == 3 and nums[2] else 1
        if step <= 0:
            raise ConfigError(f"{where} {spec!r}: step must be positive.")
        return list(range(start, stop, step))
    raise ConfigError(f"{where} {spec!r}: use 'all', 'a:b', 'a:b:step' or a list of ints.")


def check_layers(layers: Sequence[int], n_layers: int, where: str = "layers") -> list[int]:
    """Raise unless every layer is a ``resid_pre`` layer ``0..n_layers`` (the one rule)."""
    layers = list(layers)
    if not layers:
        raise ConfigError(f"{where} selects no layer.")
    bad = [x for x in layers if isinstance(x, bool) or not isinstance(x, int)]
    bad += [x for x in layers if x not in bad and not 0 <= x <= n_layers]
    if bad:
        raise ConfigError(
            f"{where} {bad} out of range: allowed resid_pre layers 0..{n_layers} "
            f"(blocks 0..{n_layers - 1}; {n_layers} is the final residual stream)."
        )
    return layers


# ---------------------------------------------------------------------- pair length, coeff

#: how the two prompts of a pair are made the same length: pad the shorter on the right or
#: the left, or truncate the longer (the ``equalize`` of a sweep config, of
#: ``SteeringVector.from_pair`` and of the playground; ``pads`` is its deprecated config key)
EQUALIZE_RULES: tuple[str, ...] = ("right", "left", "truncate")
#: what a coefficient means (actadd.core.sizes): the vector times it, or its size
COEFF_MODES: dict[str, str] = {
    "absolute": "the vector times the coefficient, as the paper does",
    "relative": "the vector scaled to coefficient × the typical residual norm at its layer",
}


def coeff_mode(raw: Any, where: str = "coeff_mode") -> str:
    """``raw`` if it is one of :data:`COEFF_MODES`, else one line listing them."""
    if raw in COEFF_MODES:
        return raw
    allowed = "; ".join(f"{k!r} ({v})" for k, v in COEFF_MODES.items())
    raise ConfigError(f"{where} {raw!r} unknown; allowed: {allowed}.")
