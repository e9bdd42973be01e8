"""What one run of the playground needs: :class:`Settings`, checked before any compute.

``Settings`` follows the one config idiom (:class:`actadd.config.Config`: ``from_dict`` /
``to_dict``); its ``sampling`` is the one sampling spec,
:class:`actadd.core.sampling.Sampling`, that generation and the sweeps use too.
``Settings(...)`` checks everything that needs no model (``__post_init__``);
:meth:`Settings.check` checks the rest against a model (layer range, single-token pad and
target words, context length). Both raise a typed :class:`~actadd.errors.ActAddError`
whose one-line message says what is allowed; the panel shows that line and computes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from transformer_lens import HookedTransformer

from actadd.config import EQUALIZE_RULES, TOPIC_PRESETS, Config, parse_layers, words
from actadd.core.methods import DATASET_METHODS, POSITIONS
from actadd.core.metrics import target_token_ids
from actadd.core.placement import ONE_ROW_KINDS, PHASE_KINDS, Align, prompt_positions
from actadd.core.sampling import GREEDY, Sampling
from actadd.errors import ActAddError, ConfigError, SteeringError
from actadd.runtime.tokens import encode, pair_token_ids, single_token_id

__all__ = [
    "ALIGN_CHOICES",
    "COEFF_LIMIT",
    "SOURCES",
    "Settings",
    "pad_shown",
    "pad_typed",
]

# where the vector comes from: ActAdd's pair, or a dataset method of actadd.core.methods
SOURCES: tuple[str, ...] = ("pair", *DATASET_METHODS)
# the alignment dropdown's suggestions (any Align.parse string is accepted)
ALIGN_CHOICES: tuple[str, ...] = (
    "front",
    "back",
    "offset:1",
    "all",
    "generated",
    "generated:8",
    "from:<|im_start|>",
)


# The largest |coefficient| a run takes. A residual stream is ~1e2 in norm, so past this a
# steered forward is the vector alone; and a pair's vector times ~1e38 overflows float32,
# which the library only finds after computing the vector.
COEFF_LIMIT = 1e6


# The pad-token box shows the pad in double quotes (an empty-looking box hid the default pad
# " "; a sign such as ␠ needs a font that has it) and reads one pair of them back off.


def pad_shown(pad: str) -> str:
    """The pad token as its text box shows it: in double quotes, ``" "`` for a space."""
    return f'"{pad}"'


def pad_typed(text: str) -> str:
    """The pad token a text box holds: one pair of surrounding double quotes is taken off
    (``" "`` is a space, ``"x"`` and ``x`` are ``x``)."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Settings(Config):
    """One playground request. Field groups: the prompt; the vector (``source`` ``"pair"``
    with ``positive``/``negative``, the pair-length rule ``equalize`` and ``pad_token``, or a
    dataset method over ``dataset`` at ``position``); where it goes (``layer``, ``coeff``,
    ``align``); sampling; what to show (``table_rows``: rows of the next-token shift and
    the logit lens tables, not a sampling setting); the quick map (``map_layers``: a layer
    rule such as ``"0:30:4"``, empty for about eight evenly spaced layers; ``map_coeffs``;
    ``target_words``: a preset name or comma-separated words)."""

    WHERE: ClassVar[str] = "playground settings"

    prompt: str = "I hate you because"
    source: str = "pair"
    positive: str = "Love"
    negative: str = "Hate"
    equalize: str = "right"
    pad_token: str = " "
    dataset: str = "builtin:sentiment"
    position: str = "last"
    layer: int = 2
    coeff: float = 5.0
    align: str = "front"
    greedy: bool = False
    temperature: float = 1.0
    top_p: float = 0.3
    freq_penalty: float = 1.0
    seed: int = 0
    n_samples: int = 2
    max_new_tokens: int = 20
    table_rows: int = 10
    map_layers: str = ""
    map_coeffs: tuple[float, ...] = (-4.0, -1.0, 1.0, 4.0)
    target_words: str = "love, happy"

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt:
            raise SteeringError("The prompt is empty: type a prompt to steer.")
        if self.source not in SOURCES:
            raise SteeringError(f"Vector source {self.source!r} unknown; allowed: {SOURCES}.")
        if self.source == "pair" and not (self.positive or self.negative):
            raise SteeringError("The pair has two empty prompts: give p+ or p− some text.")
        if self.equalize not in EQUALIZE_RULES:
            raise SteeringError(
                f"Pair-length rule {self.equalize!r} unknown; allowed: {EQUALIZE_RULES}."
            )
        if self.position not in POSITIONS:
            raise SteeringError(f"position {self.position!r} unknown; allowed: {POSITIONS}.")
        self.parsed_align  # noqa: B018 - Align.parse raises a one-line SteeringError
        if self.source != "pair" and not self.one_row_align:
            raise SteeringError(
                f"{self.source} gives a one-row vector: align it with all, generated, "
                f"generated:k, from:<token> or positions:..., not {self.align!r}."
            )
        for name, least in (
            ("seed", 0),
            ("n_samples", 1),
            ("max_new_tokens", 1),
            ("table_rows", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise SteeringError(f"{name} must be an int >= {least}, got {value!r}.")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise SteeringError(f"layer must be an int >= 0, got {self.layer!r}.")
        for name in ("coeff", "temperature", "top_p", "freq_penalty"):
            if not _finite(getattr(self, name)):
                raise SteeringError(f"{name} must be a finite number, got {getattr(self, name)!r}.")
        if abs(self.coeff) > COEFF_LIMIT:
            raise SteeringError(
                f"coeff {self.coeff:g} is too large: allowed -{COEFF_LIMIT:g}..{COEFF_LIMIT:g}."
            )
        self.sampling  # noqa: B018 - Sampling validates temperature and top_p
        if not self.map_coeffs or not all(_finite(c) for c in self.map_coeffs):
            raise SteeringError(
                f"map coefficients must be finite numbers, got {self.map_coeffs!r}."
            )
        if any(abs(c) > COEFF_LIMIT for c in self.map_coeffs):
            raise SteeringError(
                f"map coefficients {self.map_coeffs!r} too large: allowed "
                f"-{COEFF_LIMIT:g}..{COEFF_LIMIT:g}."
            )

    # ------------------------------------------------------------------ derived

    @property
    def parsed_align(self) -> Align:
        return Align.parse(self.align)

    @property
    def one_row_align(self) -> bool:
        return self.parsed_align.kind in (*ONE_ROW_KINDS, "positions")

    @property
    def sampling(self) -> Sampling:
        if self.greedy:
            return GREEDY
        return Sampling(
            temperature=float(self.temperature),
            top_p=float(self.top_p),
            freq_penalty=float(self.freq_penalty),
        )

    @property
    def words(self) -> tuple[str, ...]:
        """The quick map's target words: a preset name, or comma-separated words."""
        raw = self.target_words.strip()
        if raw in TOPIC_PRESETS:
            return words(raw, "target words")
        listed = [w.strip() for w in raw.split(",") if w.strip()]
        if not listed:
            raise ConfigError(
                f"target words: give a preset ({', '.join(sorted(TOPIC_PRESETS))}) or "
                "comma-separated words."
            )
        return tuple(listed)

    def layers_for_map(self, n_layers: int) -> list[int]:
        """The quick map's layers: ``map_layers`` as a layer rule, or about eight evenly
        spaced layers."""
        if self.map_layers.strip():
            return parse_layers(self.map_layers.strip(), n_layers)
        step = max(1, -(-n_layers // 8))
        return list(range(0, n_layers, step))

    def with_(self, **changes) -> Settings:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ model checks

    def check(self, model: HookedTransformer) -> None:
        """What a run needs of the model, before any forward pass."""
        self._check_layers(model, "layer", [self.layer])
        if self.source == "pair":
            single_token_id(model, self.pad_token, "pad token")
        if self.parsed_align.kind == "from":
            single_token_id(model, self.parsed_align.marker, "marker token")
        # as actadd.generate tokenizes it (never model.to_tokens, which sets the model's
        # default for the call: this runs on the panel's thread while the worker computes)
        n_prompt = len(encode(model, self.prompt, prepend_bos=True, truncate=False))
        if n_prompt + self.max_new_tokens > model.cfg.n_ctx:
            raise SteeringError(
                f"The prompt is {n_prompt} tokens; with {self.max_new_tokens} new tokens it "
                f"passes the model's context of {model.cfg.n_ctx}: shorten one of them."
            )
        align = self.parsed_align
        if align.kind not in PHASE_KINDS:  # the vector's rows must fit on the prompt
            k = 1
            if self.source == "pair" and not self.one_row_align:
                pos, _ = pair_token_ids(
                    model, self.positive, self.negative, self.equalize, self.pad_token
                )
                k = len(pos)
            try:
                prompt_positions(align, k, n_prompt)
            except SteeringError:
                raise SteeringError(
                    f"align {self.align} does not fit the prompt: it has {n_prompt} tokens "
                    f"(leading token included) for a {k}-row vector; pick another alignment "
                    "or a longer prompt."
                ) from None

    def check_map(self, model: HookedTransformer) -> None:
        """What the quick map needs of the model: its layers and single-token targets."""
        self._check_layers(model, "map layers", self.layers_for_map(model.cfg.n_layers))
        words = self.words  # a preset or a non-empty list, before the model is asked
        try:
            strict = self.target_words.strip() not in TOPIC_PRESETS  # as SweepSpec.target_ids
            ids = target_token_ids(model, words, strict=strict, where="target words")
        except ActAddError as exc:
            raise ConfigError(str(exc)) from None
        if not ids:
            raise ConfigError(f"None of the target words {list(self.words)} is a single token.")

    @staticmethod
    def _check_layers(model: HookedTransformer, what: str, layers: list[int]) -> None:
        n = model.cfg.n_layers
        bad = [layer for layer in layers if not 0 <= layer < n]
        if bad or not layers:
            shown = ", ".join(map(str, bad[:5])) + (f", … ({len(bad)} in all)" if bad[5:] else "")
            raise SteeringError(
                f"{what} [{shown}] out of range for {model.cfg.model_name}: allowed 0..{n - 1}."
            )
