"""What a token-injection run is told: its pairs (:class:`PairSetting`, a
:class:`~actadd.config.Pair` with a name, a coefficient and target words) and its
:class:`Settings` (prompts, layers, the conditions to compare, the controls and nulls), with
the vocabulary they are checked against (:data:`INJECTIONS`, :data:`NULL_KINDS`, ...).

Both are :class:`~actadd.studies.written.Written` configs: read from their TOML tables with
``from_dict`` and saved as written. A pair's table is flat: the pair's own keys
(:data:`actadd.config.PAIR_KEYS`) plus ``name``, ``coeff``, ``target`` (a preset name or a
word list), ``equalize`` and ``sum_with``. ``[settings] prompts`` may name a packaged prompt
file, ``"data:<name>"`` (its ``prompts``) or ``"data:<name>:N"`` (its first ``N``); the
config is saved with that name.

Pure data: imports no model code (a pair's :meth:`PairSetting.vector` and
:meth:`Settings.check_model` import it when called).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from actadd.config import PAIR_KEYS, Pair, number_list, text_list, words
from actadd.errors import ConfigError, SteeringError
from actadd.studies.written import Written, plain

__all__ = [
    "DATA_PREFIX",
    "CONTEXTUAL",
    "DEFAULT_DOSE",
    "DEFAULT_GENERATION_ARMS",
    "GENERATION_ARMS",
    "INJECTIONS",
    "INJECTION_MODES",
    "LAYER_INJECTIONS",
    "NEUTRAL_TEXT",
    "NULL_KINDS",
    "SETTING_KEYS",
    "TRANSPLANT_NORMS",
    "PairSetting",
    "Settings",
    "check_null_draws",
    "packaged_prompts",
    "pairs_from_config",
]

INJECTION_MODES: tuple[str, ...] = ("prepend", "append", "replace", "insert")
INJECTIONS: tuple[str, ...] = (
    "prepend",
    "append",
    "replace",
    "insert",
    "prepend_contrast",
    "replace_contrast",
    "patch",
    "visible_replace",
    "visible_insert",
    "ctxdiff",
    "ctxdiff_normed",
)
# injections that depend on the reference layer (computed per layer, not once per pair)
LAYER_INJECTIONS: tuple[str, ...] = (
    "patch",
    "visible_replace",
    "visible_insert",
    "ctxdiff",
    "ctxdiff_normed",
)
# the same-position conditions that add the contextual difference
# (actadd.studies.token_injection.contextual)
CONTEXTUAL: tuple[str, ...] = ("ctxdiff", "ctxdiff_normed")
# the arms of the generation-level comparison (actadd.studies.token_injection.topic_rate):
# every arm a run may sample, and those it samples by default
GENERATION_ARMS: tuple[str, ...] = ("unsteered", "actadd", "inject_replace", *CONTEXTUAL)
DEFAULT_GENERATION_ARMS: tuple[str, ...] = GENERATION_ARMS[:3]
TRANSPLANT_NORMS: tuple[str, ...] = ("row", "typical")
NULL_KINDS: tuple[str, ...] = ("residual", "embedding")
NEUTRAL_TEXT = "The village sits at the edge of a wide river, where fishermen"
# multiples of a pair's reference coefficient: negative, fractional and large
DEFAULT_DOSE: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
SETTING_KEYS: tuple[str, ...] = (*PAIR_KEYS, "name", "coeff", "target", "equalize", "sum_with")
DATA_PREFIX = "data:"

# ---------------------------------------------------------------------- the pair


@dataclass(frozen=True)
class PairSetting(Written):
    """A pair as this analysis studies it: the :class:`~actadd.config.Pair`, a ``name`` (the
    ``pair`` column of the tables), its reference coefficient, and the words that mark its
    concept.

    ``target_words`` is a tuple of words or the name of a preset in
    :data:`actadd.config.TOPIC_PRESETS` (``"weddings"``, ``"anger"``, ``"love"``).
    ``equalize`` is the pair-length rule of ``SteeringVector.from_pair`` (the paper: pad on
    the right with the pair's ``pad_token``). ``sum_with`` names another pair of the same run
    to add at the same positions (``sum`` condition, at the dose layers).

    Its TOML table is flat (:data:`SETTING_KEYS`; the words are ``target``) and is saved as
    written, ``target`` as the preset name or words it gave.
    """

    WHERE = "pair"
    REQUIRED = ("name", "positive", "coeff", "target")
    LEFT_OUT_AT_DEFAULT = ("equalize", "sum_with")

    name: str
    pair: Pair
    coeff: float
    target_words: tuple[str, ...] | str
    equalize: str = "right"
    sum_with: str | None = None

    @classmethod
    def keys(cls) -> list[str]:
        return list(SETTING_KEYS)

    @classmethod
    def _convert(cls, raw: dict[str, Any]) -> dict[str, Any]:
        pair = Pair.parse({k: raw.pop(k) for k in PAIR_KEYS if k in raw}, "pair")
        target = raw.pop("target")
        return {**raw, "pair": pair, "target_words": target}

    def __post_init__(self) -> None:
        from actadd.runtime.tokens import EQUALIZE_RULES  # until the rule names move down

        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"A pair needs a non-empty name, got {self.name!r}.")
        if not isinstance(self.pair, Pair):
            raise ConfigError(f"Pair {self.name!r}: pair must be an actadd.config.Pair.")
        (coeff,) = number_list([self.coeff], f"Pair {self.name!r}: coeff")
        object.__setattr__(self, "coeff", coeff)
        object.__setattr__(self, "_target", self.target_words)  # as written
        object.__setattr__(self, "target_words", words(self.target_words, f"Pair {self.name!r}"))
        if self.equalize not in EQUALIZE_RULES:
            raise ConfigError(
                f"Pair {self.name!r}: unknown equalize {self.equalize!r}; allowed: "
                f"{EQUALIZE_RULES}."
            )

    def to_dict(self) -> dict[str, Any]:
        """The flat table (as written when read from one)."""
        p = self.pair
        flat = dict(name=self.name, positive=p.positive, negative=p.negative, label=p.label)
        flat |= dict(pad_token=p.pad_token, coeff=self.coeff, target=plain(self._target))
        flat |= dict(equalize=self.equalize, sum_with=self.sum_with)
        written = getattr(self, "_written", None)
        if written is not None:
            return {k: v for k, v in flat.items() if k in written}
        defaults = dict(label=None, pad_token=" ", equalize="right", sum_with=None)
        return {k: v for k, v in flat.items() if k not in defaults or v != defaults[k]}

    @property
    def positive(self) -> str:
        return self.pair.positive

    @property
    def negative(self) -> str:
        return self.pair.negative

    @property
    def pad_token(self) -> str | int:
        return self.pair.pad_token

    def vector(self, model, layer: int, coeff: float | None = None):
        """ActAdd's vector of this pair at ``layer`` (``coeff`` defaults to the pair's): a
        :class:`~actadd.core.vectors.SteeringVector`."""
        from actadd.core.vectors import SteeringVector

        c = self.coeff if coeff is None else coeff
        return SteeringVector.from_pair(
            model,
            self.positive,
            self.negative,
            layer,
            c,
            equalize=self.equalize,
            pad_token=self.pad_token,
        )


def packaged_prompts(raw: str) -> list[str]:
    """``"data:<name>"``: the ``prompts`` of the file ``actadd/data/<name>.json``;
    ``"data:<name>:N"``: its first ``N``."""
    name, _, count = raw[len(DATA_PREFIX) :].partition(":")
    path = resources.files("actadd.data") / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"prompts = {raw!r}: no file actadd/data/{name}.json.")
    prompts = json.loads(path.read_text(encoding="utf-8"))["prompts"]
    if not count:
        return prompts
    if not count.isdigit() or not 1 <= int(count) <= len(prompts):
        raise ConfigError(
            f"prompts = {raw!r}: after the name, ':N' takes the first N prompts, "
            f"1 <= N <= {len(prompts)}."
        )
    return prompts[: int(count)]


# ---------------------------------------------------------------------- settings


def _tuple(value: Any, what: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{what} must be a list, got {value!r}.")
    return tuple(value)


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    items = _tuple(value, what)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
        raise ConfigError(f"{what} must be non-negative ints, got {list(items)!r}.")
    return items


@dataclass(frozen=True)
class Settings(Written):
    """What :func:`~actadd.studies.token_injection.comparison.compare_conditions` runs.
    Validated on construction; the ``[settings]`` table of a token-injection config.

    Attributes:
        prompts: user prompts (each must be at least as long as the vectors, leading token
            included, for front alignment; and longer than p+ for ``"replace"``).
        layers: reference layers: ActAdd, injections, embedding, controls and the
            ``transplant_sources`` transplants are compared at each.
        neutral: neutral texts, evaluated alongside (``prompt_kind="neutral"``), left out of
            the mean rows.
        injections: any of :data:`INJECTIONS`: token placements (``prepend``, ``append``,
            ``replace``, ``insert``, the ``*_contrast``), the contextual patch (``patch``),
            the tokens visible only from ``L`` on (``visible_*``), and the contextual
            difference (``ctxdiff``; ``ctxdiff_normed`` at ActAdd's row norms; see
            :mod:`actadd.studies.token_injection.contextual`).
        embedding: run the layer-0 embedding-difference condition.
        transplant_sources: source layers ``S < L`` transplanted to every reference layer.
        sweep_targets / sweep_sources: layers that get a transplant sweep over
            ``sweep_sources`` (empty: every ``S`` in ``0..target``).
        dose_layers / dose_scales: layers where ActAdd runs at ``scale × c`` for each
            multiple in ``dose_scales`` (``c``: the pair's coefficient), and where ``sum``
            conditions run.
        random_control: run the equal-norm random vector; its generator is seeded from
            ``(seed, pair index, layer)``.
        slice_frac: fraction of dimensions kept by the ``slice`` control (``None`` or
            ``False``: off).
        topk: ``k`` of ``topk_overlap``.
        on_short: passed to :func:`actadd.steering` (``"error"`` or ``"clip"``).
        transplant_norm: ``"row"`` — each transplanted row is rescaled to the norm of the same
            row of ActAdd's vector at ``L`` (:func:`match_row_norms`); ``"typical"`` — one
            global ratio of typical residual norms (the paper's rescaling; version 1).
        control_words: a control word set; ``target_vs_control`` is the target's log-prob
            change minus theirs (empty: not measured).
        null_draws_per_prompt: per (pair, layer), each text gets this many draws of its own
            (:func:`per_prompt_draws`) of each null vector norm-matched per row to ActAdd —
            ``residual`` (:func:`residual_random_like`) and ``embedding``
            (:func:`embedding_random_like`): ``k × n_prompts`` draws per cell for the cost
            of ``k`` conditions; 0 turns them off.
        null_draws: the older design — this many draws, each evaluated on every text (one
            condition per draw). Exclusive with ``null_draws_per_prompt``; 0: off.
        null_kinds: which nulls the draws make: ``residual``, ``embedding`` (each costs its
            own conditions).
    """

    prompts: Sequence[str]
    layers: Sequence[int]
    neutral: Sequence[str] = (NEUTRAL_TEXT,)
    injections: Sequence[str] = INJECTIONS
    embedding: bool = True
    transplant_sources: Sequence[int] = (0, 2)
    sweep_targets: Sequence[int] = ()
    sweep_sources: Sequence[int] = ()
    dose_layers: Sequence[int] = ()
    dose_scales: Sequence[float] = DEFAULT_DOSE
    random_control: bool = True
    slice_frac: float | None = 0.7
    seed: int = 0
    topk: int = 20
    on_short: str = "error"
    transplant_norm: str = "row"
    control_words: Sequence[str] = ()
    null_draws: int = 0
    null_draws_per_prompt: int = 0
    null_kinds: Sequence[str] = NULL_KINDS

    WHERE = "[settings]"

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        if isinstance(self.prompts, str) and self.prompts.startswith(DATA_PREFIX):
            set_("_prompt_set", self.prompts)  # saved by its name
            set_("prompts", packaged_prompts(self.prompts))
        prompts = _tuple(self.prompts, "prompts")
        if not prompts:
            raise ConfigError("The prompt set is empty: give at least one user prompt.")
        set_("prompts", tuple(text_list(prompts, "prompts")))
        neutral = _tuple(self.neutral, "neutral")
        set_("neutral", tuple(text_list(neutral, "neutral texts")) if neutral else ())
        layers = _int_tuple(self.layers, "layers")
        if not layers:
            raise ConfigError("layers is empty: give at least one reference layer.")
        set_("layers", tuple(sorted(set(layers))))
        for name in ("transplant_sources", "sweep_targets", "sweep_sources", "dose_layers"):
            set_(name, tuple(sorted(set(_int_tuple(getattr(self, name), name)))))
        inj = _tuple(self.injections, "injections")
        unknown = [i for i in inj if i not in INJECTIONS]
        if unknown:
            raise ConfigError(f"Unknown injections {unknown}; allowed: {INJECTIONS}.")
        set_("injections", inj)
        coeffs = _tuple(self.dose_scales, "dose_scales")
        if not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c != 0
            for c in coeffs
        ):
            raise ConfigError(f"dose_scales must be finite non-zero numbers, got {coeffs!r}.")
        set_("dose_scales", tuple(sorted(float(c) for c in coeffs)))
        if self.slice_frac is False:  # TOML has no None
            set_("slice_frac", None)
        if self.slice_frac is not None and not (
            isinstance(self.slice_frac, (int, float)) and 0 < self.slice_frac <= 1
        ):
            raise ConfigError(f"slice_frac must be in (0, 1] or None, got {self.slice_frac!r}.")
        if isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 1:
            raise ConfigError(f"topk must be a positive int, got {self.topk!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {self.seed!r}.")
        if self.transplant_norm not in TRANSPLANT_NORMS:
            raise ConfigError(
                f"transplant_norm must be one of {TRANSPLANT_NORMS}, got {self.transplant_norm!r}."
            )
        ctrl = _tuple(self.control_words, "control_words")
        set_("control_words", words(list(ctrl), "control_words") if ctrl else ())
        check_null_draws(self.null_draws, self.null_draws_per_prompt, "settings")
        kinds = _tuple(self.null_kinds, "null_kinds")
        if not kinds or any(k not in NULL_KINDS for k in kinds):
            raise ConfigError(
                f"null_kinds must be a non-empty subset of {NULL_KINDS}, got {kinds}."
            )
        set_("null_kinds", tuple(k for k in NULL_KINDS if k in kinds))
        if self.on_short not in ("error", "clip"):
            raise ConfigError(f"on_short must be 'error' or 'clip', got {self.on_short!r}.")

    def to_dict(self) -> dict[str, Any]:
        """The table as written: a packaged prompt set by its name, ``slice_frac`` off as
        ``false`` (TOML has no None)."""
        out = super().to_dict()
        if "prompts" in out and hasattr(self, "_prompt_set"):
            out["prompts"] = self._prompt_set
        if "slice_frac" in out and out["slice_frac"] is None:
            out["slice_frac"] = False
        return out

    def reference_layers(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.layers) | set(self.sweep_targets) | set(self.dose_layers)))

    def check_model(self, model) -> None:
        """Raise :class:`SteeringError` if a layer is out of range for ``model``."""
        from actadd.runtime.hooks import check_layer

        n = model.cfg.n_layers
        for name in ("layers", "transplant_sources", "sweep_targets", "sweep_sources"):
            for layer in getattr(self, name):
                if layer > n:
                    raise SteeringError(
                        f"{name} has layer {layer}, but {model.cfg.model_name} has {n} layers: "
                        f"allowed 0..{n}."
                    )
        for layer in self.dose_layers:
            check_layer(model, layer)


def check_null_draws(shared: Any, per_prompt: Any, where: str) -> None:
    """``null_draws`` and ``null_draws_per_prompt`` are ints >= 0, not both non-zero."""
    for name, v in (("null_draws", shared), ("null_draws_per_prompt", per_prompt)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{where}: {name} must be an int >= 0, got {v!r}.")
    if shared and per_prompt:
        raise ConfigError(
            f"{where}: give null_draws_per_prompt (each prompt its own draws) or null_draws "
            f"(every draw on every prompt), not both; got {per_prompt} and {shared}."
        )


def pairs_from_config(items: Sequence[dict[str, Any]]) -> list[PairSetting]:
    """:class:`PairSetting` objects from config tables (``[[pairs]]``): the pair's own keys
    (:data:`actadd.config.PAIR_KEYS`) plus ``name``, ``coeff``, ``target`` (a preset name or
    a word list), ``equalize`` and ``sum_with``."""
    if isinstance(items, dict) or not isinstance(items, Sequence) or not items:
        raise ConfigError("'pairs' must be a non-empty list of tables ([[pairs]] in TOML).")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, PairSetting):
            out.append(item)
            continue
        where = f"pairs[{i}] ({item.get('name', '?')!r})" if isinstance(item, dict) else "pairs"
        out.append(PairSetting.from_dict(item, where))
    return out
