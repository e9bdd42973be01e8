"""How the next token is chosen: :class:`Sampling`, the one sampling spec.

Generation (:func:`actadd.core.generation.generate`), the sweeps' ``[generation]`` table
(:class:`actadd.sweeps.spec.GenerationSpec`, whose ``sampling`` is one of these) and the
playground (:class:`actadd.ui.settings.Settings`) all hand the sampling loop a ``Sampling``.
It holds the decoding rule only; the seed and the number of new tokens are arguments of the
call that generates (randomness is passed in, never held).

Pure data: this module imports no torch, so a config that holds sampling settings is checked
without loading a model library.

- ``Sampling(...)`` (the library API) refuses a temperature <= 0 (unless greedy) and a top-p
  outside ``(0, 1]`` with a :class:`~actadd.errors.SteeringError`;
- :meth:`Sampling.checked` and :meth:`Sampling.from_dict` (a config file) check every value's
  type and the config bounds (``temperature >= MIN_TEMPERATURE``, ``|freq_penalty| <=
  MAX_FREQ_PENALTY``), naming the key (``generation.top_p``) in a
  :class:`~actadd.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from actadd.config import Config, boolean, check_keys, number
from actadd.errors import SteeringError

__all__ = [
    "GREEDY",
    "MAX_FREQ_PENALTY",
    "MIN_TEMPERATURE",
    "PAPER_SAMPLING",
    "Sampling",
]

MAX_FREQ_PENALTY = 100.0  # |freq_penalty| in a config: 100 already bans a repeated token
MIN_TEMPERATURE = 1e-6  # below it logits / temperature overflows float32 (NaN probabilities)


@dataclass(frozen=True)
class Sampling(Config):
    """How the next token is chosen.

    The paper's settings are ``Sampling()``: temperature 1.0, top-p 0.3, frequency penalty
    1.0 (OpenAI-style: each generated occurrence of a token lowers its logit by 1.0).
    ``Sampling.greedy_decoding()`` takes the argmax with no penalty.
    """

    WHERE: ClassVar[str] = "sampling"

    temperature: float = 1.0
    top_p: float = 0.3
    freq_penalty: float = 1.0
    greedy: bool = False

    def __post_init__(self) -> None:
        if not self.greedy and not self.temperature > 0:
            raise SteeringError(f"temperature must be > 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise SteeringError(f"top_p must be in (0, 1], got {self.top_p}.")

    @classmethod
    def paper(cls) -> Sampling:
        return cls()

    @classmethod
    def greedy_decoding(cls) -> Sampling:
        return cls(freq_penalty=0.0, greedy=True)

    @classmethod
    def checked(
        cls,
        *,
        temperature: Any = 1.0,
        top_p: Any = 0.3,
        freq_penalty: Any = 1.0,
        greedy: Any = False,
        where: str = WHERE,
    ) -> Sampling:
        """A ``Sampling`` from config values: each checked (type, finiteness, the config
        bounds) in the order temperature, top_p, freq_penalty, greedy, and a problem named
        ``<where>.<key>`` in one :class:`~actadd.errors.ConfigError` line."""
        at = f"{where}."
        return cls(
            temperature=number(
                temperature,
                at + "temperature",
                low=MIN_TEMPERATURE,
                why="use a small positive value for near-greedy sampling",
            ),
            top_p=number(top_p, at + "top_p", low=0.0, high=1.0, low_open=True),
            freq_penalty=number(
                freq_penalty,
                at + "freq_penalty",
                low=-MAX_FREQ_PENALTY,
                high=MAX_FREQ_PENALTY,
                why=f"{MAX_FREQ_PENALTY:g} already bans a repeated token",
            ),
            greedy=boolean(greedy, at + "greedy"),
        )

    @classmethod
    def from_dict(cls, raw: Any, where: str | None = None) -> Sampling:
        """A sampling table (keys ``temperature, top_p, freq_penalty, greedy``, each
        optional) through :meth:`checked`."""
        where = where or cls.WHERE
        check_keys(raw, cls.keys(), where)
        return cls.checked(**raw, where=where)


PAPER_SAMPLING = Sampling()
GREEDY = Sampling.greedy_decoding()
