"""The ``token_injection`` kind's config: :class:`TokenInjectionConfig` and its
``[concepts]``, ``[diagnostics]``, ``[specificity]`` and ``[generation]`` tables. Pure data:
imports no model code (concept pairs are built by
:func:`actadd.studies.token_injection.specificity.concept_pairs`, imported when a config with
``[concepts]`` is built).

Config (``experiments/token_injection*.toml``)::

    kind = "token_injection"
    only_pairs = ["weddings"]      # run a subset (e.g. for --quick)
    [[pairs]]                      # PairSetting: name, positive, negative, coeff, target, ...
    [concepts]                     # words, coeff, pad_token: one pair " w" − "" per word
    [settings]                     # Settings: prompts, layers, injections, controls, nulls
    [diagnostics]                  # layers (default: the reference layers), top_k
    [specificity]                  # layers, null_words, null_draws(_per_prompt), null_coeff, chunk
    [generation]                   # pairs, layer, prompts (a count), samples, max_new_tokens, seed,
                                   # topics: the word list each pair's completions are counted with,
                                   # arms: actadd, inject_replace, ctxdiff, ctxdiff_normed
    [[confirmatory]]               # cells fixed before the run: pair, layer, family, alternative
                                   # (actadd.studies.token_injection.confirmatory)

The config is saved as written (:class:`~actadd.studies.written.Written`): ``config.json`` holds
the keys the tables gave, with their validated values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from actadd.config import TOPIC_PRESETS, integer, number_list, words
from actadd.errors import ConfigError, Validated
from actadd.studies.token_injection.confirmatory import check_cells
from actadd.studies.token_injection.settings import (
    DEFAULT_GENERATION_ARMS,
    GENERATION_ARMS,
    PairSetting,
    Settings,
    check_null_draws,
    pairs_from_config,
)
from actadd.studies.written import Written

__all__ = [
    "ConceptsTable",
    "DiagnosticsTable",
    "GenerationTable",
    "SpecificityTable",
    "TokenInjectionConfig",
]


def _count(table: Written, key: str, low: int = 0) -> int:
    """An int field of ``table`` as the old parser named it (``[where] key``)."""
    where = f"{table.WHERE} {key}"
    (v,) = number_list([getattr(table, key)], where, integer=True)
    if v < low:
        raise ConfigError(f"{where} must be >= {low}, got {v}.")
    return int(v)


def _table(cls: type[Written], raw: Any) -> Any:
    return raw if isinstance(raw, cls) else cls.from_dict(raw)


@dataclass(frozen=True)
class ConceptsTable(Written):
    """``[concepts]``: one-token concept pairs ``" w" − ""`` for each of ``words`` (target
    ``w``) at ``coeff``, the empty side padded with ``pad_token``."""

    WHERE = "[concepts]"
    REQUIRED = ("words", "coeff")

    words: Validated[tuple[str, ...]]
    coeff: Validated[float]
    pad_token: str | int = " "

    def __post_init__(self) -> None:
        (coeff,) = number_list([self.coeff], "[concepts] coeff")
        object.__setattr__(self, "coeff", coeff)


@dataclass(frozen=True)
class DiagnosticsTable(Written):
    """``[diagnostics]``: the vectors' norms, embedding cosines and logit lens at ``layers``
    (default: the settings' reference layers), ``top_k`` tokens each."""

    WHERE = "[diagnostics]"

    layers: Validated[tuple[int, ...] | None] = None
    top_k: Validated[int] = 10

    def __post_init__(self) -> None:
        if self.layers is not None:
            number_list(self.layers, "[diagnostics] layers", integer=True)
        (top_k,) = number_list([self.top_k], "[diagnostics] top_k", integer=True)
        if top_k < 1:
            raise ConfigError(f"[diagnostics] top_k must be >= 1, got {top_k}.")


@dataclass(frozen=True)
class SpecificityTable(Written):
    """``[specificity]``: the matrix ActAdd(wᵢ) × inject(wⱼ) at ``layers``, against nulls
    from ``null_words`` (and residual / embedding draws: ``null_draws`` shared, or
    ``null_draws_per_prompt``), at ``null_coeff`` (default: the concepts' coeff, else 1),
    ``chunk`` conditions per forward."""

    WHERE = "[specificity]"
    REQUIRED = ("layers", "null_words")

    layers: Validated[tuple[int, ...]]
    null_words: Validated[tuple[str, ...]]
    null_draws: Validated[int] = 0
    null_draws_per_prompt: Validated[int] = 0
    null_coeff: Validated[float | None] = None
    chunk: Validated[int] = 16

    def __post_init__(self) -> None:
        where = self.WHERE
        number_list(self.layers, f"{where} layers", integer=True)
        words = [w for w in self.null_words if isinstance(w, str) and w.strip()]
        if len(words) != len(self.null_words) or not words:
            raise ConfigError(f"{where} null_words must be a non-empty list of words.")
        if self.null_coeff is not None:
            number_list([self.null_coeff], where)
        check_null_draws(_count(self, "null_draws"), _count(self, "null_draws_per_prompt"), where)
        _count(self, "chunk", low=1)


@dataclass(frozen=True)
class GenerationTable(Written):
    """``[generation]``: sampled completions for the named ``pairs`` at ``layer``, on the
    first ``prompts`` prompts of ``[settings]`` (default: all), ``samples`` per prompt of
    ``max_new_tokens`` tokens, seeded from ``seed``.

    ``topics`` maps a pair's name to the words a completion is counted with (a preset of
    :data:`actadd.config.TOPIC_PRESETS` or a list): a topic, not one word form. A pair left
    out is counted with its ``target`` words, which must then be a list of at least two
    (a concept pair's target is its one word: "weddings" alone misses "wedding", "bride",
    "married").

    ``arms`` are the arms sampled besides ``unsteered`` (always): ``actadd``,
    ``inject_replace``, and the contextual difference ``ctxdiff`` / ``ctxdiff_normed``
    (:mod:`actadd.studies.token_injection.contextual`); default the first two."""

    WHERE = "[generation]"
    REQUIRED = ("pairs", "layer")

    pairs: tuple[str, ...]
    layer: Validated[int]
    prompts: Validated[int | None] = None
    samples: Validated[int] = 4
    max_new_tokens: Validated[int] = 30
    seed: Validated[int] = 0
    topics: Validated[dict[str, Any] | None] = None
    arms: Validated[tuple[str, ...]] = DEFAULT_GENERATION_ARMS

    def topic_words(self, name: str) -> tuple[str, ...] | None:
        """The words ``topics`` gives pair ``name`` (None where it gives none)."""
        if not self.topics or name not in self.topics:
            return None
        return words(self.topics[name], f"[generation] topics.{name}")

    def __post_init__(self) -> None:
        if self.topics is not None:
            if not isinstance(self.topics, dict):
                raise ConfigError(
                    "[generation] topics must be a table {pair name = preset or word list}, "
                    f"got {self.topics!r}."
                )
            for name in self.topics:
                self.topic_words(name)
        arms = self.arms
        if isinstance(arms, str) or not all(isinstance(a, str) for a in arms):
            raise ConfigError(f"[generation] arms must be a list of arm names, got {arms!r}.")
        unknown = sorted(set(arms) - set(GENERATION_ARMS))
        if unknown:
            raise ConfigError(
                f"[generation] arms has unknown arms {unknown}; allowed: {list(GENERATION_ARMS)}."
            )
        object.__setattr__(
            self, "arms", tuple(a for a in GENERATION_ARMS if a in {"unsteered", *arms})
        )
        _count(self, "layer")
        if self.prompts is not None:
            _count(self, "prompts", low=1)
        _count(self, "samples", low=1)
        _count(self, "max_new_tokens", low=1)
        _count(self, "seed")


@dataclass(frozen=True)
class TokenInjectionConfig(Written):
    """Is a steering vector "just injecting extra tokens"? The conditions of
    :class:`~actadd.studies.token_injection.settings.Settings` for every pair (``pairs`` and
    the ``concepts``; ``only_pairs`` keeps a subset), the vectors' diagnostics, and
    optionally the specificity matrix and sampled completions; ``confirmatory`` names the
    cells fixed before the run (:mod:`actadd.studies.token_injection.confirmatory`).
    Cross-table checks (unique names, known pairs, null words that are no concept's target,
    confirmatory cells the run computes) run here; what needs the model in
    :meth:`check_model`."""

    WHERE = "token_injection config"
    REQUIRED = ("settings",)

    settings: Validated[Settings]
    name: str | None = None
    description: str | None = None
    model: str | None = None
    pairs: Validated[tuple[PairSetting, ...]] = ()
    only_pairs: Validated[tuple[str, ...]] = ()
    concepts: Validated[ConceptsTable | None] = None
    diagnostics: Validated[DiagnosticsTable] = DiagnosticsTable()
    specificity: Validated[SpecificityTable | None] = None
    generation: Validated[GenerationTable | None] = None
    confirmatory: Validated[tuple[dict[str, Any], ...]] = ()

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        if not self.pairs and self.concepts is None:
            raise ConfigError("token_injection config needs [[pairs]] or [concepts].")
        if self.pairs:
            set_("pairs", tuple(pairs_from_config(self.pairs)))
        if self.concepts is not None:
            set_("concepts", _table(ConceptsTable, self.concepts))
        names = [p.name for p in self.all_pairs]
        if len(set(names)) != len(names):
            raise ConfigError(f"Pair and concept names must be unique, got {names}.")
        missing = sorted(set(self.only_pairs or ()) - set(names))
        if missing:
            raise ConfigError(f"only_pairs names unknown pairs {missing}.")
        set_("settings", _table(Settings, self.settings))
        set_("diagnostics", _table(DiagnosticsTable, self.diagnostics))
        if self.specificity is not None:
            set_("specificity", _table(SpecificityTable, self.specificity))
            self._check_specificity()
        if self.generation is not None:
            set_("generation", _table(GenerationTable, self.generation))
            self._check_generation()
        set_("confirmatory", check_cells(self.confirmatory, [p.name for p in self.run_pairs],
                                         self.settings))  # fmt: skip

    def _check_specificity(self) -> None:
        t, where = self.specificity, "[specificity]"
        if not self.settings.control_words:
            raise ConfigError(f"{where} needs [settings] control_words (the control set).")
        targets = {w.strip().lower() for p in self.run_pairs for w in p.target_words}
        overlap = sorted({w.strip().lower() for w in t.null_words} & targets)
        if overlap:
            raise ConfigError(f"{where} null_words repeat concept target words: {overlap}.")
        if len(self.run_pairs) < 2:
            raise ConfigError(f"{where} needs at least 2 pairs or concepts.")

    def _check_generation(self) -> None:
        g, where = self.generation, "[generation]"
        unknown = sorted(set(g.pairs) - {p.name for p in self.run_pairs})
        if unknown:
            raise ConfigError(f"{where} pairs names unknown pairs {unknown}.")
        n = len(self.settings.prompts)
        if g.prompts is not None and g.prompts > n:
            raise ConfigError(f"{where} prompts = {g.prompts}, but [settings] has {n}.")
        unknown = sorted(set(g.topics or ()) - {p.name for p in self.all_pairs})
        if unknown:
            raise ConfigError(f"{where} topics names unknown pairs {unknown}.")

    def check_topics(self) -> None:
        """A new run counts every ``[generation]`` pair's completions with a topic list: a
        pair that ``topics`` leaves out and whose target is one word is one ConfigError line.
        (Part of the plan step, not of parsing: a run saved before ``topics`` existed still
        reads.)"""
        g, where = self.generation, "[generation]"
        if g is None:
            return
        for pair in self.run_pairs:
            if pair.name not in g.pairs or g.topic_words(pair.name) is not None:
                continue
            if len(pair.target_words) < 2:
                raise ConfigError(
                    f"{where} pair {pair.name!r} would be counted with the one word "
                    f"{list(pair.target_words)}; give its topic list in {where} topics (a preset: "
                    f"{', '.join(sorted(TOPIC_PRESETS))}; or at least two words), e.g. topics = "
                    f'{{ {pair.name} = ["{pair.target_words[0]}", ...] }}.'
                )

    # ------------------------------------------------------------------ what a run is told

    @cached_property
    def all_pairs(self) -> list[PairSetting]:
        """The ``[[pairs]]`` then the concept pairs."""
        pairs = list(self.pairs)
        if self.concepts is not None:
            from actadd.studies.token_injection.specificity import concept_pairs

            c = self.concepts
            pairs += concept_pairs(list(c.words), c.coeff, c.pad_token)
        return pairs

    @cached_property
    def run_pairs(self) -> list[PairSetting]:
        """The pairs the run computes: :attr:`all_pairs`, or those ``only_pairs`` names (a
        ``sum_with`` partner left out is dropped)."""
        only = self.only_pairs
        if not only:
            return self.all_pairs
        return [
            p if p.sum_with in (None, *only) else dataclasses.replace(p, sum_with=None)
            for p in self.all_pairs
            if p.name in only
        ]

    @property
    def diag_layers(self) -> list[int]:
        return list(self.diagnostics.layers or self.settings.reference_layers())

    @property
    def top_k(self) -> int:
        return integer(self.diagnostics.top_k, "[diagnostics] top_k", low=1)

    def specificity_args(self) -> dict[str, Any] | None:
        """The keyword arguments of the specificity matrix (None without ``[specificity]``)."""
        t = self.specificity
        if t is None:
            return None
        concepts = self.concepts
        coeff = t.null_coeff if t.null_coeff is not None else concepts.coeff if concepts else 1.0
        (coeff,) = number_list([coeff], "[specificity]")
        return dict(
            layers=list(t.layers),
            null_words=list(t.null_words),
            null_draws=int(t.null_draws),
            null_draws_per_prompt=int(t.null_draws_per_prompt),
            null_coeff=coeff,
            null_pad=concepts.pad_token if concepts else " ",
            chunk=int(t.chunk),
        )

    def generation_args(self) -> dict[str, Any] | None:
        """The arguments of :func:`~actadd.studies.token_injection.topic_rate.topic_rates`
        (None without ``[generation]``)."""
        g = self.generation
        if g is None:
            return None
        n = len(self.settings.prompts) if g.prompts is None else int(g.prompts)
        pairs = [p for p in self.run_pairs if p.name in g.pairs]
        return dict(
            pairs=pairs,
            topics={p.name: g.topic_words(p.name) or p.target_words for p in pairs},
            layer=int(g.layer),
            prompts=list(self.settings.prompts[:n]),
            n_samples=int(g.samples),
            max_new_tokens=int(g.max_new_tokens),
            seed=int(g.seed),
            arms=tuple(g.arms),
        )

    def check_replace_room(self, model) -> None:
        """Every prompt is longer than every pair's aligned p+ (the ``replace`` injection,
        always computed, overwrites the prompt's first tokens with it and needs one left),
        in ``model``'s tokens; one ConfigError line naming each short prompt and pair."""
        from actadd.runtime.tokens import encode
        from actadd.studies.token_injection.conditions import aligned_arms

        lengths = {t: len(encode(model, t)) - 1 for t in self.settings.prompts}
        short = []
        for p in self.run_pairs:
            k = len(aligned_arms(model, p.positive, p.negative, p.equalize, p.pad_token)[0])
            short += [
                f"{t!r} ({n}) for pair {p.name!r} ({k})" for t, n in lengths.items() if n <= k
            ]
        if short:
            raise ConfigError(
                f"token_injection: the 'replace' injection overwrites a prompt's first tokens "
                f"with the pair's aligned p+ and needs a prompt longer than it, in "
                f"{model.cfg.model_name}'s tokens (after the leading one); too short: "
                f"{'; '.join(short)}. Use longer [settings] prompts, or for a run on another "
                'model (--model) set them in [models."<model>".settings].'
            )

    def check_model(self, model) -> None:
        """The plan step: every ``[generation]`` pair counted with a topic list
        (:meth:`check_topics`, before anything needs the model), every layer in range for
        ``model``."""
        from actadd.config import check_layers

        self.check_topics()
        n = model.cfg.n_layers
        self.settings.check_model(model)
        self.check_replace_room(model)
        check_layers(self.diag_layers, n, "[diagnostics] layers")
        if self.specificity is not None:
            check_layers(list(self.specificity.layers), n, "[specificity] layers")
        if self.generation is not None:
            check_layers([int(self.generation.layer)], n, "[generation] layer")
