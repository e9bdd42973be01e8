"""The ``pad_confound`` kind's config: :class:`PadConfoundConfig`, its pairs
(:class:`PadPair`) and its ``[surgery]``, ``[attention]`` and ``[generation]`` tables. Pure
data: imports no model code (the ``[generation]`` check builds the sweep spec, importing it
when a config is built, not when this module is imported).

Config (``experiments/pad_confound.toml``)::

    kind = "pad_confound"
    pad_tokens = [" ", " a", "\\n", ...]  # the panel: single tokens (strings) or token ids
    reference_pad = " "                 # the paper's pad, which surgery and claims compare with
    layers = "all"
    prompts = [...]
    control_words = [...]               # single tokens each
    massive_ratio = 2.0                 # a pad row is massive above this × the typical norm
    batch_rows = 256
    [[pairs]]                           # positive, negative, label, coeff, target_words
    [surgery]                           # pad_tokens, methods ("zero_massive", "mean_row")
    [attention]                         # pair (a label), pad_tokens, inject_layers
    [generation]                        # pair, pad_tokens, layers, coeff, prompts, n_samples, ...

``pad_tokens`` was called ``pads`` (still read, with a DeprecationWarning): the project's
``pads`` / ``equalize`` is the pair-length rule, and these are pad *tokens*. The config is
saved as written (:class:`~actadd.studies.written.Written`), and ``config.json`` keeps the key
``pads`` for the pad tokens, the name every run directory has stored, so old and new runs
alike resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actadd.config import Pair, number_list, parse_layers, text_list, words
from actadd.errors import ActAddError, ConfigError, Validated
from actadd.studies.written import Written

__all__ = [
    "NAME",
    "SURGERY_METHODS",
    "AttentionTable",
    "GenerationTable",
    "PadConfoundConfig",
    "PadPair",
    "SurgeryTable",
    "pad_label",
]

NAME = "pad_confound"
SURGERY_METHODS: tuple[str, ...] = ("zero_massive", "mean_row")
PADS = {"pads": "pad_tokens"}  # the old key, in every table
SAVED_PADS = {"pad_tokens": "pads"}  # ... and the key config.json has always used
SAMPLING_KEYS = ("n_samples", "max_new_tokens", "seed", "temperature", "top_p", "freq_penalty")


def pad_label(pad: str | int) -> str:
    """A pad as it appears in tables: its ``repr`` (``"' '"``, ``"'\\n'"``), or ``id 0``."""
    return f"id {pad}" if isinstance(pad, int) else repr(pad)


def pad_list(raw: Any, where: str) -> tuple[str | int, ...]:
    """Non-empty, no repeats; each a non-empty string or a token id."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of single-token strings or ids.")
    for p in raw:
        if isinstance(p, bool) or not isinstance(p, (str, int)) or p == "":
            raise ConfigError(f"{where}: {p!r} is not a pad (a single-token string or an id).")
    reps = sorted({repr(p) for p in raw if list(raw).count(p) > 1})
    if reps:
        raise ConfigError(f"{where}: {reps} given more than once; list each pad once.")
    return tuple(raw)


def positive_number(raw: Any, where: str, minimum: float = 0.0) -> float:
    """A finite number above ``minimum``."""
    (x,) = number_list([raw], where)
    if x <= minimum:
        raise ConfigError(f"{where} must be > {minimum:g}, got {raw!r}.")
    return x


def _table(cls: type[Written], raw: Any, where: str) -> Any:
    return raw if isinstance(raw, cls) else cls.from_dict(raw, where)


# ---------------------------------------------------------------------- the pairs


@dataclass(frozen=True)
class PadPair(Written):
    """A pair of the panel: the :class:`~actadd.config.Pair` (no ``pad_token``: the panel
    supplies the pads), its coefficient ``coeff`` and the ``target_words`` whose next-token
    log-probability it should raise (a preset name or a list). A table writes the pair's
    keys flat: ``positive``, ``negative``, ``label``, ``coeff``, ``target_words``."""

    WHERE = "pair"
    REQUIRED = ("positive", "negative", "target_words")
    PAIR_KEYS = ("positive", "negative", "label")

    # Validated: checked (and named in one line) by __post_init__, whatever the type
    pair: Validated[Pair]
    target_words: Validated[str | tuple[str, ...]]
    coeff: Validated[float] = 1.0

    @classmethod
    def keys(cls) -> list[str]:
        return [*cls.PAIR_KEYS, "coeff", "target_words"]

    @classmethod
    def _convert(cls, raw: dict[str, Any]) -> dict[str, Any]:
        pair = {k: raw.pop(k) for k in cls.PAIR_KEYS if k in raw}
        return {**raw, "pair": pair}

    def __post_init__(self) -> None:
        positive_number(self.coeff, "coeff", minimum=-1e300)
        words(self.target_words, "target_words")
        try:
            object.__setattr__(self, "pair", Pair.parse(self.pair, "pair"))
        except ConfigError:
            raise
        except ActAddError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def from_dict(cls, raw: Any, where: str | None = None) -> PadPair:
        """A pair from its table; a problem is named by ``where`` (``pairs[0]``)."""
        try:
            return super().from_dict(raw, where)
        except ConfigError as exc:
            message = str(exc)
            if where and not message.startswith(where):
                raise ConfigError(f"{where}: {message}") from None
            raise

    @property
    def name(self) -> str:
        return self.pair.name

    def to_dict(self) -> dict[str, Any]:
        p = self.pair
        flat = {"positive": p.positive, "negative": p.negative, "label": p.label}
        flat |= {"coeff": self.coeff, "target_words": self.target_words}
        written = getattr(self, "_written", None)
        if written is None:
            return {k: v for k, v in flat.items() if v is not None}
        return {k: v for k, v in flat.items() if k in written}


# ---------------------------------------------------------------------- the tables


@dataclass(frozen=True)
class SurgeryTable(Written):
    """``[surgery]``: the pads whose row is operated on (default: the reference pad) and
    the ``methods`` (:data:`SURGERY_METHODS`)."""

    WHERE = "[surgery]"
    ALIASES = PADS
    SAVED_AS = SAVED_PADS

    pad_tokens: Validated[tuple[str | int, ...] | None] = None
    methods: Validated[tuple[str, ...]] = SURGERY_METHODS

    def __post_init__(self) -> None:
        if self.pad_tokens is not None:
            pad_list(self.pad_tokens, "[surgery] pad_tokens")
        methods = self.methods
        bad = [m for m in methods if m not in SURGERY_METHODS] if methods else []
        if bad or not methods or not isinstance(methods, (list, tuple)):
            raise ConfigError(f"[surgery] methods {bad or methods!r}: allowed {SURGERY_METHODS}.")


@dataclass(frozen=True)
class AttentionTable(Written):
    """``[attention]``: the ``pair`` (its name) whose pad-row position is measured, the
    pads it is steered with (default: the reference pad) and the ``inject_layers``."""

    WHERE = "[attention]"
    REQUIRED = ("pair",)
    ALIASES = PADS
    SAVED_AS = SAVED_PADS

    pair: str
    pad_tokens: Validated[tuple[str | int, ...] | None] = None
    inject_layers: Validated[tuple[int, ...]] = (4,)

    def __post_init__(self) -> None:
        if self.pad_tokens is not None:
            pad_list(self.pad_tokens, "[attention] pad_tokens")
        number_list(self.inject_layers, "[attention] inject_layers", integer=True)


@dataclass(frozen=True)
class GenerationTable(Written):
    """``[generation]``: sampled completions of one ``pair`` (its name) padded with each of
    ``pad_tokens`` (default: the reference pad, which must be among them) at ``layers`` and
    ``coeff`` (default: the pair's), counted for ``topic_words`` (default: the pair's
    target words). Unset sampling keys take the sweep engine's defaults
    (:class:`actadd.sweeps.spec.GenerationSpec`)."""

    WHERE = "[generation]"
    REQUIRED = ("pair", "layers")
    ALIASES = PADS
    SAVED_AS = SAVED_PADS

    pair: str
    layers: Validated[tuple[int, ...]]
    pad_tokens: Validated[tuple[str | int, ...] | None] = None
    coeff: Validated[float | None] = None
    prompts: Validated[tuple[str, ...] | None] = None
    n_samples: Validated[int | None] = None
    max_new_tokens: Validated[int | None] = None
    seed: Validated[int | None] = None
    temperature: Validated[float | None] = None
    top_p: Validated[float | None] = None
    freq_penalty: Validated[float | None] = None
    topic_words: Validated[str | tuple[str, ...] | None] = None

    def __post_init__(self) -> None:
        if self.pad_tokens is not None:
            pad_list(self.pad_tokens, "[generation] pad_tokens")
        number_list(self.layers, "[generation] layers", integer=True)
        if self.prompts is not None:
            text_list(self.prompts, "[generation] prompts")

    def sampling(self) -> dict[str, Any]:
        """The sampling keys the table sets."""
        return {k: getattr(self, k) for k in SAMPLING_KEYS if getattr(self, k) is not None}


# ---------------------------------------------------------------------- the config


@dataclass(frozen=True)
class PadConfoundConfig(Written):
    """Is the paper's ``" "`` pad a confound, and which pad instead? Every pair of
    ``pairs`` × every pad of ``pad_tokens`` × every layer of ``layers``, on ``prompts``,
    against ``control_words``; ``reference_pad`` is the paper's pad that surgery, the
    claims and the figures compare with; ``massive_ratio`` the norm ratio above which a pad
    row counts as massive. See the module docstring for the tables."""

    WHERE = f"{NAME} config"
    REQUIRED = ("pairs", "pad_tokens", "layers", "prompts")
    ALIASES = PADS
    SAVED_AS = SAVED_PADS

    # Validated: checked (and named in one line) by __post_init__, whatever the type
    pairs: Validated[tuple[PadPair, ...]]
    pad_tokens: Validated[tuple[str | int, ...]]
    layers: Validated[str | tuple[int, ...]]
    prompts: Validated[tuple[str, ...]]
    name: str | None = None
    description: str | None = None
    model: str | None = None
    reference_pad: Validated[str | int] = " "
    control_words: Validated[str | tuple[str, ...]] = ()
    massive_ratio: Validated[float] = 2.0
    batch_rows: Validated[int] = 256
    surgery: Validated[SurgeryTable] = SurgeryTable()
    attention: Validated[AttentionTable | None] = None
    generation: Validated[GenerationTable | None] = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        raw = self.pairs
        if not isinstance(raw, (list, tuple)) or not raw:
            raise ConfigError("pairs must be a non-empty list of tables {positive, negative, ...}.")
        set_("pairs", tuple(_table(PadPair, t, f"pairs[{i}]") for i, t in enumerate(raw)))
        names = [p.name for p in self.pairs]
        if len(set(names)) != len(names):
            raise ConfigError(f"pairs: two pairs share a name ({names}); give them labels.")
        pads = pad_list(self.pad_tokens, "pad_tokens")
        reference = self.reference_pad
        if reference not in pads:
            raise ConfigError(f"reference_pad {reference!r} must be one of pad_tokens.")
        if isinstance(self.layers, str):
            parse_layers(self.layers, 10**6)
        else:
            number_list(self.layers, "layers", integer=True)
        if len(text_list(self.prompts, "prompts")) < 2:
            raise ConfigError("prompts: give at least 2 (claims are tested over prompts).")
        words(self.control_words, "control_words")
        positive_number(self.massive_ratio, "massive_ratio")
        (rows,) = number_list([self.batch_rows], "batch_rows", integer=True)
        if rows < 1:
            raise ConfigError("batch_rows must be >= 1.")
        set_("surgery", _table(SurgeryTable, self.surgery, "[surgery]"))
        missing = [p for p in self.surgery_pads if p not in pads]
        if missing:
            raise ConfigError(f"[surgery] pad_tokens {missing!r} must also be in pad_tokens.")
        if self.attention is not None:
            set_("attention", _table(AttentionTable, self.attention, "[attention]"))
            if self.attention.pair not in names:
                raise ConfigError(
                    f"[attention] pair {self.attention.pair!r} is not one of {names}."
                )
        if self.generation is not None:
            set_("generation", _table(GenerationTable, self.generation, "[generation]"))
            g = self.generation
            if g.pair not in names:
                raise ConfigError(f"[generation] pair {g.pair!r} is not one of {names}.")
            if reference not in self.generation_pads:
                raise ConfigError(
                    "[generation] pad_tokens must include the reference_pad (the comparison)."
                )
            self.generation_sweep()  # the sweep engine's own checks

    # ------------------------------------------------------------------ resolved values

    @property
    def controls(self) -> tuple[str, ...]:
        """The control words (a preset resolved)."""
        return words(self.control_words, "control_words")

    @property
    def surgery_pads(self) -> tuple[str | int, ...]:
        return self.surgery.pad_tokens or (self.reference_pad,)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.surgery.methods)

    @property
    def attention_pads(self) -> tuple[str | int, ...]:
        a = self.attention
        return (a.pad_tokens if a else None) or (self.reference_pad,)

    @property
    def generation_pads(self) -> tuple[str | int, ...]:
        g = self.generation
        return (g.pad_tokens if g else None) or (self.reference_pad,)

    def pair_named(self, name: str) -> PadPair:
        return next(p for p in self.pairs if p.name == name)

    def generation_sweep(self):
        """The sweep spec of ``[generation]`` (:class:`actadd.sweeps.spec.SweepSpec`): its
        pairs are the generation pair once per pad (labelled :func:`pad_label`)."""
        from actadd.sweeps.spec import GenerationSpec, SweepSpec

        g = self.generation
        pp = self.pair_named(g.pair)
        topic = pp.target_words if g.topic_words is None else g.topic_words
        try:
            return SweepSpec(
                name="pad_word_count",
                pairs=tuple(
                    Pair(pp.pair.positive, pp.pair.negative, pad_label(pad), pad)
                    for pad in self.generation_pads
                ),
                layers=tuple(g.layers),
                coeffs=(float(pp.coeff if g.coeff is None else g.coeff),),
                prompts=tuple(g.prompts or ()) or ("I went up to my friend and said",),
                target_words=pp.target_words,
                generation=GenerationSpec(
                    **g.sampling(),
                    topic_words=topic if isinstance(topic, str) else tuple(topic),
                    sentiment=False,
                ),
                next_token=False,
                batch_rows=512,
            )
        except TypeError as exc:
            raise ConfigError(f"[generation]: {exc}") from None
