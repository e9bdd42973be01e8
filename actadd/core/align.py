"""Where a steering vector's rows go in the prompt: :class:`Align`, the alignment kinds,
and :func:`default_align`, the alignment of a vector given none.

Pure data (no torch): a config can parse and check its alignment strings (``"front"``,
``"offset:3"``, ``"generated:8"``, ``"from:<token>"``, ...) without importing a model library.
:func:`actadd.core.placement.prompt_positions` turns an alignment into tensor positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from actadd.errors import SteeringError, Validated

__all__ = [
    "ALIGN_KINDS",
    "Align",
    "AlignKind",
    "AlignLike",
    "ONE_ROW_KINDS",
    "OnShort",
    "PHASE_KINDS",
    "default_align",
    "expand_align",
]

AlignKind = Literal["front", "offset", "back", "all", "positions", "span", "generated", "from"]
ALIGN_KINDS: tuple[str, ...] = (
    "front",
    "offset",
    "back",
    "all",
    "positions",
    "span",
    "generated",
    "from",
)
# alignments that place one row at positions known only as the sequence grows (generation
# phase): every generated position ("generated"), the first k ("generated:k"), or every
# position from a marker token on ("from:<token>")
PHASE_KINDS: tuple[str, ...] = ("all", "generated", "from")
# alignments that add one d_model row at each of their positions: the phase kinds and a
# prompt span ("span:a:b", e.g. the user turn of a chat prompt)
ONE_ROW_KINDS: tuple[str, ...] = (*PHASE_KINDS, "span")
OnShort = Literal["error", "clip"]


@dataclass(frozen=True)
class Align:
    """Where a vector's rows go in the prompt. Build with the class methods or :meth:`parse`."""

    kind: str = "front"  # one of ALIGN_KINDS, checked in __post_init__
    offset: int = 0  # "offset": the first row's position; "all": the first position covered
    positions: tuple[int, ...] = ()
    count: int | None = None  # "generated": only the first `count` generated positions
    marker: str | int | None = None  # "from": the marker token (a one-token string or an id)
    end: int = 0  # "span": prompt positions [offset, n_prompt - end)

    def __post_init__(self) -> None:
        if self.kind not in ALIGN_KINDS:
            raise SteeringError(
                f"Unknown alignment {self.kind!r}; allowed: front, back, all, all:<s>, offset:<s> "
                "(or an int s), positions:<p0,p1,...> (or a list of ints), span:<a>:<b>, "
                "generated, generated:<k>, from:<marker token>."
            )
        if self.kind == "generated" and self.count is not None:
            if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
                raise SteeringError(
                    f"generated:<k> needs k >= 1 (the first k generated positions), "
                    f"got {self.count!r}."
                )
        if self.kind == "from" and (
            isinstance(self.marker, bool)
            or not isinstance(self.marker, (str, int))
            or self.marker == ""
        ):
            raise SteeringError(
                f"from:<marker> needs a marker token (a one-token string or a token id), "
                f"got {self.marker!r}."
            )
        if self.kind in ("offset", "all") and (
            isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0
        ):
            raise SteeringError(f"offset must be a non-negative int, got {self.offset!r}.")
        if self.kind == "span" and not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0
            for x in (self.offset, self.end)
        ):
            raise SteeringError(
                f"span:<a>:<b> needs ints a, b >= 0 (prompt positions a to b before the end), "
                f"got {self.offset!r}, {self.end!r}."
            )
        if self.kind == "positions" and not self.positions:
            raise SteeringError("Align.at(...) needs at least one position.")

    @classmethod
    def front(cls) -> Align:
        return cls("front")

    @classmethod
    def back(cls) -> Align:
        return cls("back")

    @classmethod
    def all(cls, start: int = 0) -> Align:
        """One row at every position from prompt position ``start`` on, generated tokens
        included: ``start=0`` is every position (llama.cpp's convention), ``start=1``
        every position after the leading token (``"all:1"``, the default of one-row
        vectors: :func:`default_align`)."""
        return cls("all", offset=start)

    @classmethod
    def at_offset(cls, s: int) -> Align:
        return cls("front") if s == 0 else cls("offset", offset=s)

    @classmethod
    def generated(cls, first: int | None = None) -> Align:
        """Every generated position, or only the first ``first`` of them."""
        return cls("generated", count=first)

    @classmethod
    def from_marker(cls, marker: str | int) -> Align:
        """Every position from the first occurrence of ``marker`` on (marker included)."""
        return cls("from", marker=marker)

    @classmethod
    def span(cls, start: int, end: int = 0) -> Align:
        """One row at every prompt position from ``start`` (counted from the leading token)
        up to ``end`` positions before the prompt's end: ``[start, n_prompt - end)``. The
        user turn of a chat prompt is such a span (:func:`actadd.core.chat.user_turn_span`)."""
        return cls("span", offset=start, end=end)

    @classmethod
    def at(cls, positions: Sequence[int]) -> Align:
        return cls("positions", positions=tuple(int(p) for p in positions))

    @classmethod
    def parse(cls, spec: Validated[Align | str | int | Sequence[int]]) -> Align:
        """Accepts an ``Align``, ``"front"``, ``"back"``, ``"all"``, ``"all:1"``,
        ``"offset:3"``, ``3``, ``"positions:0,2,-1"``, ``[0, 2, -1]``, ``"span:a:b"``,
        ``"generated"``, ``"generated:8"`` or ``"from:<token>"``."""
        if isinstance(spec, Align):
            return spec
        if isinstance(spec, bool):
            raise SteeringError(f"Unknown alignment {spec!r}.")
        if isinstance(spec, int):
            return cls.at_offset(spec)
        if isinstance(spec, str):
            name, _, arg = spec.partition(":")
            name = name.strip().lower()
            if name == "from":
                return cls.from_marker(arg)
            if name == "generated" and arg:
                if not arg.strip().isdigit():
                    raise SteeringError(f"generated:<k> needs an int k >= 1, got {spec!r}.")
                return cls.generated(int(arg))
            try:
                if name == "offset":
                    return cls.at_offset(int(arg))
                if name == "positions":
                    return cls.at([int(p) for p in arg.split(",") if p.strip()])
                if name == "span":
                    a, _, b = arg.partition(":")
                    return cls.span(int(a), int(b or 0))
                if name == "all" and arg:
                    return cls.all(int(arg))
            except ValueError:
                raise SteeringError(f"Cannot parse alignment {spec!r}.") from None
            if arg:
                raise SteeringError(f"Alignment {name!r} takes no argument (got {spec!r}).")
            return cls(name)  # validated in __post_init__
        if isinstance(spec, Sequence):
            return cls.at(spec)
        raise SteeringError(f"Unknown alignment {spec!r}.")

    def __str__(self) -> str:
        if self.kind == "offset" or (self.kind == "all" and self.offset):
            return f"{self.kind}:{self.offset}"
        if self.kind == "positions":
            return "positions:" + ",".join(map(str, self.positions))
        if self.kind == "span":
            return f"span:{self.offset}:{self.end}"
        if self.kind == "generated" and self.count is not None:
            return f"generated:{self.count}"
        if self.kind == "from":
            return f"from:{self.marker}"
        return self.kind


AlignLike = Align | str | int | Sequence[int]


def default_align(k: int) -> Align:
    """Where a ``k``-row vector goes when no alignment is given: a per-position vector
    (``k > 1``, ActAdd's) at the front, as in the paper (its leading-token row is ~0); a
    one-row vector (CAA, PCA, a mean) on every position after the leading token
    (``"all:1"``), as repeng, steering-vectors and llama.cpp apply one row at every
    position. At the front a one-row vector would sit on the leading token alone, an
    attention sink the model barely reads, and steer nothing."""
    return Align.front() if k > 1 else Align.all(1)


def expand_align(spec: str) -> list[Align]:
    """A config's align entry: one alignment, or ``"offset:a:b[:step]"``, one alignment per
    offset of the range (a sweep's ``aligns``)."""
    if isinstance(spec, str) and spec.startswith("offset:") and spec.count(":") >= 2:
        _, a, b, *rest = spec.split(":")
        try:
            offsets = range(int(a), int(b), int(rest[0]) if rest else 1)
        except ValueError:
            raise SteeringError(f"Cannot parse offset range {spec!r}.") from None
        if not offsets:
            raise SteeringError(f"Offset range {spec!r} is empty.")
        return [Align.at_offset(s) for s in offsets]
    return [Align.parse(spec)]
