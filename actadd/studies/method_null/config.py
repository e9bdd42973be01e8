"""The ``method_null`` kind's config: :class:`MethodNullConfig`. Pure data (no torch).

Config (``experiments/methods_confirm.toml``)::

    kind = "method_null"
    pair = {positive = "Love", negative = "Hate", pad_token = " a"}  # the ActAdd arms
    dataset = "builtin:sentiment"      # the pairs CAA and PCA are built from
    target_words = "love"              # preset or list (single tokens)
    control_words = ["hate", ...]      # the metric: Δ log p(target) − Δ log p(control)
    prompts = [...]                    # next-token metric at their last position
    neutral_texts = [...]              # next-token KL at their last position (the matching)
    methods = ["caa:last", "caa:mean", "pca_center:mean", "actadd_mean"]
    layers = [1, 3, 6, 10, 16]         # the methods' layers
    coeff = 0.5                        # the methods' size: × the typical residual norm
    control_layers = [0, 1, 2]         # the positive control: ActAdd per position, front
    control_coeff = 5.0                # the paper's coefficient (absolute)
    random_draws = 500                 # the most draws per cell (p >= 1 / (N + 1))
    stop_after = 10                    # sequential test: stop a cell at this many draws >= it
    random_seed = 0
    kl_rtol = 0.05                     # a draw's KL within 5% of its arm's
    [[confirmatory]]
    arm = "caa:mean"
    layer = 3

An *arm* is a method at one layer: ``caa:last`` / ``caa:mean`` / ``pca_diff:...`` /
``pca_center:...`` (a dataset method and the position it reads each pair at) or
``actadd_mean`` (the mean row of the pair's ActAdd vector), all one row added at every
position; the control arm is ``actadd_front`` (the per-position vector at the front).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from actadd.config import (
    Config,
    Pair,
    check_keys,
    integer,
    number,
    number_list,
    parse_pairs,
    text_list,
    words,
)
from actadd.errors import ConfigError

__all__ = [
    "ALTERNATIVES",
    "CONTROL_ARM",
    "DATASET_METHODS",
    "MAX_DRAWS",
    "NAME",
    "POSITIONS",
    "MethodNullConfig",
    "split_arm",
]

NAME = "method_null"
CONTROL_ARM = "actadd_front"
DATASET_METHODS: tuple[str, ...] = ("caa", "pca_diff", "pca_center")
POSITIONS: tuple[str, ...] = ("last", "mean")
ALTERNATIVES: tuple[str, ...] = ("greater",)
MAX_DRAWS = 5000  # a typo guard: each draw is a batch of forwards per cell


def split_arm(arm: str) -> tuple[str, str | None]:
    """``"caa:mean"`` → ``("caa", "mean")``; ``"actadd_mean"`` → ``("actadd_mean", None)``.
    Raises one ConfigError line naming what is allowed."""
    if not isinstance(arm, str):
        raise ConfigError(f"methods: each entry is a string, got {arm!r}.")
    method, _, position = arm.partition(":")
    allowed = (
        f"allowed: actadd_mean, or <method>:<position> with method one of "
        f"{', '.join(DATASET_METHODS)} and position one of {', '.join(POSITIONS)}"
    )
    if method == "actadd_mean" and not position:
        return method, None
    if method not in DATASET_METHODS:
        raise ConfigError(f"methods: {arm!r} is not a method; {allowed}.")
    if position not in POSITIONS:
        raise ConfigError(f"methods: {arm!r} has position {position!r} unknown; {allowed}.")
    return method, position


@dataclass(frozen=True)
class MethodNullConfig(Config):
    """A validated ``method_null`` config; see the module docstring for the TOML form."""

    WHERE: ClassVar[str] = "method_null config"
    REQUIRED: ClassVar[tuple[str, ...]] = ("pair", "prompts", "neutral_texts", "control_words")
    EXAMPLE: ClassVar[dict[str, Any]] = dict(
        pair=["Love", "Hate"], prompts=["I", "You"], neutral_texts=["The"],
        control_words=["hate"],
    )  # fmt: skip

    pair: Pair
    prompts: tuple[str, ...]
    neutral_texts: tuple[str, ...]
    control_words: tuple[str, ...]
    name: str = NAME
    model: str | None = None
    dataset: str = "builtin:sentiment"
    target_words: tuple[str, ...] | str = "love"
    methods: tuple[str, ...] = ("caa:last", "caa:mean", "pca_center:mean", "actadd_mean")
    layers: tuple[int, ...] = (1, 3, 6, 10, 16)
    coeff: float = 0.5
    control_layers: tuple[int, ...] = (0, 1, 2)
    control_coeff: float = 5.0
    random_draws: int = 500
    stop_after: int = 10
    random_seed: int = 0
    kl_rtol: float = 0.05
    max_iter: int = 12
    batch_rows: int = 512
    alternative: str = "greater"
    confirmatory: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("name must be a non-empty string.")
        if len(text_list(list(self.prompts), "prompts")) < 2:
            raise ConfigError("prompts: give at least 2 (the rank test averages over them).")
        text_list(list(self.neutral_texts), "neutral_texts")
        words(self.target_words, "target_words")
        words(self.control_words, "control_words")
        if not isinstance(self.methods, tuple) or not self.methods:
            raise ConfigError("methods: a non-empty list, e.g. ['caa:last', 'actadd_mean'].")
        for arm in self.methods:
            split_arm(arm)
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods {list(self.methods)}: list each arm once.")
        for key in ("layers", "control_layers"):
            layers = number_list(list(getattr(self, key)), key, integer=True, allow_empty=True)
            if any(x < 0 for x in layers) or len(set(layers)) != len(layers):
                raise ConfigError(f"{key}: layers are distinct integers >= 0, got {layers}.")
            object.__setattr__(self, key, tuple(layers))
        if not self.layers and not self.control_layers:
            raise ConfigError("layers and control_layers are both empty: there is no cell.")
        object.__setattr__(self, "coeff", number(self.coeff, "coeff", low=0, low_open=True))
        c = number(self.control_coeff, "control_coeff", low=0, low_open=True)
        object.__setattr__(self, "control_coeff", c)
        why = "the most draws per cell; each is a batch of forwards"
        n = integer(self.random_draws, "random_draws", low=1, high=MAX_DRAWS, why=why)
        object.__setattr__(self, "random_draws", n)
        h = integer(self.stop_after, "stop_after", low=0, high=n)
        object.__setattr__(self, "stop_after", h)
        object.__setattr__(self, "random_seed", integer(self.random_seed, "random_seed", low=0))
        rtol = number(self.kl_rtol, "kl_rtol", low=0, high=0.5, low_open=True)
        object.__setattr__(self, "kl_rtol", rtol)
        object.__setattr__(self, "max_iter", integer(self.max_iter, "max_iter", low=2, high=50))
        object.__setattr__(self, "batch_rows", integer(self.batch_rows, "batch_rows", low=1))
        if self.alternative not in ALTERNATIVES:
            raise ConfigError(
                f"alternative {self.alternative!r}: the rank test is one-sided; allowed: "
                f"{', '.join(ALTERNATIVES)} (the arm raises the metric more than the draws)."
            )
        self._check_confirmatory()

    def _check_confirmatory(self) -> None:
        cells = self.cells()
        for i, cell in enumerate(self.confirmatory):
            where = f"confirmatory[{i}]"
            if not isinstance(cell, dict):
                raise ConfigError(f"{where} must be a table {{arm, layer}}, got {cell!r}.")
            check_keys(cell, {"arm", "layer"}, where, required=("arm", "layer"))
            if (cell["arm"], cell["layer"]) not in cells:
                raise ConfigError(
                    f"{where}: ({cell['arm']!r}, layer {cell['layer']!r}) is not a cell; cells "
                    f"are a method of methods at a layer of layers, or {CONTROL_ARM!r} at a "
                    "layer of control_layers."
                )

    def cells(self) -> list[tuple[str, int]]:
        """Every (arm, layer): the control's first, then each method's, in config order."""
        return [(CONTROL_ARM, L) for L in self.control_layers] + [
            (m, L) for m in self.methods for L in self.layers
        ]

    def confirmatory_cells(self) -> set[tuple[str, int]]:
        return {(c["arm"], int(c["layer"])) for c in self.confirmatory}

    @property
    def target_list(self) -> tuple[str, ...]:
        return words(self.target_words, "target_words")

    @property
    def all_layers(self) -> list[int]:
        return sorted(set(self.layers) | set(self.control_layers))

    def check_model(self, model) -> None:
        """The plan step: layers in range, single-token words, prompts and neutral texts as
        long as the control vector (front injection)."""
        from actadd.config import check_layers
        from actadd.core.metrics import target_token_ids
        from actadd.core.vectors import SteeringVector
        from actadd.errors import ActAddError
        from actadd.runtime.tokens import encode

        check_layers(list(self.all_layers), model.cfg.n_layers, "layers")
        try:
            target_token_ids(model, self.target_list, strict=True, where="target_words")
            target_token_ids(model, self.control_words, strict=True, where="control_words")
        except ActAddError as exc:
            raise ConfigError(str(exc)) from None
        if self.control_layers:
            p = self.pair
            v = SteeringVector.from_pair(model, p.positive, p.negative, self.control_layers[0],
                                         pad_token=p.pad_token)  # fmt: skip
            for kind, texts in (("prompt", self.prompts), ("neutral text", self.neutral_texts)):
                for t in texts:
                    if len(encode(model, t)) < v.k:
                        raise ConfigError(
                            f"{kind} {t!r} is shorter than the control vector's {v.k} rows "
                            "(front injection needs it at least as long)."
                        )

    @classmethod
    def _convert(cls, raw: dict[str, Any]) -> dict[str, Any]:
        pair = raw["pair"]
        raw["pair"] = parse_pairs([dict(pair) if isinstance(pair, dict) else pair], "pair")[0]
        return raw

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        p = self.pair
        d["pair"] = {k: v for k, v in dict(positive=p.positive, negative=p.negative,
                                           label=p.label, pad_token=p.pad_token).items()
                     if v is not None}  # fmt: skip
        return d
