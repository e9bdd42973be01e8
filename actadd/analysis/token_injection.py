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
ActAdd's, ``inject_corr`` = correlation of the shift with that of prepending p+. Any
perturbation of the front positions shares a generic component of the shift, so the
correlations have a floor well above 0: read them against the ``random`` control's.

:func:`compare_conditions` runs everything for a list of :class:`Pair` under :class:`Settings`
and returns one tidy DataFrame; :func:`layer_summary`, :func:`dose_response_summary` and
:func:`headline` condense it. :func:`run_experiment` runs ``experiments/token_injection.toml``
and writes its tables and figures (:func:`experiment_figures`, also without a model).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from actadd.analysis.diagnostics import (
    check_texts,
    pair_token_ids,
    residual_stack,
    typical_norm,
)
from actadd.errors import ConfigError, SteeringError
from actadd.hooks import check_layer
from actadd.metrics import TOPIC_PRESETS, kl_div, log_probs, logprob_mass, target_token_ids
from actadd.metrics import topk_overlap as _topk_overlap
from actadd.steer import steering
from actadd.vectors import PAIR_ALIGNS, SteeringVector

INJECTION_MODES: tuple[str, ...] = ("prepend", "append", "replace", "insert")
INJECTIONS: tuple[str, ...] = ("prepend", "append", "replace", "prepend_contrast")
NEUTRAL_TEXT = "The village sits at the edge of a wide river, where fishermen"
# multiples of a pair's reference coefficient: negative, fractional and large
DEFAULT_DOSE: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)

# ---------------------------------------------------------------------- the pair


@dataclass(frozen=True)
class Pair:
    """A steering pair with its reference coefficient and the words that mark its concept.

    ``target_words`` is a tuple of words or the name of a preset in
    :data:`actadd.metrics.TOPIC_PRESETS` (``"weddings"``, ``"anger"``, ``"love"``).
    ``pad`` and ``pad_token`` are those of ``SteeringVector.from_pair`` (the paper: right
    padding with ``" "``). ``sum_with`` names another pair of the same run to add at the same
    positions (``sum`` condition, at the dose layers).
    """

    name: str
    positive: str
    negative: str
    coeff: float
    target_words: tuple[str, ...] | str
    pad: str = "right"
    pad_token: str | int = " "
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
        return SteeringVector.from_pair(
            model, self.positive, self.negative, layer, c, pad=self.pad, pad_token=self.pad_token
        )


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


def _vector_list(vectors) -> list[SteeringVector]:
    if vectors is None:
        return []
    return [vectors] if isinstance(vectors, SteeringVector) else list(vectors)


def _length_groups(token_lists: Sequence[Sequence[int]]) -> list[tuple[list[int], Tensor]]:
    """Indices of the token lists of each length, with those lists stacked [g, len]:
    equal-length lists share a forward pass and nothing is ever padded."""
    by_len: dict[int, list[int]] = {}
    for i, ids in enumerate(token_lists):
        by_len.setdefault(len(ids), []).append(i)
    return [
        (idx, torch.tensor([list(token_lists[i]) for i in idx], dtype=torch.long))
        for _, idx in sorted(by_len.items())
    ]


@torch.no_grad()
def next_token_logprobs(
    model: HookedTransformer,
    token_lists: Sequence[Sequence[int]],
    vectors: SteeringVector | Sequence[SteeringVector] | None = None,
    *,
    align: str = "front",
    on_short: str = "error",
) -> Float[Tensor, "batch d_vocab"]:
    """Log-probabilities of the next token after each token list, steered by ``vectors``
    through :func:`actadd.steering` if given.

    Lists of equal length share a forward pass; none is padded, so each row is exactly a
    plain forward on that token list.
    """
    if not len(token_lists) or any(len(t) == 0 for t in token_lists):
        raise SteeringError("next_token_logprobs needs at least one non-empty token list.")
    n, dev = model.cfg.n_layers, model.cfg.device
    out = torch.empty(len(token_lists), model.cfg.d_vocab_out)
    vecs = _vector_list(vectors)
    with steering(model, vecs, align, on_short=on_short) if vecs else nullcontext():
        for idx, tokens in _length_groups(token_lists):
            resid = model(tokens.to(dev), stop_at_layer=n)
            out[idx] = log_probs(_unembed_last(model, resid)).cpu()
    return out


Condition = SteeringVector | Sequence[SteeringVector] | None


class PromptBatch:
    """Texts whose unsteered residual streams are cached at every layer.

    Conditions that add vectors at layer ``L`` change only blocks ``L`` and up, so the
    forward pass restarts at the lowest steered layer from the cached residual
    (``start_at_layer``) instead of recomputing the blocks below. :meth:`logprobs_many` also
    runs many conditions in one forward: the cached residual is repeated once per condition
    and each condition's vectors go to its own batch rows (``actadd.steering`` entries
    ``(vector, align, rows)``). Texts are grouped by token length, so nothing is padded.
    Results equal a full forward per condition up to float rounding (tested).

    Attributes:
        texts, token_lists: the texts and their ids (leading token first).
        base: unsteered next-token log-probs, ``[n_texts, d_vocab]``.
        max_rows: at most this many rows per forward pass.
    """

    max_rows: int = 128

    def __init__(self, model: HookedTransformer, texts: Sequence[str]) -> None:
        self.model = model
        self.texts = check_texts(texts, "prompts")
        self.token_lists = [model.to_tokens(t)[0].tolist() for t in self.texts]
        layers = range(model.cfg.n_layers + 1)
        self.groups = [
            (idx, residual_stack(model, tokens.to(model.cfg.device), layers))
            for idx, tokens in _length_groups(self.token_lists)
        ]
        self.base = self.logprobs()

    def logprobs(
        self, vectors: Condition = None, *, align: str = "front", on_short: str = "error"
    ) -> Float[Tensor, "n_texts d_vocab"]:
        """Next-token log-probs at the end of every text, steered by ``vectors``."""
        return self.logprobs_many([vectors], align=align, on_short=on_short)[0]

    @torch.no_grad()
    def logprobs_many(
        self, conditions: Sequence[Condition], *, align: str = "front", on_short: str = "error"
    ) -> list[Float[Tensor, "n_texts d_vocab"]]:
        """:meth:`logprobs` for each condition (a vector, a list of vectors, or ``None``)."""
        model, n = self.model, self.model.cfg.n_layers
        conds = [_vector_list(c) for c in conditions]
        start = min([v.layer for c in conds for v in c] + [n - 1])
        out = [torch.empty(len(self.texts), model.cfg.d_vocab_out) for _ in conds]
        for idx, res in self.groups:
            g = len(idx)
            per = max(1, self.max_rows // g)
            for c0 in range(0, len(conds), per):
                chunk = conds[c0 : c0 + per]
                entries = [
                    (v, align, range(j * g, (j + 1) * g)) for j, c in enumerate(chunk) for v in c
                ]
                x = res[start].repeat(len(chunk), 1, 1)
                ctx = steering(model, entries, on_short=on_short) if entries else nullcontext()
                with ctx:
                    r = model(x, start_at_layer=start, stop_at_layer=n)
                lp = log_probs(_unembed_last(model, r)).cpu()
                for j in range(len(chunk)):
                    out[c0 + j][idx] = lp[j * g : (j + 1) * g]
        return out

    def typical_norm(self, layer: int) -> float:
        """Typical residual norm of these texts at ``layer``: the mean norm over every
        position but the leading token (all positions if the texts are one token)."""
        layer = check_layer(self.model, layer)
        norms = [res[layer].norm(dim=-1) for _, res in self.groups]
        rest = torch.cat([x[:, 1:].flatten() for x in norms])
        return float(
            rest.mean() if rest.numel() else torch.cat([x.flatten() for x in norms]).mean()
        )


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
        dose_layers / dose_scales: layers where ActAdd runs at ``scale × c`` for each
            multiple in ``dose_scales`` (``c``: the pair's coefficient), and where ``sum``
            conditions run.
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
    dose_scales: tuple[float, ...] = DEFAULT_DOSE
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
        set_("prompts", tuple(check_texts(prompts, "prompts")))
        neutral = _tuple(self.neutral, "neutral")
        set_("neutral", tuple(check_texts(neutral, "neutral texts")) if neutral else ())
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
        coeffs = _tuple(self.dose_scales, "dose_scales")
        if not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c != 0
            for c in coeffs
        ):
            raise ConfigError(f"dose_scales must be finite non-zero numbers, got {coeffs!r}.")
        set_("dose_scales", tuple(sorted(float(c) for c in coeffs)))
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
class _Cond:
    """One steering condition at a reference layer: its vectors and its table columns."""

    name: str
    family: str
    vectors: list[SteeringVector]
    meta: dict[str, Any] = field(default_factory=dict)


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
    per (pair, layer, condition) averaging the user prompts (neutral texts left out).
    Columns: :data:`COLUMNS`. ``layer`` is the reference layer, whose ActAdd effect
    ``effect_corr`` compares with; ``add_layer`` is where the condition itself adds (NaN for
    injections); ``scale`` is the factor on the pair's reference vector (transplants: the
    norm ratio from ``source_layer``; ``coeff`` rows: the multiple of the pair's ``c``).
    """
    pairs = list(pairs)
    if not pairs or not all(isinstance(p, Pair) for p in pairs):
        raise ConfigError("Give at least one Pair (actadd.analysis.Pair).")
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
    ref_layers = settings.reference_layers()
    sweep = set(settings.sweep_sources) or set(range(max(settings.sweep_targets, default=-1) + 1))
    needed = sorted(set(ref_layers) | set(settings.transplant_sources) | sweep)
    steps = len(pairs) * (len(ref_layers) + 1)
    bar = tqdm(total=steps, desc="token injection", unit="step", disable=_disable(progress))
    records: list[dict] = []
    with bar:
        batch = PromptBatch(model, texts)
        norms = {layer: batch.typical_norm(layer) for layer in range(model.cfg.n_layers + 1)}
        units = {
            p.name: SteeringVector.from_pair_layers(
                model, p.positive, p.negative, needed, 1.0, pad=p.pad, pad_token=p.pad_token
            )
            for p in pairs
        }
        for pi, pair in enumerate(pairs):
            bar.set_postfix_str(f"{pair.name}: injections")
            ids = target_token_ids(model, pair.target_words, strict=False)
            if not ids:
                raise ConfigError(
                    f"Pair {pair.name!r}: none of its target words {pair.target_words} is a "
                    f"single token in {model.cfg.model_name}."
                )
            injections = _injections(model, batch, pair, settings)
            emb = None
            if settings.embedding:
                vec = embedding_vector(
                    model,
                    pair.positive,
                    pair.negative,
                    pair.coeff,
                    pad=pair.pad,
                    pad_token=pair.pad_token,
                )
                emb = batch.logprobs(vec, on_short=settings.on_short)
            bar.update(1)
            for layer in ref_layers:
                bar.set_postfix_str(f"{pair.name}: L{layer}")
                conds = _conditions(pair, pi, layer, settings, units, norms, by_name)
                lps = batch.logprobs_many([c.vectors for c in conds], on_short=settings.on_short)
                records += _layer_rows(
                    model, batch, pair, ids, layer, conds, lps, injections, emb, settings
                )
                bar.update(1)
    df = pd.DataFrame.from_records(records)
    for col in COLUMNS:
        if col not in df:
            df[col] = np.nan
    return df[COLUMNS]


def _layer_rows(
    model: HookedTransformer,
    batch: PromptBatch,
    pair: Pair,
    ids: list[int],
    layer: int,
    conds: list[_Cond],
    lps: list[Tensor],
    injections: dict[str, tuple[Tensor, Tensor]],
    emb: Tensor | None,
    settings: Settings,
) -> list[dict]:
    """Table rows of every condition at one reference layer, from their log-probs."""
    texts = list(settings.prompts) + list(settings.neutral)
    kinds = ["user"] * len(settings.prompts) + ["neutral"] * len(settings.neutral)
    got = dict(zip([c.name for c in conds], lps))
    ref = (batch.base, got["actadd"])
    records: list[dict] = []

    def emit(name, family, cond, baseline=batch.base, extra=None, **meta) -> None:
        m = effect_metrics(
            baseline, cond, ids, ref=ref, inject=injections["prepend"], k=settings.topk
        )
        m.update(extra or {})
        meta = {"pair": pair.name, "layer": layer, "condition": name, **meta}
        records.extend(_rows(model, texts, kinds, family, m, meta))

    for c, lp in zip(conds, lps):
        if c.family == "sum":
            other = c.meta["other_pair"]
            extra = _sum_extras(model, batch.base, lp, ref[1], got["_other"], other)
            emit(c.name, c.family, lp, extra=extra, **{**c.meta, "other_pair": other.name})
        elif not c.name.startswith("_"):
            emit(c.name, c.family, lp, **c.meta)
    for name in settings.injections:
        base, lp = injections[name]
        emit(f"inject_{name}", "injection", lp, baseline=base)
    if emb is not None:
        emit("embedding_l0", "embedding", emb, add_layer=0, coeff=pair.coeff)
    return records


def _conditions(
    pair: Pair,
    pair_index: int,
    layer: int,
    settings: Settings,
    units: dict[str, dict[int, SteeringVector]],
    norms: dict[int, float],
    by_name: dict[str, Pair],
) -> list[_Cond]:
    """The steering conditions of ``pair`` at reference ``layer`` (ActAdd first)."""
    unit = units[pair.name][layer]  # coefficient 1
    actadd_vec = unit * pair.coeff
    at = dict(add_layer=layer, coeff=pair.coeff)

    def cond(name: str, family: str, vecs: list[SteeringVector], **meta) -> _Cond:
        norm = float(sum(vecs[1:], vecs[0]).tensor.norm()) if len(vecs) else 0.0
        return _Cond(name, family, vecs, {**at, "vec_norm": norm, **meta})

    conds = [cond("actadd", "reference", [actadd_vec])]
    if settings.random_control:
        gen = torch.Generator().manual_seed(_seed_for(settings.seed, pair_index, layer))
        conds.append(cond("random", "control", [random_like(actadd_vec, gen)]))
    if settings.slice_frac is not None:
        conds.append(cond("slice", "control", [dim_slice(actadd_vec, float(settings.slice_frac))]))
    sources = {s for s in settings.transplant_sources if s < layer}
    if layer in settings.sweep_targets:
        sources |= set(settings.sweep_sources or range(layer + 1))
    for s in sorted(sources):
        # transplant_vector's construction, from the pair's vectors computed once per pair
        scale = 1.0 if s == layer else norms[layer] / norms[s]
        vec = (units[pair.name][s] * (pair.coeff * scale)).at_layer(layer)
        conds.append(cond("transplant", "transplant", [vec], source_layer=s, scale=scale))
    if layer in settings.dose_layers:
        for m in settings.dose_scales:
            c = m * pair.coeff
            conds.append(cond("coeff", "dose", [unit * c], coeff=c, scale=m))
        if pair.sum_with is not None:
            other = by_name[pair.sum_with]
            other_vec = units[other.name][layer] * other.coeff
            conds.append(cond("_other", "", [other_vec]))
            conds.append(cond("sum", "sum", [actadd_vec + other_vec], other_pair=other))
    return conds


def _sum_extras(
    model: HookedTransformer,
    base: Tensor,
    sum_lp: Tensor,
    ref_lp: Tensor,
    other_lp: Tensor,
    other: Pair,
) -> dict[str, np.ndarray]:
    """Columns of a ``sum`` row: the other pair's target change, and how well the sum's
    shift is predicted by adding the two vectors' separate shifts."""
    other_ids = target_token_ids(model, other.target_words, strict=False)
    delta = logprob_mass(sum_lp, other_ids) - logprob_mass(base, other_ids)
    additive = (ref_lp - base) + (other_lp - base)
    return dict(
        other_target_logprob_delta=delta.cpu().numpy(),
        additive_corr=_pearson(sum_lp - base, additive).cpu().numpy(),
    )


def _rows(model, texts, kinds, family, m: dict[str, np.ndarray], meta: dict) -> list[dict]:
    """Per-text rows of one condition, then the mean over the user prompts."""
    rows = []
    for i, text in enumerate(texts):
        row = dict(model=model.cfg.model_name, family=family, prompt_index=i, prompt=text)
        row.update(prompt_kind=kinds[i], **meta)
        row.update({k: float(v[i]) for k, v in m.items()})
        rows.append(row)
    user = [r for r in rows if r["prompt_kind"] == "user"]
    mean = {**user[0], "prompt_index": -1, "prompt": "<mean over user prompts>"}
    mean["prompt_kind"] = "mean"
    for k in m:
        vals = [r[k] for r in user if not math.isnan(r[k])]
        mean[k] = float(np.mean(vals)) if vals else float("nan")
    return rows + [mean]


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _injections(
    model: HookedTransformer, batch: PromptBatch, pair: Pair, settings: Settings
) -> dict[str, tuple[Tensor, Tensor]]:
    """``{injection: (baseline log-probs, log-probs)}``; ``"prepend"`` is always there."""
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for name in dict.fromkeys(("prepend", *settings.injections)):
        if name == "prepend_contrast":
            minus = _inject_all(model, batch, pair.negative, "prepend")
            out[name] = (minus, out["prepend"][1])
        else:
            out[name] = (batch.base, _inject_all(model, batch, pair.positive, name))
    return out


def _inject_all(model: HookedTransformer, batch: PromptBatch, text: str, mode: str) -> Tensor:
    if not text:
        return batch.base
    return next_token_logprobs(model, [inject_tokens(model, t, text, mode) for t in batch.texts])


# ---------------------------------------------------------------------- summaries


def _ranks(x: np.ndarray) -> Tensor:
    """Average ranks (ties share their mean rank), for a Spearman correlation."""
    return torch.tensor(pd.Series(x).rank(method="average").to_numpy(float, copy=True))


def dose_response_summary(df: pd.DataFrame, *, near: float = 0.5) -> pd.DataFrame:
    """Condense the ``coeff`` rows (means over user prompts) per (pair, layer).

    ``m`` below is the multiple of the pair's coefficient (column ``scale``), ``Δ`` the
    target log-prob change. Columns: ``n_coeffs``; ``spearman`` (rank correlation of Δ with
    ``m``); ``monotonic`` (Δ moves one way as ``m`` grows); ``slope_near0`` and ``r2_near0``
    (least-squares line through the origin over ``|m| <= near``: is the effect roughly
    linear in ``c`` near 0); ``odd_symmetry`` (mean of ``−Δ(−m) / Δ(m)`` over the ± pairs with
    ``|m| <= near``: 1 for a linear response); ``kl_exponent`` (slope of log KL against
    log ``|m|`` over ``|m| <= near``: 2 for a smooth response); ``peak_scale`` (the ``m``
    with the largest Δ).
    """
    rows = df[(df["condition"] == "coeff") & (df["prompt_kind"] == "mean")]
    out = []
    for (pair, layer), g in rows.groupby(["pair", "layer"], sort=True):
        g = g.sort_values("scale")
        c = g["scale"].to_numpy(float)
        y = g["target_logprob_delta"].to_numpy(float)
        kl = g["kl"].to_numpy(float)
        steps = np.sign(np.diff(y))
        small = np.abs(c) <= near
        rec = dict(pair=pair, layer=int(layer), n_coeffs=len(c))
        rec["spearman"] = float(_pearson(_ranks(c), _ranks(y))) if len(c) > 1 else float("nan")
        rec["monotonic"] = bool(len(steps) and (np.all(steps >= 0) or np.all(steps <= 0)))
        cs, ys = c[small], y[small]
        rec["slope_near0"] = rec["r2_near0"] = float("nan")
        if len(cs) >= 2 and np.any(cs != 0):
            slope = float((cs @ ys) / (cs @ cs))
            ss_tot = float(((ys - ys.mean()) ** 2).sum())
            ss_res = float(((ys - slope * cs) ** 2).sum())
            rec["slope_near0"] = slope
            rec["r2_near0"] = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        ratios = [
            -float(ys[np.isclose(cs, -ci)][0]) / float(yi)
            for ci, yi in zip(cs, ys)
            if ci > 0 and yi != 0 and np.any(np.isclose(cs, -ci))
        ]
        rec["odd_symmetry"] = float(np.mean(ratios)) if ratios else float("nan")
        pos = small & (kl > 0)
        rec["kl_exponent"] = float("nan")
        if len(set(np.abs(c[pos]))) >= 2:
            rec["kl_exponent"] = float(np.polyfit(np.log(np.abs(c[pos])), np.log(kl[pos]), 1)[0])
        rec["peak_scale"] = float(c[np.nanargmax(y)]) if np.isfinite(y).any() else float("nan")
        out.append(rec)
    cols = ["pair", "layer", "n_coeffs", "spearman", "monotonic", "slope_near0", "r2_near0"]
    return pd.DataFrame(out, columns=cols + ["odd_symmetry", "kl_exponent", "peak_scale"])


SUMMARY_KEYS = [
    "pair",
    "layer",
    "condition",
    "family",
    "add_layer",
    "source_layer",
    "coeff",
    "scale",
    "other_pair",
]


def layer_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One line per condition instance (pair, layer, condition, source layer, coefficient):
    means over the user prompts with their standard errors (``*_sem``), ``n_prompts``, and
    the neutral texts' ``neutral_kl``, ``neutral_target_logprob_delta``,
    ``neutral_effect_corr``."""
    keys = [k for k in SUMMARY_KEYS if k in df]
    user = df[df["prompt_kind"] == "user"]
    g = user.groupby(keys, dropna=False, sort=False)
    cols = [c for c in METRICS + ["vec_norm"] if c in df]
    out = g[cols].mean()
    sem_cols = ["kl", "target_logprob_delta", "effect_corr", "inject_corr"]
    out = out.join(g[sem_cols].sem().add_suffix("_sem"))
    out["n_prompts"] = g.size()
    neutral = df[df["prompt_kind"] == "neutral"]
    if len(neutral):
        ncols = ["kl", "target_logprob_delta", "effect_corr"]
        n = neutral.groupby(keys, dropna=False, sort=False)[ncols].mean().add_prefix("neutral_")
        out = out.join(n)
    return out.reset_index()


BANDS: dict[str, tuple[int, int]] = {"L0-2": (0, 2), "L3-12": (3, 12), "L13+": (13, 10**6)}


def headline(
    summary: pd.DataFrame, bands: dict[str, tuple[int, int]] | None = None
) -> pd.DataFrame:
    """The numbers the conclusion rests on, one row per pair (means over layer bands).

    ``inj~actadd``: similarity of ActAdd's effect to prepending p+ (``inject_corr`` of the
    ActAdd rows); ``inj~random``: the same for the equal-norm random control;
    ``emb~actadd``: similarity of the layer-0 embedding difference to ActAdd at the layer;
    ``Δtgt actadd`` / ``Δtgt prepend``: target-word log-prob change; ``S→T``: similarity to
    ActAdd at the largest swept target ``T`` of the transplant from ``S`` (0 and 2).
    """
    bands = bands or BANDS
    rows = []
    for pair, g in summary.groupby("pair", sort=False):
        rec: dict[str, Any] = {"pair": pair}
        for name, (lo, hi) in bands.items():
            band = g[(g.layer >= lo) & (g.layer <= hi)]
            cond = lambda c, b=band: b[b.condition == c]  # noqa: E731
            rec[f"inj~actadd {name}"] = cond("actadd").inject_corr.mean()
            rec[f"inj~random {name}"] = cond("random").inject_corr.mean()
            rec[f"emb~actadd {name}"] = cond("embedding_l0").effect_corr.mean()
            rec[f"Δtgt actadd {name}"] = cond("actadd").target_logprob_delta.mean()
        inj = g[g.condition == "inject_prepend"]
        rec["Δtgt prepend"] = inj.target_logprob_delta.mean() if len(inj) else np.nan
        t = g[g.condition == "transplant"]
        if len(t):
            target = int(t.groupby("layer").size().idxmax())
            for src in (0, 2):
                sel = t[(t.layer == target) & (t.source_layer == src)]
                rec[f"{src}→{target}"] = sel.effect_corr.mean() if len(sel) else np.nan
        rows.append(rec)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- the experiment

EXPERIMENT_KEYS = {"kind", "name", "description", "model", "pairs", "only_pairs", "settings"}
EXPERIMENT_KEYS |= {"diagnostics"}
PAIR_KEYS = {"name", "positive", "negative", "coeff", "target", "pad", "pad_token", "sum_with"}
PAIR_KEYS |= {"label"}  # figure title only


def pairs_from_config(items: Sequence[dict[str, Any]]) -> list[Pair]:
    """:class:`Pair` objects from config tables (``target``: a preset name or word list)."""
    if isinstance(items, dict) or not isinstance(items, Sequence) or not items:
        raise ConfigError("'pairs' must be a non-empty list of tables ([[pairs]] in TOML).")
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"Each pair must be a table, got {item!r}.")
        unknown = sorted(set(item) - PAIR_KEYS)
        missing = sorted({"name", "positive", "negative", "coeff", "target"} - set(item))
        if unknown or missing:
            raise ConfigError(
                f"Pair {item.get('name', '?')!r}: unknown keys {unknown}, missing keys "
                f"{missing}; allowed: {sorted(PAIR_KEYS)}."
            )
        target = item["target"]
        fields_ = {k: v for k, v in item.items() if k not in ("target", "label")}
        pairs.append(
            Pair(target_words=target if isinstance(target, str) else tuple(target), **fields_)
        )
    return pairs


def run_experiment(
    config: dict[str, Any], out: str | Path, resume: bool = False, *, progress: bool | None = None
) -> dict[str, pd.DataFrame]:
    """Run the token-injection experiment described by ``config`` and write ``out/``.

    ``config`` is the TOML mapping of ``experiments/token_injection.toml`` (keys
    :data:`EXPERIMENT_KEYS`; ``[settings]`` are :class:`Settings`, ``[[pairs]]`` are
    :class:`Pair` tables). Writes, each atomically: ``config.json``, ``env.json`` (model,
    package versions, git revision), ``results.csv`` (:func:`compare_conditions`),
    ``summary.csv`` (:func:`layer_summary`), ``dose_summary.csv``, ``diagnostics.csv``
    (:func:`vector_diagnostics`), ``logit_lens.csv``, and the figures. ``resume`` is
    accepted for the experiment-kind interface and ignored: the run is recomputed.
    Returns the tables by name.
    """
    import actadd
    from actadd.analysis.diagnostics import logit_lens_across_layers, vector_diagnostics
    from actadd.runinfo import env_info, write_json, write_table

    unknown = sorted(set(config) - EXPERIMENT_KEYS)
    if unknown:
        raise ConfigError(f"Unknown config keys {unknown}; allowed: {sorted(EXPERIMENT_KEYS)}.")
    pairs = pairs_from_config(config.get("pairs", []))
    only = config.get("only_pairs")
    if only:
        missing = sorted(set(only) - {p.name for p in pairs})
        if missing:
            raise ConfigError(f"only_pairs names unknown pairs {missing}.")
        pairs = [p for p in pairs if p.name in only]
        pairs = [
            p if p.sum_with in (None, *only) else dataclasses.replace(p, sum_with=None)
            for p in pairs
        ]
    settings = Settings.from_dict(dict(config.get("settings", {})))
    diag_cfg = dict(config.get("diagnostics", {}))
    unknown = sorted(set(diag_cfg) - {"layers", "top_k"})
    if unknown:
        raise ConfigError(f"Unknown [diagnostics] keys {unknown}; allowed: layers, top_k.")

    out = Path(out)
    model = actadd.load_model(config.get("model"))
    write_json(out / "config.json", config)
    write_json(out / "env.json", env_info(model))
    with torch.no_grad():
        df = compare_conditions(model, pairs, settings, progress=progress)
        diag_layers = diag_cfg.get("layers") or list(settings.reference_layers())
        top_k = int(diag_cfg.get("top_k", 10))
        diag, lens = [], []
        for p in pairs:
            kw = dict(pad=p.pad, pad_token=p.pad_token)
            d = vector_diagnostics(
                model, p.positive, p.negative, diag_layers, settings.prompts, coeff=p.coeff, **kw
            )
            lens_p = logit_lens_across_layers(
                model, p.positive, p.negative, diag_layers, top_k, **kw
            )
            for t in (d, lens_p):
                t.insert(0, "pair", p.name)
            diag.append(d)
            lens.append(lens_p)
    tables = {
        "results": df,
        "summary": layer_summary(df),
        "dose_summary": dose_response_summary(df),
        "diagnostics": pd.concat(diag, ignore_index=True),
        "logit_lens": pd.concat(lens, ignore_index=True),
    }
    for name, table in tables.items():
        if "model" not in table:
            table.insert(0, "model", model.cfg.model_name)
        write_table(out / f"{name}.csv", table)
    experiment_figures(out)
    return tables


# ---------------------------------------------------------------------- figures

FIGURE_WIDTH = 7.0  # inches: a two-column paper's full text width


def _pair_labels(config: dict[str, Any] | None) -> dict[str, str]:
    """Panel titles: a pair's ``label`` from the config, else ``'p+' − 'p−'``; then ``c``."""
    labels = {}
    for item in (config or {}).get("pairs", []):
        text = item.get("label") or f"{item['positive']!r} − {item['negative']!r}"
        pad = item.get("pad_token", " ")
        extra = "" if pad == " " else f", pad {pad!r}"
        labels[item["name"]] = f"{text}\n(c={item['coeff']:g}{extra})"
    return labels


def _grid(n_rows: int, n_cols: int, height: float):
    from actadd.plots import plt

    return plt.subplots(
        n_rows,
        max(1, n_cols),
        figsize=(FIGURE_WIDTH, height),
        sharex=True,
        sharey="row",
        layout="constrained",
        squeeze=False,
    )


def _legend_below(fig, axes_row) -> None:
    """One legend for a row of panels, under the figure (collected from every panel)."""
    seen: dict[str, Any] = {}
    for ax in axes_row:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    if seen:
        fig.legend(seen.values(), seen.keys(), loc="outside lower center", ncol=3, frameon=False)


def _by(summary: pd.DataFrame, pair: str, condition: str) -> pd.DataFrame:
    sel = summary[(summary["pair"] == pair) & (summary["condition"] == condition)]
    return sel.sort_values("layer")


def _band(ax, x, mean, sem, **kw) -> None:
    line = ax.plot(x, mean, **kw)[0]
    if sem is not None and np.isfinite(np.asarray(sem, float)).any():
        sem = np.nan_to_num(np.asarray(sem, float))
        ax.fill_between(x, mean - sem, mean + sem, color=line.get_color(), alpha=0.15, lw=0)


def plot_similarity_vs_layer(summary: pd.DataFrame, labels: dict[str, str] | None = None):
    """Top: how similar ActAdd's effect at each layer is to literal token injection (and the
    random control's); bottom: the target-token log-prob change, with the injection level."""
    from actadd.plots import PAPER_RC, plt

    pairs = list(dict.fromkeys(summary["pair"]))
    labels = labels or {}
    with plt.rc_context(PAPER_RC):
        fig, axes = _grid(2, len(pairs), 5.0)
        for j, pair in enumerate(pairs):
            top, bottom = axes[0, j], axes[1, j]
            a = _by(summary, pair, "actadd")
            rnd = _by(summary, pair, "random")
            rep = _by(summary, pair, "inject_replace")
            emb = _by(summary, pair, "embedding_l0")
            _band(
                top,
                a.layer,
                a.inject_corr,
                a.inject_corr_sem,
                marker="o",
                ms=3,
                color="C0",
                label="ActAdd vs prepend p+",
            )
            if len(rep):
                _band(
                    top,
                    rep.layer,
                    rep.effect_corr,
                    rep.effect_corr_sem,
                    marker="s",
                    ms=3,
                    color="C1",
                    label="replace-with-p+ vs ActAdd",
                )
            if len(emb):
                _band(
                    top,
                    emb.layer,
                    emb.effect_corr,
                    emb.effect_corr_sem,
                    marker="^",
                    ms=3,
                    color="C2",
                    label="embedding-only (L0) vs ActAdd",
                )
            if len(rnd):
                _band(
                    top,
                    rnd.layer,
                    rnd.inject_corr,
                    rnd.inject_corr_sem,
                    ls="--",
                    color="0.5",
                    label="random (same norms) vs prepend p+",
                )
            top.axhline(0, color="k", lw=0.6)
            top.set_ylim(-0.3, 1.05)
            top.set_title(labels.get(pair, pair), fontsize=7.5)
            _band(
                bottom,
                a.layer,
                a.target_logprob_delta,
                a.target_logprob_delta_sem,
                marker="o",
                ms=3,
                color="C0",
                label="ActAdd",
            )
            sl = _by(summary, pair, "slice")
            if len(sl):
                _band(
                    bottom,
                    sl.layer,
                    sl.target_logprob_delta,
                    None,
                    marker=".",
                    color="C3",
                    label="ActAdd, first 70% of dims",
                )
            if len(rnd):
                _band(
                    bottom,
                    rnd.layer,
                    rnd.target_logprob_delta,
                    None,
                    ls="--",
                    color="0.5",
                    label="random (same norms)",
                )
            inj = _by(summary, pair, "inject_prepend")
            if len(inj):
                bottom.axhline(
                    inj.target_logprob_delta.iloc[0],
                    color="C1",
                    ls=":",
                    label="prepend p+ as tokens",
                )
            bottom.axhline(0, color="k", lw=0.6)
            bottom.set_xlabel("layer L (resid_pre)")
        axes[0, 0].set_ylabel("effect similarity\n(corr. of Δ log p over vocab)")
        axes[1, 0].set_ylabel("Δ log p(target words)\nvs unsteered [nats]")
        _legend_below(fig, axes.ravel())
    return fig


def plot_transplants(summary: pd.DataFrame, labels: dict[str, str] | None = None):
    """The pair's difference taken at source layer S and added at target layer T (rescaled
    by typical norms), against S: target-word change and similarity to ActAdd at T."""
    from actadd.plots import PAPER_RC, plt

    t = summary[summary["condition"] == "transplant"]
    counts = t.groupby(["pair", "layer"]).size()
    targets = sorted({layer for (_, layer), n in counts.items() if n > 3})
    pairs = list(dict.fromkeys(t["pair"]))
    labels = labels or {}
    with plt.rc_context(PAPER_RC):
        fig, axes = _grid(2, len(pairs), 5.0)
        for j, pair in enumerate(pairs):
            for k, target in enumerate(targets):
                sel = t[(t.pair == pair) & (t.layer == target)].sort_values("source_layer")
                color = f"C{k}"
                _band(
                    axes[0, j],
                    sel.source_layer,
                    sel.target_logprob_delta,
                    sel.target_logprob_delta_sem,
                    marker="o",
                    ms=3,
                    color=color,
                    label=f"transplant S → {target}",
                )
                _band(
                    axes[1, j],
                    sel.source_layer,
                    sel.effect_corr,
                    sel.effect_corr_sem,
                    marker="o",
                    ms=3,
                    color=color,
                    label=f"S → {target} vs ActAdd@{target}",
                )
                rnd = summary[
                    (summary.pair == pair)
                    & (summary.layer == target)
                    & (summary.condition == "random")
                ]
                if len(rnd):
                    axes[0, j].axhline(
                        rnd.target_logprob_delta.iloc[0],
                        color=color,
                        ls="--",
                        lw=0.8,
                        label=f"random @ {target}",
                    )
                    axes[1, j].axhline(
                        rnd.effect_corr.iloc[0],
                        color=color,
                        ls="--",
                        lw=0.8,
                        label=f"random @ {target} vs ActAdd",
                    )
            for ax in axes[:, j]:
                ax.axhline(0, color="k", lw=0.6)
            axes[0, j].set_title(labels.get(pair, pair), fontsize=7.5)
            axes[1, j].set_xlabel("source layer S")
        axes[0, 0].set_ylabel("Δ log p(target words)\nvs unsteered [nats]")
        axes[1, 0].set_ylabel("similarity to ActAdd at T\n(corr. of Δ log p)")
        _legend_below(fig, axes.ravel())
    return fig


def plot_dose_response(summary: pd.DataFrame, labels: dict[str, str] | None = None):
    """Target-word change and KL against the coefficient (as a multiple of each pair's c)."""
    from actadd.plots import PAPER_RC, plt

    d = summary[summary["condition"] == "coeff"]
    labels = labels or {}
    with plt.rc_context(PAPER_RC):
        fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 3.2), layout="constrained")
        for k, ((pair, layer), g) in enumerate(d.groupby(["pair", "layer"], sort=False)):
            g = g.sort_values("scale")
            name = f"{labels.get(pair, pair)} @L{layer}"
            _band(
                axes[0],
                g.scale,
                g.target_logprob_delta,
                g.target_logprob_delta_sem,
                marker="o",
                ms=3,
                color=f"C{k}",
                label=name,
            )
            axes[1].plot(g.scale, g.kl, marker="o", ms=3, color=f"C{k}")
        for ax in axes:
            ax.axvline(0, color="k", lw=0.6)
            ax.set_xlabel("coefficient as a multiple of the pair's c")
        axes[0].axhline(0, color="k", lw=0.6)
        axes[0].set_ylabel("Δ log p(target words) [nats]")
        axes[1].set_ylabel("KL(steered ‖ unsteered) [nats]")
        axes[0].set_title("negative and fractional multiples have no token analogue", fontsize=7.5)
        _legend_below(fig, axes)
    return fig


def plot_vector_diagnostics(diag: pd.DataFrame, labels: dict[str, str] | None = None):
    """Is the vector still its tokens? Cosine of its rows with the pair's token-embedding
    difference, and its size relative to the prompt's residual stream, across layers."""
    from actadd.plots import PAPER_RC, plt

    labels = labels or {}
    rows = diag[diag["token_pos"] != diag["token_neg"]]
    g = rows.groupby(["pair", "layer"], sort=False)[["cos_diff", "norm_ratio"]].mean()
    with plt.rc_context(PAPER_RC):
        fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 3.2), layout="constrained")
        for k, pair in enumerate(dict.fromkeys(rows["pair"])):
            s = g.loc[pair].sort_index()
            axes[0].plot(
                s.index, s.cos_diff, marker="o", ms=3, color=f"C{k}", label=labels.get(pair, pair)
            )
            axes[1].plot(s.index, s.norm_ratio, marker="o", ms=3, color=f"C{k}")
        d_model = None if "d_model" not in diag else int(diag["d_model"].iloc[0])
        if d_model:
            axes[0].axhspan(
                -2 / d_model**0.5, 2 / d_model**0.5, color="0.85", label="random direction (±2/√d)"
            )
        axes[0].set_ylabel("cos(row, W_E[p+] − W_E[p−])")
        axes[1].set_ylabel("‖c · row‖ / ‖prompt residual‖")
        axes[1].set_yscale("log")
        axes[1].axhline(1, color="k", lw=0.6)
        for ax in axes:
            ax.set_xlabel("layer L")
        _legend_below(fig, axes)
    return fig


def experiment_figures(out: str | Path) -> list[Path]:
    """Redraw the experiment's figures from the tables in ``out`` (no model needed)."""
    import json

    from actadd.plots import save_figure

    out = Path(out)
    config = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else {}
    labels = _pair_labels(config)
    summary = pd.read_csv(out / "summary.csv")
    paths = save_figure(plot_similarity_vs_layer(summary, labels), out / "similarity_vs_layer")
    if (summary["condition"] == "transplant").any():
        paths += save_figure(plot_transplants(summary, labels), out / "transplant_vs_source")
    if (summary["condition"] == "coeff").any():
        paths += save_figure(plot_dose_response(summary, labels), out / "dose_response")
    if (out / "diagnostics.csv").exists():
        diag = pd.read_csv(out / "diagnostics.csv", keep_default_na=False, na_values=[""])
        paths += save_figure(plot_vector_diagnostics(diag, labels), out / "vector_diagnostics")
    return paths
