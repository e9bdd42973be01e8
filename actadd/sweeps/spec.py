"""Sweep specifications: pure data (no torch, no model), read from TOML or a dict.

A sweep is the grid ``pairs × pair-alignments × layers × coefficients × injection alignments``
on user prompts (next-token metrics), neutral texts (KL) and sampled completions. Example::

    name = "wedding_layers"
    model = "smollm2"            # or a .gguf path, "tiny-llama", a TransformerLens name
    layers = "0:30:2"            # "all", "a:b[:step]", or a list
    coeffs = [0.5, 1, 2, 4]
    coeff_mode = "absolute"      # or "relative": coeffs are sizes, × the typical residual norm
    aligns = ["front"]           # also "back", "all", "offset:3", "offset:0:6" (a range)
    equalize = ["right"]         # the pair-length rule: right / left / truncate
    prompts = ["I went up to my friend and said"]
    target_words = "weddings"    # a preset name or a list of words (see below)

    [[pairs]]
    positive = " weddings"
    negative = ""

    [generation]                 # optional: sampled completions
    n_samples = 16
    max_new_tokens = 40
    topic_words = "weddings"

**Word lists** (``target_words``, ``topic_words``): no default (:mod:`actadd.sweeps.words`).

**Methods** (optional; default ``["actadd"]``): the grid gains a ``method`` dimension::

    methods = ["actadd", "actadd_mean", "caa", "pca_diff", "pca_center", "random"]
    dataset = "builtin:sentiment"  # pairs of the dataset methods (default: the sweep's pairs)
    position = "last"              # the dataset methods' position: last or mean
    norm = "match"                 # "match": every method's vector gets the CAA norm
    random_draws = 8               # random directions (the null), each its own method "random:i"
    random_null = "residual"       # draws from the residual distribution; or "isotropic"

- ``actadd``: the paper's per-position vector of each pair (as without ``methods``);
- ``actadd_mean``: its mean over the rows after the leading token (one row);
- ``caa``, ``pca_diff``, ``pca_center``: one row from ``dataset`` (:mod:`actadd.core.methods`);
- ``random``: a direction per draw and layer (``random_seed``), from ``N(0, Σ̂)`` of the
  residual stream at the layer over the prompts (``random_null = "residual"``) or isotropic.

One-row methods run only with one-row aligns (``all``, ``generated[:k]``, ``from:<t>``, ...).
``norm = "match"``: each vector's mean row norm is the CAA vector's; ``"raw"``: its own.

With ``random`` among the methods, ``actadd report`` tests every other method against the
mean of the draws, cell by cell (:func:`actadd.studies.sweep.kind.null_claims`). A confirmatory
cell of that comparison names the method and ``against = "random"``::

    [[confirmatory]]
    method = "caa"
    layer = 3
    coeff = 24.0
    metric = "target_logprob_delta"   # or topic_any, sentiment
    against = "random"                # default "unsteered": the cell against unsteered
    alternative = "greater"           # one-sided ("raises"); default "two-sided"

**Relative coefficients** (``coeff_mode = "relative"``; default ``"absolute"``, the paper's
``coeff · v``): each cell's added vector is scaled so that its norm (RMS of the row norms
after the leading-token row) is ``coeff ×`` the typical residual norm at its layer
(:mod:`actadd.core.sizes`); the ``coeff`` column holds the relative value.

**Chat turns** (optional): ``turn = "user"`` or ``turn = "assistant"`` renders the prompts
and neutral texts through the model's chat template as user turns
(:func:`actadd.core.chat.render_prompt`, ending with the assistant's opening) and places each
cell's vector (one row; ActAdd's per-position vector is reduced to its mean after the
leading token, as for ``all``) on one turn only:

- ``"user"``: every token of the user's message and nothing else (not the system turn, the
  template's role markers or the generated tokens; :func:`actadd.core.chat.user_turn_span`);
- ``"assistant"``: the generated tokens only (``generated``). The first generated token is
  drawn from the prompt's logits, so next-token metrics are the unsteered ones by
  construction, and the option needs a ``[generation]`` table.

The cells' ``align`` column reads ``turn:user`` / ``turn:assistant``; ``aligns`` is left
out. The vectors are built from the pairs as written (not rendered). A model without a chat
template is refused before any compute.

``equalize`` is the pair-length rule of every pair (one grid dimension; the results' ``pad``
column; old key ``pads``): pad the shorter prompt on the right or the left, or truncate the
longer. With several rules, a confirmatory cell of an ActAdd method names its rule.

Every problem is one line naming the key, the value and what is allowed, before any compute:
from the config alone when the spec is built, and from the model in the plan step
(:func:`actadd.sweeps.plan.check`: layer ranges, single-token words, text lengths). Every key
with its type, default and meaning: the configuration reference (``docs/configuration.md``).
Figures draw at most 12 coefficients (``FIGURE_COEFFS``); the tables hold every one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from actadd.config import (
    EQUALIZE_RULES,
    Config,
    Pair,
    boolean,
    check_keys,
    coeff_mode,
    coefficients,
    integer,
    parse_layers,
    parse_pairs,
    text_list,
    words,
)
from actadd.core.align import ONE_ROW_KINDS, Align, expand_align
from actadd.core.datasets import load_pairs
from actadd.core.sampling import MAX_FREQ_PENALTY, MIN_TEMPERATURE
from actadd.errors import ActAddError, ConfigError, Validated
from actadd.sweeps import words as word_lists
from actadd.sweeps.generation_spec import MAX_SAMPLES, GenerationSpec

__all__ = [
    "DEFAULT_NEUTRAL_TEXTS",
    "GenerationSpec",
    "MAX_FREQ_PENALTY",
    "MAX_RANDOM_DRAWS",
    "MAX_SAMPLES",
    "METHODS",
    "METHOD_DEFAULTS",
    "MIN_TEMPERATURE",
    "ONE_ROW_METHODS",
    "PAIR_METHODS",
    "SweepSpec",
    "TURNS",
    "expand_align",
    "parse_layers",
]

METHODS: tuple[str, ...] = ("actadd", "actadd_mean", "caa", "pca_diff", "pca_center", "random")
ONE_ROW_METHODS: tuple[str, ...] = METHODS[1:]
PAIR_METHODS: tuple[str, ...] = ("actadd", "actadd_mean")  # one vector per sweep pair
# the method fields (and turn) and their defaults: left out of to_dict() at their defaults,
# so configs written before they existed keep their run directories resumable
METHOD_DEFAULTS: dict[str, Any] = dict(
    methods=("actadd",),
    dataset=None,
    position="last",
    norm="raw",
    random_draws=8,
    random_seed=0,
    random_null="residual",
    turn=None,
    coeff_mode="absolute",
)
TURNS: dict[str, str] = {
    "user": "every token of the user's message",
    "assistant": "the generated tokens",
}

# upper bounds of the sizes that multiply the work, each far past what a study needs: a
# value past them is a typo that would otherwise run for hours or exhaust memory
MAX_RANDOM_DRAWS = 1000  # random_draws: each draw is a method of its own (units × layers)
# (and generation.n_samples <= MAX_SAMPLES: actadd.sweeps.generation_spec; the sampling
# bounds MAX_FREQ_PENALTY, MIN_TEMPERATURE: actadd.core.sampling)

DEFAULT_NEUTRAL_TEXTS = (
    "The museum opens at nine in the morning and closes at five in the afternoon.",
    "To change a bicycle tire, first release the brake and remove the wheel from the frame.",
)


@dataclass(frozen=True)
class SweepSpec(Config):
    """A validated sweep grid. See the module docstring for the TOML form."""

    WHERE: ClassVar[str] = "sweep config"
    REQUIRED: ClassVar[tuple[str, ...]] = ("name", "pairs")
    ALIASES: ClassVar[dict[str, str]] = {"pads": "equalize"}
    LEFT_OUT_AT_DEFAULT: ClassVar[tuple[str, ...]] = tuple(METHOD_DEFAULTS)
    # stand-ins for wrong required keys, so one pass finds the problems of the other keys
    EXAMPLE: ClassVar[dict[str, Any]] = dict(
        name="example", pairs=[[" love", " hate"]], layers=[2], coeffs=[1.0], prompts=["I"]
    )

    name: str
    pairs: tuple[Pair, ...]
    layers: tuple[int, ...] | str
    coeffs: tuple[float, ...]
    prompts: tuple[str, ...]
    model: str | None = None
    aligns: tuple[str, ...] = ("front",)
    equalize: tuple[str, ...] = ("right",)  # the pair-length rule(s); config key once "pads"
    target_words: tuple[str, ...] | str | None = None  # None: derived, or refused (above)
    neutral_texts: Validated[tuple[str, ...]] = DEFAULT_NEUTRAL_TEXTS
    generation: GenerationSpec | None = None
    next_token: Validated[bool] = True
    batch_rows: Validated[int] = 64
    # cells chosen before the run for claims (actadd.lab.claims): tables of layer, coeff and
    # optionally pair (name or label), align and metric; each must be a cell of the grid
    confirmatory: tuple[dict[str, Any], ...] = ()
    methods: tuple[str, ...] = ("actadd",)
    dataset: str | None = None
    position: str = "last"
    norm: str = "raw"
    random_draws: Validated[int] = 8
    random_seed: Validated[int] = 0
    random_null: str = "residual"
    turn: str | None = None  # "user" | "assistant": render prompts as chat, steer one turn
    coeff_mode: str = "absolute"  # or "relative" (actadd.core.sizes)
    derived_words: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError("name must be a non-empty string.")
        for label, values in (
            ("pairs", self.pairs),
            ("coeffs", self.coeffs),
            ("prompts", self.prompts),
            ("aligns", self.aligns),
            ("equalize", self.equalize),
        ):
            if not isinstance(values, (list, tuple)):
                raise ConfigError(f"{label} must be a list, got {values!r}.")
            if len(values) == 0:
                raise ConfigError(f"{label} is empty: the grid needs at least one value.")
            repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
            if repeated:
                raise ConfigError(f"{label}: {repeated} given more than once; list each once.")
        object.__setattr__(self, "coeffs", tuple(coefficients(list(self.coeffs), "coeffs")))
        coeff_mode(self.coeff_mode)
        names = [p.name for p in self.pairs]
        if len(set(names)) != len(names):
            raise ConfigError(f"pairs: two pairs share a name ({names}); give them labels.")
        for p in self.equalize:
            if p not in EQUALIZE_RULES:
                raise ConfigError(
                    f"equalize: pad {p!r} unknown; allowed (the pair-length rule): "
                    f"{', '.join(EQUALIZE_RULES)}."
                )
        for a in self.aligns:
            try:
                expand_align(a)
            except ActAddError as exc:
                raise ConfigError(f"align {a!r}: {exc}") from None
        text_list(list(self.prompts), "prompts")
        if not isinstance(self.neutral_texts, (list, tuple)):
            raise ConfigError(
                f"neutral_texts must be a list of texts (or [] for none), got "
                f"{self.neutral_texts!r}."
            )
        if self.neutral_texts:
            text_list(list(self.neutral_texts), "neutral_texts")
        object.__setattr__(self, "batch_rows", integer(self.batch_rows, "batch_rows", low=1))
        boolean(self.next_token, "next_token")
        self._resolve_words()
        # syntax (and repeats) now; the range needs the model (actadd.sweeps.plan)
        self.layer_list(10**6)
        self._check_turn()
        self._check_confirmatory()
        self._check_methods()

    def _resolve_words(self) -> None:
        """The word lists, given or derived (:func:`actadd.sweeps.words.resolve`)."""
        gen = self.generation
        target, topic, derived = word_lists.resolve(
            self.pairs, self.target_words, gen and gen.topic_words, self.next_token, bool(gen)
        )
        object.__setattr__(self, "target_words", target)
        if gen is not None:
            object.__setattr__(self, "generation", replace(gen, topic_words=topic))
        object.__setattr__(self, "derived_words", derived)  # not a config key

    def _check_turn(self) -> None:
        if self.turn is None:
            return
        if self.turn not in TURNS:
            allowed = "; ".join(f"{k} ({v})" for k, v in TURNS.items())
            raise ConfigError(f"turn {self.turn!r} unknown; allowed: {allowed}.")
        if tuple(self.aligns) != ("front",):
            raise ConfigError(
                f"turn = {self.turn!r} places the vector itself ({TURNS[self.turn]}); leave "
                f"aligns out (got {list(self.aligns)})."
            )
        if self.turn == "assistant" and self.generation is None:
            raise ConfigError(
                "turn = 'assistant' steers only generated tokens, which next-token metrics "
                "never see; add a [generation] table (sampled completions)."
            )

    def _check_confirmatory(self) -> None:
        allowed = {"pair", "equalize", "layer", "coeff", "align", "metric", "method", "against"}
        for i, cell in enumerate(self.confirmatory):
            where = f"confirmatory[{i}]"
            if not isinstance(cell, dict):
                raise ConfigError(f"{where} must be a table {{layer, coeff, ...}}, got {cell!r}.")
            check_keys(cell, allowed | {"alternative"}, where, required=("layer", "coeff"))
            if cell.get("alternative", "two-sided") not in ("two-sided", "greater"):
                raise ConfigError(f"{where}: alternative: 'two-sided' or 'greater' (raises).")
            self._check_cell_pair(cell, where)
            if self._check_null_cell(cell, where):
                continue
            if cell["coeff"] not in self.coeffs:
                raise ConfigError(f"{where}: coeff {cell['coeff']!r} is not in coeffs.")
            layers = self.layer_list(10**6)
            if cell["layer"] not in layers:
                raise ConfigError(f"{where}: layer {cell['layer']!r} is not in layers.")
            labels = self.method_align_labels(cell.get("method", "actadd"))
            if "align" in cell and cell["align"] not in labels:
                raise ConfigError(
                    f"{where}: align {cell['align']!r} is not one of the method's aligns {labels}."
                )
            if cell.get("metric", "topic_any") not in ("topic_any", "sentiment"):
                raise ConfigError(f"{where}: metric must be 'topic_any' or 'sentiment'.")

    def _check_cell_pair(self, cell: dict, where: str) -> None:
        """A cell of an ActAdd method names one of the sweep's pairs (when there are
        several); a cell of a dataset method names none (its pair is the dataset)."""
        names = [p.name for p in self.pairs]
        method = cell.get("method", "actadd")
        if method not in PAIR_METHODS:
            if "pair" in cell:
                raise ConfigError(
                    f"{where}: method {method!r} uses the dataset ({self.dataset_label}), not "
                    "a sweep pair; drop pair."
                )
            if "equalize" in cell:
                raise ConfigError(
                    f"{where}: method {method!r} has no pair to equalize; drop equalize."
                )
            return
        if cell.get("pair", names[0]) not in names:
            raise ConfigError(f"{where}: pair {cell['pair']!r} is not one of {names}.")
        if len(names) > 1 and "pair" not in cell:
            raise ConfigError(f"{where}: name the pair (one of {names}).")
        # the results' pad column: a cell is one pair-length rule, not a mix of them
        rules = list(self.equalize)
        if cell.get("equalize", rules[0]) not in rules:
            raise ConfigError(f"{where}: equalize {cell['equalize']!r} is not one of {rules}.")
        if len(rules) > 1 and "equalize" not in cell:
            raise ConfigError(f"{where}: name the pair-length rule (equalize, one of {rules}).")

    def method_align_labels(self, method: str) -> list[str]:
        """The ``align`` values of ``method``'s cells."""
        if self.turn is not None:
            return self.align_labels()
        return [str(a) for a in self.aligns_for(method)]

    def _check_null_cell(self, cell: dict, where: str) -> bool:
        """A confirmatory cell against the random null (``against = "random"``): a
        non-random method, one of its cells, and a metric the null claims test. Returns
        whether the cell is one (the cells against unsteered are checked by the caller)."""
        against = cell.get("against", "unsteered")
        if against not in ("unsteered", "random"):
            raise ConfigError(
                f"{where}: against {against!r} unknown; allowed: unsteered, random (the "
                "norm-matched random null)."
            )
        method = cell.get("method", "actadd")
        if method not in self.methods or method == "random":
            raise ConfigError(
                f"{where}: method {method!r} is not one of the sweep's non-random methods "
                f"{[m for m in self.methods if m != 'random']}."
            )
        if against == "unsteered":
            return False
        if "random" not in self.methods:
            raise ConfigError(f"{where}: against = 'random' needs 'random' in methods.")
        if cell["coeff"] not in self.coeffs or cell["layer"] not in self.layer_list(10**6):
            raise ConfigError(f"{where}: layer and coeff must be in layers and coeffs.")
        null_aligns = self.method_align_labels("random")
        align = cell.get("align", "all" if self.turn is None else null_aligns[0])
        if align not in null_aligns:
            raise ConfigError(
                f"{where}: align {align!r} has no random null; the null runs at {null_aligns}."
            )
        metrics = ("target_logprob_delta", "topic_any", "sentiment")
        if cell.get("metric", "topic_any") not in metrics:
            raise ConfigError(f"{where}: against the null, metric must be one of {list(metrics)}.")
        if cell.get("metric", "topic_any") == "target_logprob_delta" and not self.next_token:
            raise ConfigError(f"{where}: metric target_logprob_delta needs next_token = true.")
        return True

    def _check_methods(self) -> None:
        if not isinstance(self.methods, tuple) or not self.methods:
            raise ConfigError(f"methods must be a non-empty list of {list(METHODS)}.")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or len(set(self.methods)) != len(self.methods):
            raise ConfigError(
                f"methods {list(self.methods)}: unknown or repeated {unknown or 'entries'}; "
                f"allowed (each once): {', '.join(METHODS)}."
            )
        if self.position not in ("last", "mean"):
            raise ConfigError(f"position {self.position!r} unknown; allowed: last, mean.")
        if self.norm not in ("raw", "match"):
            raise ConfigError(
                f"norm {self.norm!r} unknown; allowed: raw (each method's own scale), match "
                "(every vector rescaled to the CAA norm)."
            )
        if self.random_null not in ("residual", "isotropic"):
            raise ConfigError(
                f"random_null {self.random_null!r} unknown; allowed: residual (N(0, Σ̂) of the "
                "residual stream at the layer), isotropic (a Gaussian direction)."
            )
        draws = integer(
            self.random_draws,
            "random_draws",
            low=0,
            high=MAX_RANDOM_DRAWS,
            why="each draw is a method of its own, with a unit per layer",
        )
        object.__setattr__(self, "random_draws", draws)
        object.__setattr__(self, "random_seed", integer(self.random_seed, "random_seed", low=0))
        if "random" in self.methods and self.random_draws < 1:
            raise ConfigError("method random needs random_draws >= 1.")
        if self.dataset is not None and not isinstance(self.dataset, str):
            raise ConfigError(f"dataset must be 'builtin:<name>' or a path, got {self.dataset!r}.")
        pairs = self.dataset_pairs()  # a dataset given is read (and checked) even if unused
        if "pca_diff" in self.methods and len(pairs) < 2:
            raise ConfigError(
                "method pca_diff needs a dataset of at least 2 pairs (set dataset, or list "
                "more pairs)."
            )
        one_row = [m for m in self.methods if m in ONE_ROW_METHODS]
        if one_row and self.turn is None and not self.aligns_for(one_row[0]):
            raise ConfigError(
                f"methods {one_row} add one row: aligns {list(self.aligns)} has none that takes "
                "one row; add 'all' (or generated, from:<token>, positions:...)."
            )

    def dataset_pairs(self) -> tuple[Pair, ...]:
        """The dataset methods' pairs: ``dataset``, or the sweep's own pairs."""
        return load_pairs(self.dataset) if self.dataset is not None else self.pairs

    @property
    def dataset_label(self) -> str:
        return self.dataset or "sweep pairs"

    def method_list(self) -> list[str]:
        """Methods with the random null expanded into its draws (``random:0``, ...)."""
        out = []
        for m in self.methods:
            out += [f"random:{i}" for i in range(self.random_draws)] if m == "random" else [m]
        return out

    def aligns_for(self, method: str) -> list[Align]:
        """The cells' aligns for ``method``: all of them for ActAdd, one-row ones otherwise."""
        aligns = self.align_list()
        if method == "actadd":
            return aligns
        return [a for a in aligns if a.kind in ONE_ROW_KINDS or a.kind == "positions"]

    def align_labels(self) -> list[str]:
        """The ``align`` column's values of the grid's cells."""
        if self.turn is not None:
            return [f"turn:{self.turn}"]
        return [str(a) for a in self.align_list()]

    # ------------------------------------------------------------------ derived grid

    def layer_list(self, n_layers: int) -> list[int]:
        layers = list(self.layers) if isinstance(self.layers, tuple) else self.layers
        return parse_layers(layers, n_layers)

    def align_list(self) -> list[Align]:
        out: list[Align] = []
        for a in self.aligns:
            out += [x for x in expand_align(a) if x not in out]
        return out

    @property
    def words(self) -> tuple[str, ...]:
        return words(self.target_words, "target_words")

    def validate(self, model) -> None:
        """Check everything that depends on the model (the plan step,
        :func:`actadd.sweeps.plan.check`). Raises ConfigError."""
        # the package's one import cycle, kept on purpose (tests/unit/test_layout.py
        # KEPT_CYCLES): the plan module imports SweepSpec; this method is its public front door
        from actadd.sweeps.plan import check

        check(self, model)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()  # the method fields and turn left out at their defaults
        if self.turn is not None:
            del d["aligns"]  # the turn places the vector; aligns must be left out
        return d

    # ------------------------------------------------------------------ reading

    @classmethod
    def _convert(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The pairs, the ``[generation]`` table and the coefficients, parsed (the keys are
        checked, ``pads`` read as ``equalize``, lists made tuples)."""
        if raw.get("turn") is not None and "aligns" in raw:
            aligns = raw["aligns"]
            raise ConfigError(
                f"turn = {raw['turn']!r} places the vector itself; leave aligns out (got "
                f"{list(aligns) if isinstance(aligns, tuple) else aligns!r})."
            )
        raw["pairs"] = parse_pairs(raw["pairs"], "pairs")
        generation = raw.get("generation")
        if generation is not None:  # every problem of the table at once
            raw["generation"] = GenerationSpec.from_dict(generation)
        if isinstance(raw.get("coeffs"), (list, tuple)):  # checked before the dataclass
            raw["coeffs"] = tuple(coefficients(raw["coeffs"], "coeffs", allow_empty=True))
        return raw
