"""The paper studies' own config: :class:`DemoConfig` for the ``demo`` kind (the paper's
sweeps, ``word_count`` / ``sentiment`` / ``failures`` / ``alignment``, are sweep specs:
:mod:`actadd.sweeps.spec`). Pure data: imports no model code (the ``align`` and sample-count
checks import their vocabulary when a config is built, not when this module is imported).

Config::

    kind = "demo"
    pair = ["Love", "Hate"]      # or {positive, negative, label, pad_token}
    layer = 2
    coeff = 5.0
    align = "front"
    prompts = ["I hate you because"]
    n_samples = 3
    max_new_tokens = 40
    seed = 0

``config.json`` holds every key with its default filled in (``name`` and ``model`` only
when given).
"""

from __future__ import annotations

from dataclasses import dataclass

from actadd.config import Config, Pair, coefficients, integer, text_list
from actadd.errors import ActAddError, ConfigError, Validated

__all__ = ["DemoConfig"]


@dataclass(frozen=True)
class DemoConfig(Config):
    """Steered against unsteered completions of ``prompts`` for one ``pair`` at ``layer``
    and ``coeff`` (``align``): ``n_samples`` completions per prompt of ``max_new_tokens``
    tokens, the two arms on the same seeds (from ``seed``)."""

    WHERE = "demo config"
    REQUIRED = ("pair", "layer", "coeff", "prompts")
    LEFT_OUT_AT_DEFAULT = ("name", "model")

    # Validated: checked (and named in one line) by __post_init__, whatever the type
    pair: Validated[Pair]
    layer: Validated[int]
    coeff: Validated[float]
    prompts: Validated[tuple[str, ...]]
    name: str | None = None
    model: str | None = None
    align: Validated[str] = "front"
    n_samples: Validated[int] = 3
    max_new_tokens: Validated[int] = 40
    seed: Validated[int] = 0

    def __post_init__(self) -> None:
        from actadd.sweeps.spec import MAX_SAMPLES

        set_ = lambda k, v: object.__setattr__(self, k, v)
        set_("pair", Pair.parse(self.pair, "pair"))
        set_("layer", integer(self.layer, "layer", low=0))
        (coeff,) = coefficients([self.coeff], "coeff")
        set_("coeff", coeff)
        set_("prompts", tuple(text_list(self.prompts, "prompts")))
        why = "completions per prompt"
        integer(self.n_samples, "n_samples", low=1, high=MAX_SAMPLES, why=why)
        integer(self.max_new_tokens, "max_new_tokens", low=1)
        integer(self.seed, "seed", low=0)
        from actadd.core.steering import Align

        try:
            Align.parse(self.align)
        except ActAddError as exc:
            raise ConfigError(f"align {self.align!r}: {exc}") from None
