"""The ``perplexity`` kind's config (:class:`PerplexityConfig`, with :class:`CorpusRecipe` for
model-written texts) and the packaged sentence sets it reads (:func:`text_set_source`).
Pure data: imports no model code.

Config::

    kind = "perplexity"
    pair = [" weddings", ""]          # or {positive, negative, label, pad_token}
    layers = [1, 2, 6, 16]
    coeffs = [1.0, 2.0]
    topic_words = "weddings"          # preset or list: topic density of each text
    texts = "austen_sentences"        # a packaged sentence set; or a [corpus] table
    limit = 0                         # texts per group (0: all)
    prompting = true                  # also prepend `positive` as text
    align = "front"
    batch_size = 8

``config.json`` holds every key with its default filled in (``name``, ``model``, ``texts``,
``corpus`` and ``limit`` only when they apply), and, with ``texts``, ``source``: where the
sentence set came from, its license, recipe and sha256 (:func:`text_set_source`). Reading a
saved config back checks that ``source`` is still the packaged file's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from actadd.config import Config, Pair, check_layers, integer, number, number_list, words
from actadd.errors import ConfigError, Validated

__all__ = [
    "DEFAULT_TEMPLATE",
    "NAME",
    "TEXT_SETS",
    "CorpusRecipe",
    "PerplexityConfig",
    "text_set",
    "text_set_source",
]

NAME = "perplexity"
TEXT_SETS: tuple[str, ...] = ("austen_sentences",)
DEFAULT_TEMPLATE = (
    "<|im_start|>user\nWrite a short essay about {topic}.<|im_end|>\n<|im_start|>assistant\n"
)


def text_set(name: str) -> dict[str, Any]:
    """The packaged sentence set ``actadd/data/<name>.json`` as a dict."""
    return json.loads(resources.files("actadd.data").joinpath(f"{name}.json").read_text())


def text_set_source(name: str) -> dict[str, Any]:
    """What ``config.json`` records about a packaged text set: where it came from, its
    license, the recipe, and the sha256 of the file."""
    raw = resources.files("actadd.data").joinpath(f"{name}.json").read_bytes()
    doc = text_set(name)
    return {
        "file": f"actadd/data/{name}.json",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "license": doc["license"],
        "source": doc["source"],
        "recipe": {k: v for k, v in doc["recipe"].items() if k != "available"},
    }


@dataclass(frozen=True)
class CorpusRecipe(Config):
    """How the model writes the texts (``[corpus]``): ``n_per_topic`` essays per topic of
    each group of ``topics`` (group name → topics), from ``template`` (with a ``{topic}``
    slot), sampled with ``seed``, ``temperature``, ``top_p`` and ``freq_penalty``; texts
    shorter than ``min_words`` words are not scored."""

    WHERE = "[corpus]"
    REQUIRED = ("topics",)

    # Validated: checked (and named in one line) by __post_init__, whatever the type
    topics: Validated[dict[str, list[str]]]
    seed: Validated[int] = 0
    n_per_topic: Validated[int] = 3
    max_new_tokens: Validated[int] = 100
    min_words: Validated[int] = 30
    temperature: Validated[float] = 0.7
    top_p: Validated[float] = 0.9
    freq_penalty: Validated[float] = 0.5
    template: Validated[str] = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        topics = self.topics
        if not isinstance(topics, dict) or not topics:
            raise ConfigError("[corpus.topics] must map group names to lists of topics.")
        for group, names in topics.items():
            if (
                not isinstance(names, (list, tuple))
                or not names
                or not all(isinstance(t, str) for t in names)
            ):
                raise ConfigError(f"[corpus.topics] {group!r} must be a non-empty list of strings.")
        if not isinstance(self.template, str) or "{topic}" not in self.template:
            raise ConfigError("[corpus] template must contain '{topic}'.")
        for key in ("n_per_topic", "max_new_tokens"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"[corpus] {key} must be an int >= 1.")
        integer(self.seed, "[corpus] seed", low=0)
        integer(self.min_words, "[corpus] min_words", low=0)
        for key in ("temperature", "top_p", "freq_penalty"):
            number(getattr(self, key), f"[corpus] {key}")


@dataclass(frozen=True)
class PerplexityConfig(Config):
    """A topic vector's effect on the perplexity of texts, by how much they are about the
    topic: ``pair``'s vector at each of ``layers`` × ``coeffs`` (``align``), on one text
    source: a packaged sentence set (``texts``, the first ``limit`` per group; 0: all) or
    model-written essays (``corpus``); ``prompting`` adds the arm that prepends the
    positive text. ``topic_words`` measure each text's topic density."""

    WHERE = f"{NAME} config"
    REQUIRED = ("pair", "layers", "coeffs")
    LEFT_OUT_AT_DEFAULT = ("name", "model", "texts", "corpus", "limit", "source")

    # Validated: checked (and named in one line) by __post_init__, whatever the type
    pair: Validated[Pair]
    layers: Validated[tuple[int, ...]]
    coeffs: Validated[tuple[float, ...]]
    name: str | None = None
    model: str | None = None
    align: str = "front"
    topic_words: Validated[str | tuple[str, ...]] = "weddings"
    batch_size: Validated[int] = 8
    texts: Validated[str | None] = None
    corpus: Validated[CorpusRecipe | None] = None  # a [corpus] table is read into one
    prompting: Validated[bool] = False
    limit: Validated[int | None] = None
    #: the packaged set's provenance (:func:`text_set_source`), filled in from ``texts``
    source: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        set_("pair", Pair.parse(self.pair, "pair"))
        set_("layers", tuple(number_list(self.layers, "layers", integer=True)))
        set_("coeffs", tuple(number_list(self.coeffs, "coeffs")))
        words(self.topic_words, "topic_words")
        if not isinstance(self.prompting, bool):
            raise ConfigError(f"prompting must be true or false, got {self.prompting!r}.")
        integer(self.batch_size, "batch_size", low=1)
        if (self.texts is None) == (self.corpus is None):
            raise ConfigError(
                "perplexity config needs exactly one text source: texts = one of "
                f"{list(TEXT_SETS)} (human-written sentences), or a [corpus] table "
                "(model-written essays)."
            )
        if self.limit is not None or self.texts is not None:
            limit = 0 if self.limit is None else self.limit
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ConfigError(
                    f"limit must be an int >= 0 (texts per group; 0 = all), got {limit!r}."
                )
        if self.texts is None:
            if not isinstance(self.corpus, (dict, CorpusRecipe)):
                raise ConfigError("[corpus] must be a table (how the model writes the texts).")
            if isinstance(self.corpus, dict):
                set_("corpus", CorpusRecipe.from_dict(self.corpus))
            if self.source is not None:
                raise ConfigError("source records a packaged text set; give texts with it.")
            return
        if self.texts not in TEXT_SETS:
            raise ConfigError(f"texts {self.texts!r} unknown; allowed: {list(TEXT_SETS)}.")
        set_("limit", 0 if self.limit is None else self.limit)
        source = text_set_source(self.texts)
        if self.source is not None and self.source != source:
            raise ConfigError(
                f"source: the run recorded another {self.texts} file (sha256 "
                f"{self.source.get('sha256')!r}) than the packaged one ({source['sha256']!r})."
            )
        set_("source", source)

    @property
    def words(self) -> tuple[str, ...]:
        """The topic words (``topic_words``, a preset resolved)."""
        return words(self.topic_words, "topic_words")

    def check_model(self, model) -> None:
        """The plan step: every layer in range for ``model``."""
        check_layers(list(self.layers), model.cfg.n_layers)
