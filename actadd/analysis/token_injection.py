"""Is a steering vector "just injecting extra tokens"? The conditions and the comparison runner.

For a steering pair (p+, p−) at layer ``L`` with coefficient ``c``, and a set of prompts, each
condition below changes the next-token distribution at the last position; every condition is
compared with the unsteered model and with ActAdd at ``L`` (the reference):

==========================  ===================================================================
condition                   what it is
==========================  ===================================================================
``actadd``                  ``c · (h_L(p+) − h_L(p−))`` added at ``L`` (front alignment)
``inject_prepend``          p+'s tokens placed right after the prompt's leading token
``inject_append``           p+'s tokens placed after the prompt (read after them)
``inject_replace``          p+'s tokens replace the prompt's first tokens (after the leading one)
``inject_prepend_contrast`` prepend p+ against prepend p− (the baseline is the p−-prepended
                            prompt): the token-level analogue of a *difference*
``embedding_l0``            ``c · (W_E[p+] − W_E[p−])`` added at layer 0
``transplant``              ``c · (h_S(p+) − h_S(p−)) · ‖h_L‖/‖h_S‖`` added at ``L``
                            (typical residual norms, leading token excluded)
``random``                  a random vector with ActAdd's per-position norms, added at ``L``
``slice``                   ActAdd's vector with only the first ``slice_frac`` of the dimensions
``coeff``                   ActAdd at other coefficients (negative, fractional, large)
``sum``                     ActAdd of this pair plus another pair's vector at the same positions
==========================  ===================================================================

Conditions that add vectors build them only as :class:`~actadd.vectors.SteeringVector` and apply
them only through :func:`actadd.steering`. Token injections are plain forwards on the
concatenated token ids (:func:`inject_tokens`).

Metrics per condition and prompt (:func:`effect_metrics`): ``kl`` = KL(condition ‖ baseline),
``target_logprob_delta`` = change of the log-probability mass on the pair's target words,
``effect_corr`` = Pearson correlation over the vocabulary of the condition's log-prob shift with
ActAdd's shift, ``topk_overlap`` = overlap of the ``k`` most-promoted tokens (largest shift) with
ActAdd's, ``inject_corr`` = correlation of the shift with that of prepending p+.

:func:`compare_conditions` runs everything for a list of :class:`Pair` under :class:`Settings`
and returns one tidy DataFrame; :func:`dose_response_summary` condenses the ``coeff`` rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from actadd.analysis.diagnostics import (
    _check_texts,
    pair_token_ids,
    residuals,
    typical_norm,
    typical_norm_of,
)
from actadd.errors import ConfigError, SteeringError
from actadd.generate import left_pad
from actadd.hooks import check_layer
from actadd.metrics import TOPIC_PRESETS, kl_div, log_probs, logprob_mass, target_token_ids
from actadd.metrics import topk_overlap as _topk_overlap
from actadd.steer import steering
from actadd.vectors import PAIR_ALIGNS, SteeringVector

INJECTION_MODES: tuple[str, ...] = ("prepend", "append", "replace", "insert")
INJECTIONS: tuple[str, ...] = ("prepend", "append", "replace", "prepend_contrast")
NEUTRAL_TEXT = (
    "The village sits at the edge of a wide river, where fishermen set out before dawn and "
    "return in the late afternoon with their"
)
DEFAULT_DOSE: tuple[float, ...] = (-4.0, -2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

# ---------------------------------------------------------------------- the pair


@dataclass(frozen=True)
class Pair:
    """A steering pair with its reference coefficient and the words that mark its concept.

    ``target_words`` is a tuple of words or the name of a preset in
    :data:`actadd.metrics.TOPIC_PRESETS` (``"weddings"``, ``"anger"``, ``"love"``).
    ``sum_with`` names another pair of the same run to add at the same positions.
    """

    name: str
    positive: str
    negative: str
    coeff: float
    target_words: tuple[str, ...] | str
    pad: str = "right"
    sum_with: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"A pair needs a non-empty name, got {self.name!r}.")
        if not isinstance(self.positive, str) or not isinstance(self.negative, str):
            raise ConfigError(f"Pair {self.name!r}: positive and negative must be strings.")
        if not self.positive and not self.negative:
            raise ConfigError(f"Pair {self.name!r}: both sides are empty; one side needs text.")
        if isinstance(self.coeff, bool) or not isinstance(self.coeff, (int, float)):
            raise ConfigError(f"Pair {self.name!r}: coeff must be a number, got {self.coeff!r}.")
        if not math.isfinite(self.coeff):
            raise ConfigError(f"Pair {self.name!r}: coeff must be finite, got {self.coeff!r}.")
        words = self.target_words
        if isinstance(words, str):
            if words not in TOPIC_PRESETS:
                raise ConfigError(
                    f"Pair {self.name!r}: unknown target preset {words!r}; allowed: "
                    f"{sorted(TOPIC_PRESETS)} or a list of words."
                )
            words = TOPIC_PRESETS[words]
        words = tuple(words)
        if not words or not all(isinstance(w, str) and w for w in words):
            raise ConfigError(f"Pair {self.name!r}: target_words must be non-empty strings.")
        object.__setattr__(self, "target_words", words)
        object.__setattr__(self, "coeff", float(self.coeff))
        if self.pad not in PAIR_ALIGNS:
            raise ConfigError(
                f"Pair {self.name!r}: unknown pad {self.pad!r}; allowed: {PAIR_ALIGNS}."
            )

    def vector(
        self, model: HookedTransformer, layer: int, coeff: float | None = None
    ) -> SteeringVector:
        """ActAdd's vector of this pair at ``layer`` (``coeff`` defaults to the pair's)."""
        c = self.coeff if coeff is None else coeff
        return SteeringVector.from_pair(model, self.positive, self.negative, layer, c, pad=self.pad)


# ---------------------------------------------------------------------- the conditions


def inject_tokens(
    model: HookedTransformer,
    prompt: str,
    text: str,
    mode: str = "prepend",
    *,
    position: int | None = None,
) -> list[int]:
    """The prompt's token ids (leading token first) with ``text``'s tokens placed in them.

    - ``"prepend"``: right after the leading token: ``[BOS] + text + prompt``;
    - ``"append"``: after the prompt: ``[BOS] + prompt + text``;
    - ``"replace"``: over the prompt's first ``len(text)`` tokens after the leading token;
    - ``"insert"``: before prompt token ``position`` (1 = prepend, ``len`` = append; the
      leading token is position 0 and cannot be displaced).

    ``text``'s tokens are those of ``model.to_tokens(text, prepend_bos=False)`` (no leading
    token): this is the literal "extra tokens" of the hypothesis. An empty ``text`` leaves
    the prompt unchanged.
    """
    if mode not in INJECTION_MODES:
        raise SteeringError(f"Unknown injection mode {mode!r}; allowed: {INJECTION_MODES}.")
    if not isinstance(prompt, str) or not prompt:
        raise SteeringError("inject_tokens needs a non-empty prompt string.")
    if not isinstance(text, str):
        raise SteeringError(f"text must be a string, got {type(text).__name__}.")
    ids = model.to_tokens(prompt, prepend_bos=True)[0].tolist()
    extra = model.to_tokens(text, prepend_bos=False)[0].tolist() if text else []
    if mode == "insert":
        if isinstance(position, bool) or not isinstance(position, int):
            raise SteeringError(f"mode='insert' needs an int position, got {position!r}.")
        if not 1 <= position <= len(ids):
            raise SteeringError(
                f"insert position {position} is outside 1..{len(ids)} for a prompt of "
                f"{len(ids)} tokens (position 0 is the leading token)."
            )
        return ids[:position] + extra + ids[position:]
    if position is not None:
        raise SteeringError(f"position is only used with mode='insert', not {mode!r}.")
    if mode == "prepend":
        return ids[:1] + extra + ids[1:]
    if mode == "append":
        return ids + extra
    if len(ids) - 1 <= len(extra):
        raise SteeringError(
            f"mode='replace' needs a prompt longer than the injected text: the prompt has "
            f"{len(ids) - 1} tokens after the leading one, the text {len(extra)}; at least one "
            "prompt token must remain."
        )
    return ids[:1] + extra + ids[1 + len(extra) :]


def embedding_vector(
    model: HookedTransformer,
    positive: str,
    negative: str,
    coeff: float = 1.0,
    *,
    pad: str = "right",
    pad_token: str | int = " ",
) -> SteeringVector:
    """``coeff · (W_E[p+] − W_E[p−])`` at layer 0: the pair's token embeddings, nothing else.

    The two sides are tokenized and aligned exactly as in ``SteeringVector.from_pair``;
    shape ``[k, d_model]`` with ``k`` the aligned length (row 0, the shared leading token, is 0).
    """
    pos_ids, neg_ids = pair_token_ids(model, positive, negative, pad, pad_token)
    W_E = model.W_E.detach()
    diff = W_E[torch.tensor(pos_ids)] - W_E[torch.tensor(neg_ids)]
    vec = SteeringVector.from_tensor(
        float(coeff) * diff, 0, model.cfg.model_name, description="embedding_difference"
    )
    return vec.with_label(f"emb({positive!r})−emb({negative!r}) ×{float(coeff):g}")


def transplant_vector(
    model: HookedTransformer,
    positive: str,
    negative: str,
    source: int,
    target: int,
    coeff: float = 1.0,
    *,
    norm_texts: Sequence[str] | None = None,
    scale: float | None = None,
    pad: str = "right",
) -> SteeringVector:
    """The pair's difference taken at layer ``source``, rescaled, to be added at ``target``.

    ``scale`` defaults to ``typical_norm(target) / typical_norm(source)`` over ``norm_texts``
    (the paper's rescaling by the ratio of typical residual norms); it is exactly 1 when
    ``source == target``, so that transplant equals ActAdd.
    """
    check_layer(model, source)
    check_layer(model, target)
    if scale is None:
        if source == target:
            scale = 1.0
        elif norm_texts is None:
            raise SteeringError(
                "transplant_vector needs norm_texts (texts to measure typical residual norms "
                "at the two layers) or an explicit scale."
            )
        else:
            scale = typical_norm(model, norm_texts, target) / typical_norm(
                model, norm_texts, source
            )
    if not math.isfinite(scale):
        raise SteeringError(f"transplant scale must be finite, got {scale!r}.")
    vec = SteeringVector.from_pair(model, positive, negative, source, coeff, pad=pad)
    moved = (vec * float(scale)).at_layer(target)
    return moved.with_label(f"transplant {source}→{target} ×{scale:.3g}")


def random_like(vector: SteeringVector, generator: torch.Generator) -> SteeringVector:
    """A random vector with the same per-position (row) norms as ``vector``.

    Directions are isotropic Gaussian, drawn from ``generator`` (never from global RNG).
    """
    if not isinstance(generator, torch.Generator):
        raise SteeringError("random_like needs a torch.Generator (seeded by the caller).")
    g = torch.randn(vector.tensor.shape, generator=generator, dtype=torch.float64)
    g = g / g.norm(dim=-1, keepdim=True)
    t = (g * vector.norms().double().cpu()[:, None]).to(vector.tensor.dtype)
    vec = SteeringVector.from_tensor(
        t.to(vector.tensor.device), vector.layer, vector.model_name, description="random"
    )
    return vec.with_label(f"random, norms of {vector.describe()}")


def dim_slice(vector: SteeringVector, dims: float | slice | Sequence[int]) -> SteeringVector:
    """``vector`` with every dimension outside ``dims`` set to 0.

    ``dims`` is a fraction in (0, 1] (the first ``round(frac · d_model)`` dimensions, e.g.
    0.7 for the paper's "first 70%"), a ``slice`` within ``0..d_model``, or a list of indices.
    """
    d = vector.d_model
    keep = torch.zeros(d, dtype=torch.bool)
    if isinstance(dims, float) or (isinstance(dims, int) and not isinstance(dims, bool)):
        if not 0 < dims <= 1:
            raise SteeringError(f"A dimension fraction must be in (0, 1], got {dims!r}.")
        n = round(float(dims) * d)
        if n < 1:
            raise SteeringError(f"Fraction {dims} of d_model={d} keeps no dimension.")
        keep[:n] = True
        label = f"first {n}/{d} dims"
    elif isinstance(dims, slice):
        if dims.step not in (None, 1):
            raise SteeringError(f"Only contiguous slices are allowed (step 1), got {dims}.")
        start = 0 if dims.start is None else dims.start
        stop = d if dims.stop is None else dims.stop
        if not (0 <= start < stop <= d):
            raise SteeringError(
                f"Dimension slice {start}:{stop} is outside d_model={d}: need "
                f"0 <= start < stop <= {d}."
            )
        keep[start:stop] = True
        label = f"dims {start}:{stop}"
    elif isinstance(dims, Sequence) and not isinstance(dims, str):
        idx = list(dims)
        if not idx or not all(isinstance(i, int) and 0 <= i < d for i in idx):
            raise SteeringError(
                f"Dimension indices must be a non-empty list of ints in 0..{d - 1}, got "
                f"{idx[:5]!r}{'...' if len(idx) > 5 else ''}."
            )
        keep[idx] = True
        label = f"{len(set(idx))} dims"
    else:
        raise SteeringError(f"dims must be a fraction, a slice or a list of indices, got {dims!r}.")
    t = vector.tensor * keep.to(vector.tensor.device, vector.tensor.dtype)
    vec = SteeringVector.from_tensor(t, vector.layer, vector.model_name, description="dim_slice")
    return vec.with_label(f"{vector.describe()} restricted to {label}")


# ---------------------------------------------------------------------- forwards


def _unembed_last(model: HookedTransformer, resid: Tensor) -> Float[Tensor, "batch d_vocab"]:
    logits = model.unembed(model.ln_final(resid[:, -1:]))[:, 0]
    cap = model.cfg.output_logits_soft_cap
    return cap * torch.tanh(logits / cap) if cap > 0 else logits


def _vector_list(vectors) -> list:
    if vectors is None:
        return []
    return [vectors] if isinstance(vectors, SteeringVector) else list(vectors)


@torch.no_grad()
def next_token_logprobs(
    model: HookedTransformer,
    token_lists: Sequence[Sequence[int]],
    vectors: SteeringVector | Sequence[SteeringVector] | None = None,
    *,
    align: str = "front",
    on_short: str = "error",
) -> Float[Tensor, "batch d_vocab"]:
    """Log-probabilities of the next token after each token list (left-padded batch, one
    full forward), steered by ``vectors`` through :func:`actadd.steering` if given."""
    if not token_lists or any(len(t) == 0 for t in token_lists):
        raise SteeringError("next_token_logprobs needs at least one non-empty token list.")
    tokens, mask = left_pad(model, token_lists)
    vecs = _vector_list(vectors)
    ctx = steering(model, vecs, align, on_short=on_short) if vecs else nullcontext()
    with ctx:
        resid = model(tokens, attention_mask=mask, stop_at_layer=model.cfg.n_layers)
    return log_probs(_unembed_last(model, resid))


class PromptBatch:
    """A fixed batch of texts with its unsteered residual stream cached at every layer.

    Conditions that add vectors at layer ``L`` only change blocks ``L`` and up, so
    :meth:`logprobs` restarts the forward pass at the lowest steered layer from the cached
    residual (``start_at_layer``) instead of recomputing the blocks below: same numbers as a
    full forward (up to float rounding), a fraction of the cost at high layers.
    """

    def __init__(self, model: HookedTransformer, texts: Sequence[str]) -> None:
        self.model = model
        self.texts = _check_texts(texts, "prompts")
        self.token_lists = [model.to_tokens(t)[0].tolist() for t in self.texts]
        self.resid, self.mask = residuals(model, self.texts, range(model.cfg.n_layers + 1))
        self.base = self.logprobs()

    @torch.no_grad()
    def logprobs(
        self,
        vectors: SteeringVector | Sequence[SteeringVector] | None = None,
        *,
        align: str = "front",
        on_short: str = "error",
    ) -> Float[Tensor, "batch d_vocab"]:
        """Next-token log-probs at the end of every text, steered by ``vectors``."""
        model, n = self.model, self.model.cfg.n_layers
        vecs = _vector_list(vectors)
        start = min([v.layer for v in vecs] + [n - 1])
        start = min(start, n - 1)
        ctx = steering(model, vecs, align, on_short=on_short) if vecs else nullcontext()
        with ctx:
            resid = model(
                self.resid[start], start_at_layer=start, stop_at_layer=n, attention_mask=self.mask
            )
        return log_probs(_unembed_last(model, resid))

    def typical_norm(self, layer: int) -> float:
        """Typical residual norm of these texts at ``layer`` (leading token excluded)."""
        return typical_norm_of(self.resid[check_layer(self.model, layer)], self.mask)


# ---------------------------------------------------------------------- metrics


def _pearson(a: Tensor, b: Tensor) -> Tensor:
    a = a.double() - a.double().mean(-1, keepdim=True)
    b = b.double() - b.double().mean(-1, keepdim=True)
    den = a.norm(dim=-1) * b.norm(dim=-1)
    num = (a * b).sum(-1)
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.full_like(num, float("nan")))


def effect_metrics(
    base: Float[Tensor, "batch d_vocab"],
    cond: Float[Tensor, "batch d_vocab"],
    target_ids: Sequence[int],
    *,
    ref: tuple[Tensor, Tensor] | None = None,
    inject: tuple[Tensor, Tensor] | None = None,
    k: int = 20,
) -> dict[str, np.ndarray]:
    """Per-row effect of a condition, from next-token log-probs ``[batch, d_vocab]``.

    ``cond`` is compared with its baseline ``base``; ``ref`` and ``inject`` are
    ``(baseline, condition)`` pairs whose log-prob shifts the condition's shift is compared
    with (ActAdd and prepend injection). Returns arrays of length ``batch``: ``kl``,
    ``target_logprob_delta``, ``effect_corr``, ``topk_overlap``, ``inject_corr`` (NaN
    where a comparison is not given or a shift is exactly zero).
    """
    if base.shape != cond.shape:
        raise SteeringError(f"shape mismatch: {tuple(base.shape)} vs {tuple(cond.shape)}.")
    delta = cond - base
    nan = np.full(base.shape[0], np.nan)
    out = dict(
        kl=kl_div(cond, base).cpu().numpy(),
        target_logprob_delta=(logprob_mass(cond, target_ids) - logprob_mass(base, target_ids))
        .cpu()
        .numpy(),
        effect_corr=nan,
        topk_overlap=nan,
        inject_corr=nan,
    )
    if ref is not None:
        ref_delta = ref[1] - ref[0]
        out["effect_corr"] = _pearson(delta, ref_delta).cpu().numpy()
        out["topk_overlap"] = _topk_overlap(delta, ref_delta, k).cpu().numpy()
    if inject is not None:
        out["inject_corr"] = _pearson(delta, inject[1] - inject[0]).cpu().numpy()
    return out


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
class Settings:
    """What :func:`compare_conditions` runs. Validated on construction.

    Attributes:
        prompts: user prompts (each must be at least as long as the vectors, leading token
            included, for front alignment; and longer than p+ for ``"replace"``).
        layers: reference layers: ActAdd, injections, embedding, controls and the
            ``transplant_sources`` transplants are compared at each.
        neutral: neutral texts, evaluated alongside (``prompt_kind="neutral"``), left out of
            the mean rows.
        injections: any of ``prepend``, ``append``, ``replace``, ``prepend_contrast``.
        embedding: run the layer-0 embedding-difference condition.
        transplant_sources: source layers ``S < L`` transplanted to every reference layer.
        sweep_targets / sweep_sources: layers that get a transplant sweep over
            ``sweep_sources`` (empty: every ``S`` in ``0..target``).
        dose_layers / dose_coeffs: layers where ActAdd runs at each coefficient in
            ``dose_coeffs`` (absolute ``c``), and where ``sum`` conditions run.
        random_control: run the equal-norm random vector; its generator is seeded from
            ``(seed, pair index, layer)``.
        slice_frac: fraction of dimensions kept by the ``slice`` control (``None``: off).
        topk: ``k`` of ``topk_overlap``.
        on_short: passed to :func:`actadd.steering` (``"error"`` or ``"clip"``).
    """

    prompts: tuple[str, ...]
    layers: tuple[int, ...]
    neutral: tuple[str, ...] = (NEUTRAL_TEXT,)
    injections: tuple[str, ...] = INJECTIONS
    embedding: bool = True
    transplant_sources: tuple[int, ...] = (0, 2)
    sweep_targets: tuple[int, ...] = ()
    sweep_sources: tuple[int, ...] = ()
    dose_layers: tuple[int, ...] = ()
    dose_coeffs: tuple[float, ...] = DEFAULT_DOSE
    random_control: bool = True
    slice_frac: float | None = 0.7
    seed: int = 0
    topk: int = 20
    on_short: str = "error"

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        prompts = _tuple(self.prompts, "prompts")
        if not prompts:
            raise ConfigError("The prompt set is empty: give at least one user prompt.")
        set_("prompts", tuple(_check_texts(prompts, "prompts")))
        neutral = _tuple(self.neutral, "neutral")
        set_("neutral", tuple(_check_texts(neutral, "neutral texts")) if neutral else ())
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
        coeffs = _tuple(self.dose_coeffs, "dose_coeffs")
        if not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c != 0
            for c in coeffs
        ):
            raise ConfigError(f"dose_coeffs must be finite non-zero numbers, got {coeffs!r}.")
        set_("dose_coeffs", tuple(sorted(float(c) for c in coeffs)))
        if self.slice_frac is not None and not (
            isinstance(self.slice_frac, (int, float)) and 0 < self.slice_frac <= 1
        ):
            raise ConfigError(f"slice_frac must be in (0, 1] or None, got {self.slice_frac!r}.")
        if isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 1:
            raise ConfigError(f"topk must be a positive int, got {self.topk!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {self.seed!r}.")
        if self.on_short not in ("error", "clip"):
            raise ConfigError(f"on_short must be 'error' or 'clip', got {self.on_short!r}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Build from a config mapping (e.g. a TOML table); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown settings {unknown}; allowed: {sorted(known)}.")
        return cls(**data)

    def reference_layers(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.layers) | set(self.sweep_targets) | set(self.dose_layers)))

    def check_model(self, model: HookedTransformer) -> None:
        """Raise :class:`SteeringError` if a layer is out of range for ``model``."""
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


# ---------------------------------------------------------------------- the runner

# one row per (pair, layer, condition, text); see compare_conditions
COLUMNS: list[str] = (
    "model pair layer condition family add_layer source_layer coeff scale other_pair "
    "prompt_index prompt prompt_kind kl target_logprob_delta effect_corr topk_overlap "
    "inject_corr vec_norm other_target_logprob_delta additive_corr"
).split()
METRICS: list[str] = (
    "kl target_logprob_delta effect_corr topk_overlap inject_corr "
    "other_target_logprob_delta additive_corr"
).split()


@dataclass
class _PairRun:
    """Everything computed once per pair, shared across its reference layers."""

    pair: Pair
    index: int
    target_ids: list[int]
    injections: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)


def _seed_for(seed: int, pair_index: int, layer: int) -> int:
    return int(np.random.SeedSequence([seed, pair_index, layer]).generate_state(1)[0])


def compare_conditions(
    model: HookedTransformer,
    pairs: Sequence[Pair],
    settings: Settings,
    *,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run every condition of ``settings`` for every pair; return one tidy DataFrame.

    One row per (pair, reference layer, condition, text), plus a ``prompt_kind="mean"`` row
    per (pair, layer, condition) averaging the user prompts. Columns: see :data:`COLUMNS`.
    ``layer`` is the reference layer (where ActAdd is added, whose effect ``effect_corr``
    compares with); ``add_layer`` is where the condition itself adds (NaN for injections).
    """
    pairs = list(pairs)
    if not pairs:
        raise ConfigError("No pairs given.")
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise ConfigError(f"Pair names must be unique, got {names}.")
    by_name = {p.name: p for p in pairs}
    for p in pairs:
        if p.sum_with is not None and p.sum_with not in by_name:
            raise ConfigError(
                f"Pair {p.name!r} has sum_with={p.sum_with!r}, not a pair of this run ({names})."
            )
    settings.check_model(model)

    texts = list(settings.prompts) + list(settings.neutral)
    kinds = ["user"] * len(settings.prompts) + ["neutral"] * len(settings.neutral)
    batch = PromptBatch(model, texts)
    n_layers = model.cfg.n_layers
    ref_layers = settings.reference_layers()
    norms = {layer: batch.typical_norm(layer) for layer in range(n_layers + 1)}
    vector_cache: dict[tuple[str, int], SteeringVector] = {}

    def vec_of(pair: Pair, layer: int) -> SteeringVector:
        key = (pair.name, layer)
        if key not in vector_cache:
            vector_cache[key] = pair.vector(model, layer, 1.0)
        return vector_cache[key]

    records: list[dict] = []

    def emit(run: _PairRun, layer: int, condition: str, family: str, m: dict, **meta) -> None:
        rows = []
        for i, text in enumerate(texts):
            row = dict(
                model=model.cfg.model_name,
                pair=run.pair.name,
                layer=layer,
                condition=condition,
                family=family,
                prompt_index=i,
                prompt=text,
                prompt_kind=kinds[i],
                **meta,
            )
            row.update({k: float(v[i]) for k, v in m.items()})
            rows.append(row)
        user = [r for r in rows if r["prompt_kind"] == "user"]
        mean = {**user[0], "prompt_index": -1, "prompt": "<mean over user prompts>"}
        mean["prompt_kind"] = "mean"
        for k in m:
            vals = [r[k] for r in user if not math.isnan(r[k])]
            mean[k] = float(np.mean(vals)) if vals else float("nan")
        records.extend(rows + [mean])

    steps = len(pairs) * (len(ref_layers) + 1)
    bar = tqdm(total=steps, desc="token injection", unit="step", disable=_disable(progress))
    with bar:
        for pi, pair in enumerate(pairs):
            run = _PairRun(pair, pi, target_token_ids(model, pair.target_words, strict=False))
            if not run.target_ids:
                raise ConfigError(
                    f"Pair {pair.name!r}: none of its target words {pair.target_words} is a "
                    f"single token in {model.cfg.model_name}."
                )
            bar.set_postfix_str(f"{pair.name} injections")
            _run_injections(model, batch, run, settings)
            emb = None
            if settings.embedding:
                vec = embedding_vector(
                    model, pair.positive, pair.negative, pair.coeff, pad=pair.pad
                )
                emb = batch.logprobs(vec, on_short=settings.on_short)
            bar.update(1)
            for layer in ref_layers:
                bar.set_postfix_str(f"{pair.name} L{layer}")
                _run_layer(model, batch, run, settings, layer, emb, norms, vec_of, by_name, emit)
                bar.update(1)
    df = pd.DataFrame.from_records(records)
    for col in COLUMNS:
        if col not in df:
            df[col] = np.nan
    return df[COLUMNS]


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _run_injections(
    model: HookedTransformer, batch: PromptBatch, run: _PairRun, settings: Settings
) -> None:
    pair = run.pair
    for name in settings.injections:
        if name == "prepend_contrast":
            plus = _inject_all(model, batch, pair.positive, "prepend")
            minus = _inject_all(model, batch, pair.negative, "prepend")
            run.injections[name] = (minus, plus)
        else:
            run.injections[name] = (batch.base, _inject_all(model, batch, pair.positive, name))
    if "prepend" not in run.injections:
        run.injections["prepend"] = (
            batch.base,
            _inject_all(model, batch, pair.positive, "prepend"),
        )


def _inject_all(model: HookedTransformer, batch: PromptBatch, text: str, mode: str) -> Tensor:
    if not text:
        return batch.base
    lists = [inject_tokens(model, t, text, mode) for t in batch.texts]
    return next_token_logprobs(model, lists)


def _run_layer(model, batch, run, settings, layer, emb, norms, vec_of, by_name, emit) -> None:
    pair, base, on_short = run.pair, batch.base, settings.on_short
    ids, k = run.target_ids, settings.topk
    unit = vec_of(pair, layer)
    actadd_vec = unit * pair.coeff
    ref_lp = batch.logprobs(actadd_vec, on_short=on_short)
    ref = (base, ref_lp)
    inject = run.injections["prepend"]

    def metrics(cond: Tensor, baseline: Tensor = base) -> dict:
        return effect_metrics(baseline, cond, ids, ref=ref, inject=inject, k=k)

    def norm_of(vec: SteeringVector) -> float:
        return float(vec.tensor.norm())

    emit(
        run,
        layer,
        "actadd",
        "reference",
        metrics(ref_lp),
        add_layer=layer,
        coeff=pair.coeff,
        vec_norm=norm_of(actadd_vec),
    )
    for name in settings.injections:
        b, c = run.injections[name]
        emit(run, layer, f"inject_{name}", "injection", metrics(c, b))
    if emb is not None:
        emit(run, layer, "embedding_l0", "embedding", metrics(emb), add_layer=0, coeff=pair.coeff)
    if settings.random_control:
        gen = torch.Generator().manual_seed(_seed_for(settings.seed, run.index, layer))
        rnd = random_like(actadd_vec, gen)
        emit(
            run,
            layer,
            "random",
            "control",
            metrics(batch.logprobs(rnd, on_short=on_short)),
            add_layer=layer,
            coeff=pair.coeff,
            vec_norm=norm_of(rnd),
        )
    if settings.slice_frac is not None:
        sl = dim_slice(actadd_vec, float(settings.slice_frac))
        emit(
            run,
            layer,
            "slice",
            "control",
            metrics(batch.logprobs(sl, on_short=on_short)),
            add_layer=layer,
            coeff=pair.coeff,
            vec_norm=norm_of(sl),
        )

    sources = {s for s in settings.transplant_sources if s < layer}
    if layer in settings.sweep_targets:
        sources |= set(settings.sweep_sources or range(layer + 1))
    for s in sorted(sources):
        scale = 1.0 if s == layer else norms[layer] / norms[s]
        vec = transplant_vector(
            model, pair.positive, pair.negative, s, layer, pair.coeff, scale=scale, pad=pair.pad
        )
        lp = ref_lp if s == layer else batch.logprobs(vec, on_short=on_short)
        emit(
            run,
            layer,
            "transplant",
            "transplant",
            metrics(lp),
            add_layer=layer,
            source_layer=s,
            coeff=pair.coeff,
            scale=scale,
            vec_norm=norm_of(vec),
        )

    if layer in settings.dose_layers:
        for c in settings.dose_coeffs:
            vec = unit * c
            lp = ref_lp if c == pair.coeff else batch.logprobs(vec, on_short=on_short)
            emit(
                run,
                layer,
                "coeff",
                "dose",
                metrics(lp),
                add_layer=layer,
                coeff=c,
                vec_norm=norm_of(vec),
            )
        if pair.sum_with is not None:
            other = by_name[pair.sum_with]
            other_vec = vec_of(other, layer) * other.coeff
            other_lp = batch.logprobs(other_vec, on_short=on_short)
            sum_vec = actadd_vec + other_vec
            sum_lp = batch.logprobs(sum_vec, on_short=on_short)
            m = metrics(sum_lp)
            other_ids = target_token_ids(model, other.target_words, strict=False)
            m["other_target_logprob_delta"] = (
                (logprob_mass(sum_lp, other_ids) - logprob_mass(base, other_ids)).cpu().numpy()
            )
            additive = (ref_lp - base) + (other_lp - base)
            m["additive_corr"] = _pearson(sum_lp - base, additive).cpu().numpy()
            emit(
                run,
                layer,
                "sum",
                "sum",
                m,
                add_layer=layer,
                coeff=pair.coeff,
                other_pair=other.name,
                vec_norm=norm_of(sum_vec),
            )


# ---------------------------------------------------------------------- summaries


def _ranks(x: np.ndarray) -> Tensor:
    """Average ranks (ties share their mean rank), for a Spearman correlation."""
    return torch.as_tensor(pd.Series(x).rank(method="average").to_numpy(float))


def dose_response_summary(df: pd.DataFrame, *, near: float = 1.0) -> pd.DataFrame:
    """Condense the ``coeff`` rows (mean over user prompts) per (pair, layer).

    Columns: ``n_coeffs``; ``spearman`` (rank correlation of the target log-prob change
    with ``c``); ``monotonic`` (the change moves in one direction as ``c`` grows);
    ``slope_near0`` and ``r2_near0`` (least-squares line through the origin, ``|c| <= near``:
    is the effect roughly linear in ``c`` near 0); ``odd_symmetry`` (mean of
    ``−Δ(−c) / Δ(c)`` over the ± pairs with ``|c| <= near``: 1 for a linear response);
    ``kl_exponent`` (slope of log KL against log |c| for ``|c| <= near``: 2 for a smooth
    response).
    """
    rows = df[(df["condition"] == "coeff") & (df["prompt_kind"] == "mean")]
    out = []
    for (pair, layer), g in rows.groupby(["pair", "layer"], sort=True):
        g = g.sort_values("coeff")
        c = g["coeff"].to_numpy(float)
        y = g["target_logprob_delta"].to_numpy(float)
        kl = g["kl"].to_numpy(float)
        steps = np.sign(np.diff(y))
        small = np.abs(c) <= near
        rec = dict(pair=pair, layer=int(layer), n_coeffs=len(c))
        rec["spearman"] = float(_pearson(_ranks(c), _ranks(y))) if len(c) > 1 else float("nan")
        rec["monotonic"] = bool(len(steps) and (np.all(steps >= 0) or np.all(steps <= 0)))
        cs, ys = c[small], y[small]
        if len(cs) >= 2 and np.any(cs != 0):
            slope = float((cs @ ys) / (cs @ cs))
            ss_tot = float(((ys - ys.mean()) ** 2).sum())
            ss_res = float(((ys - slope * cs) ** 2).sum())
            rec["slope_near0"] = slope
            rec["r2_near0"] = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        else:
            rec["slope_near0"] = rec["r2_near0"] = float("nan")
        ratios = []
        for ci, yi in zip(cs, ys):
            if ci > 0 and yi != 0 and np.any(np.isclose(cs, -ci)):
                ratios.append(-float(ys[np.isclose(cs, -ci)][0]) / float(yi))
        rec["odd_symmetry"] = float(np.mean(ratios)) if ratios else float("nan")
        pos = small & (kl > 0)
        if pos.sum() >= 2 and len(set(np.abs(c[pos]))) >= 2:
            rec["kl_exponent"] = float(np.polyfit(np.log(np.abs(c[pos])), np.log(kl[pos]), 1)[0])
        else:
            rec["kl_exponent"] = float("nan")
        out.append(rec)
    cols = ["pair", "layer", "n_coeffs", "spearman", "monotonic", "slope_near0", "r2_near0"]
    return pd.DataFrame(out, columns=cols + ["odd_symmetry", "kl_exponent"])


def layer_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean rows only, one line per (pair, layer, condition, source_layer, coeff)."""
    m = df[df["prompt_kind"] == "mean"]
    keep = ["pair", "layer", "condition", "source_layer", "coeff", "scale", "vec_norm"]
    return m[keep + [c for c in METRICS if c in m]].reset_index(drop=True)
