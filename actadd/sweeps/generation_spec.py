"""The ``[generation]`` table of a sweep config: sampled completions per prompt and cell
(:class:`GenerationSpec`), and the metrics read from them (topic words, sentiment).

Pure data (no torch). Its sampling keys go through the one sampling spec,
:class:`actadd.core.sampling.Sampling`: checked by :meth:`Sampling.checked
<actadd.core.sampling.Sampling.checked>` and handed to the sampling loop as
``spec.generation.sampling``. The table keeps its flat keys (``temperature``, ``top_p``,
``freq_penalty`` beside ``n_samples``, ``max_new_tokens``, ``seed``), and so does
``config.json``, so run directories written before stay resumable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from actadd.config import Config, boolean, integer, words
from actadd.core.sampling import Sampling
from actadd.errors import ConfigError, Validated

__all__ = ["GenerationSpec", "MAX_SAMPLES"]

# generation.n_samples: completions per prompt and cell; far past what a study needs (a
# value past it is a typo that would otherwise run for hours)
MAX_SAMPLES = 1000


@dataclass(frozen=True)
class GenerationSpec(Config):
    """The ``[generation]`` table: sampled completions per prompt and cell, and the metrics
    read from them. Its sampling keys (``temperature, top_p, freq_penalty``) are checked by
    :meth:`Sampling.checked <actadd.core.sampling.Sampling.checked>` and handed to the
    sampling loop as one :attr:`sampling`; the table (and ``config.json``) stays flat."""

    WHERE: ClassVar[str] = "[generation]"

    # Validated: checked (and named in one line) by __post_init__, whatever the type
    n_samples: Validated[int] = 8
    max_new_tokens: Validated[int] = 40
    seed: Validated[int] = 0
    temperature: Validated[float] = 1.0
    top_p: Validated[float] = 0.3
    freq_penalty: Validated[float] = 1.0
    # a preset name or a list of words; None: derived from the sweep's pairs, or refused
    # (actadd.sweeps.words)
    topic_words: tuple[str, ...] | str | None = None
    sentiment: Validated[bool] = True

    def __post_init__(self) -> None:
        """Every value checked (and normalised: ints, floats) before any compute."""
        g = "generation."
        checked: dict[str, Any] = dict(
            n_samples=integer(
                self.n_samples,
                g + "n_samples",
                low=1,
                high=MAX_SAMPLES,
                why="completions per prompt and cell",
            ),
            max_new_tokens=integer(self.max_new_tokens, g + "max_new_tokens", low=1),
            seed=integer(self.seed, g + "seed", low=0),
        )
        sampling = Sampling.checked(
            temperature=self.temperature,
            top_p=self.top_p,
            freq_penalty=self.freq_penalty,
            where="generation",
        )
        checked.update(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            freq_penalty=sampling.freq_penalty,
            sentiment=boolean(self.sentiment, g + "sentiment"),
        )
        for key, value in checked.items():
            object.__setattr__(self, key, value)
        if self.topic_words is not None:
            words(self.topic_words, g + "topic_words")

    @property
    def sampling(self) -> Sampling:
        """How the completions' tokens are drawn (the seed and length are this table's)."""
        return Sampling(self.temperature, self.top_p, self.freq_penalty)

    @property
    def words(self) -> tuple[str, ...]:
        if self.topic_words is None:
            raise ConfigError(
                "generation.topic_words is not set: a preset name or a list of words."
            )
        return words(self.topic_words, "generation.topic_words")
