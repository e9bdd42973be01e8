"""The conditions of the token-injection analysis, and what a run of them is told.

For a steering pair (p+, p−) at layer ``L`` with coefficient ``c``, each condition changes
the next-token distribution at the last position of a set of prompts; every condition is
compared with the unsteered model and with ActAdd at ``L`` (the reference) by
:mod:`actadd.studies.token_injection.comparison`:

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
``inject_insert``           the aligned p+ tokens inserted right after the leading token (the
                            positions the vector covers; the prompt moves right)
``inject_replace_contrast`` the aligned p+ tokens over the prompt's first tokens, against the
                            aligned p− tokens there (an empty p− is the pad): the token
                            analogue of ActAdd's difference at the same positions
``patch``                   *contextual patch*: the layer-``L`` residual of the replace-injected
                            run at positions ``[0, k)`` written into the clean run there
``visible_replace``         the replace-injected run with the p+ positions hidden from every
``visible_insert``          other position's attention below ``L``: the tokens are visible
                            only from layer ``L`` on (:func:`hidden_below`)
``slice``                   ActAdd's vector with only the first ``slice_frac`` of the dimensions
``coeff``                   ActAdd at other coefficients (negative, fractional, large)
``sum``                     ActAdd of this pair plus another pair's vector at the same positions
==========================  ===================================================================

The same-position conditions use the pair's *aligned* token ids (``pair_token_ids``: each
arm exactly as ActAdd's vector sees it, padding included), so that ``inject_replace`` puts
at positions ``[1, k)`` the tokens whose layer-``L`` residual minus the p− arm's is the
vector. Transplants and the null vectors are norm-matched per row (:func:`match_row_norms`).

**Null sampling.** The null vectors (residual-distribution draws, embedding differences,
ActAdd of unrelated words) are sampled *per prompt* by default
(``null_draws_per_prompt = k``): every prompt gets its own ``k`` independent draws
(:func:`per_prompt_draws`; prompt ``t``'s generator is seeded by ``(seed, …, t)`` only), and
the ``k`` draws are ``k`` conditions of the batched forward, each giving every prompt its
own vector. A cell then holds ``k × n_prompts`` draws at the cost of ``k`` conditions, and a
prompt's null value (the mean over its ``k`` draws) carries the draw-to-draw variability, so
a bootstrap or t over prompts covers it. The older design — ``null_draws = N`` draws, each
evaluated on every prompt (``N`` conditions) — is kept (``null_draws``); the two are exclusive.

Conditions that add vectors build them only as :class:`~actadd.core.vectors.SteeringVector`;
token injections are token id lists (:func:`inject_tokens`). :class:`PairSetting` is a pair
with its coefficient and target words, :class:`Settings` what a run compares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from actadd.config import (
    PAIR_KEYS,
    Pair,
    check_keys,
    number_list,
    text_list,
    words,
)
from actadd.core.diagnostics import typical_norm
from actadd.core.placement import Placement
from actadd.core.vectors import SteeringVector
from actadd.errors import ConfigError, SteeringError, Validated
from actadd.runtime.backends import Model
from actadd.runtime.hooks import attn_scores, check_layer
from actadd.runtime.modellock import exclusive
from actadd.runtime.tokens import EQUALIZE_RULES, Equalize, encode, pair_token_ids

INJECTION_MODES: tuple[str, ...] = ("prepend", "append", "replace", "insert")
INJECTIONS: tuple[str, ...] = (
    "prepend",
    "append",
    "replace",
    "insert",
    "prepend_contrast",
    "replace_contrast",
    "patch",
    "visible_replace",
    "visible_insert",
)
# injections that depend on the reference layer (computed per layer, not once per pair)
LAYER_INJECTIONS: tuple[str, ...] = ("patch", "visible_replace", "visible_insert")
TRANSPLANT_NORMS: tuple[str, ...] = ("row", "typical")
NULL_KINDS: tuple[str, ...] = ("residual", "embedding")
NEUTRAL_TEXT = "The village sits at the edge of a wide river, where fishermen"
# multiples of a pair's reference coefficient: negative, fractional and large
DEFAULT_DOSE: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
SETTING_KEYS: tuple[str, ...] = (*PAIR_KEYS, "name", "coeff", "target", "equalize", "sum_with")

# ---------------------------------------------------------------------- the pair


@dataclass(frozen=True)
class PairSetting:
    """A pair as this analysis studies it: the :class:`~actadd.config.Pair`, a ``name`` (the
    ``pair`` column of the tables), its reference coefficient, and the words that mark its
    concept.

    ``target_words`` is a tuple of words or the name of a preset in
    :data:`actadd.config.TOPIC_PRESETS` (``"weddings"``, ``"anger"``, ``"love"``).
    ``equalize`` is the pair-length rule of ``SteeringVector.from_pair`` (the paper: pad on
    the right with the pair's ``pad_token``). ``sum_with`` names another pair of the same run
    to add at the same positions (``sum`` condition, at the dose layers).
    """

    name: str
    pair: Pair
    coeff: float
    target_words: tuple[str, ...] | str
    equalize: Equalize = "right"
    sum_with: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"A pair needs a non-empty name, got {self.name!r}.")
        if not isinstance(self.pair, Pair):
            raise ConfigError(f"Pair {self.name!r}: pair must be an actadd.config.Pair.")
        (coeff,) = number_list([self.coeff], f"Pair {self.name!r}: coeff")
        object.__setattr__(self, "coeff", coeff)
        object.__setattr__(self, "target_words", words(self.target_words, f"Pair {self.name!r}"))
        if self.equalize not in EQUALIZE_RULES:
            raise ConfigError(
                f"Pair {self.name!r}: unknown equalize {self.equalize!r}; allowed: "
                f"{EQUALIZE_RULES}."
            )

    @property
    def positive(self) -> str:
        return self.pair.positive

    @property
    def negative(self) -> str:
        return self.pair.negative

    @property
    def pad_token(self) -> str | int:
        return self.pair.pad_token

    def vector(self, model: Model, layer: int, coeff: float | None = None) -> SteeringVector:
        """ActAdd's vector of this pair at ``layer`` (``coeff`` defaults to the pair's)."""
        c = self.coeff if coeff is None else coeff
        return SteeringVector.from_pair(
            model,
            self.positive,
            self.negative,
            layer,
            c,
            equalize=self.equalize,
            pad_token=self.pad_token,
        )


# ---------------------------------------------------------------------- the conditions


def inject_tokens(
    model: Model,
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
    ids = encode(model, prompt, prepend_bos=True)
    extra = encode(model, text, prepend_bos=False) if text else []
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


def aligned_arms(
    model: Model,
    positive: str,
    negative: str,
    equalize: Equalize = "right",
    pad_token: str | int = " ",
) -> tuple[list[int], list[int]]:
    """The two arms of a pair as ActAdd's vector sees them, without the leading token:
    ``(p+ ids, p− ids)``, equal length ``k − 1``. An empty side is all pad."""
    pos_ids, neg_ids = pair_token_ids(model, positive, negative, equalize, pad_token)
    return pos_ids[1:], neg_ids[1:]


def place_ids(prompt_ids: Sequence[int], extra: Sequence[int], mode: str) -> list[int]:
    """``extra`` placed in ``prompt_ids`` (leading token first) at the front positions
    ``[1, 1 + len(extra))``: ``"replace"`` overwrites the prompt's tokens there, ``"insert"``
    moves the prompt right."""
    ids, extra = list(prompt_ids), list(extra)
    if mode == "insert":
        return ids[:1] + extra + ids[1:]
    if mode != "replace":
        raise SteeringError(f"place_ids mode must be 'replace' or 'insert', got {mode!r}.")
    if len(ids) - 1 <= len(extra):
        raise SteeringError(
            f"mode='replace' needs a prompt longer than the injected tokens: the prompt has "
            f"{len(ids) - 1} tokens after the leading one, the injection {len(extra)}; at "
            "least one prompt token must remain."
        )
    return ids[:1] + extra + ids[1 + len(extra) :]


@contextmanager
def hidden_below(model: Model, positions: Sequence[int], layer: int) -> Iterator[None]:
    """Inside the block, ``positions`` are invisible to every *other* position's attention in
    blocks ``0..layer-1`` (their scores are set to the dtype's minimum before the softmax);
    the hidden positions still attend to each other and to what precedes them. From block
    ``layer`` on, attention is untouched: tokens placed there are *visible only from layer
    ``layer`` on*. ``layer == 0`` changes nothing. Every hook is removed on exit."""
    check_layer(model, layer)
    hidden = sorted({int(p) for p in positions})
    if not hidden or hidden[0] < 0:
        raise SteeringError(f"hidden_below needs non-negative positions, got {positions!r}.")
    idx = torch.tensor(hidden)

    def hook(scores: Tensor, hook) -> Tensor:
        n = scores.shape[-1]
        keys = torch.zeros(n, dtype=torch.bool, device=scores.device)
        keys[idx[idx < n].to(scores.device)] = True
        block = (~keys)[:, None] & keys[None, :]  # [query, key]
        return scores.masked_fill(block, torch.finfo(scores.dtype).min)

    names = [attn_scores(model, b) for b in range(min(layer, model.cfg.n_layers))]
    with exclusive(model), model.hooks(fwd_hooks=[(name, hook) for name in names]):
        yield


def match_row_norms(
    vector: SteeringVector, reference: SteeringVector, *, eps: float = 1e-12
) -> SteeringVector:
    """``vector`` with each row rescaled to the norm of the same row of ``reference``
    (norm-matched per row, not by one global ratio). A row whose own norm is below ``eps``
    stays 0 whatever the reference asks: it has no direction to scale."""
    if vector.tensor.shape != reference.tensor.shape:
        raise SteeringError(
            f"match_row_norms needs equal shapes, got {tuple(vector.tensor.shape)} and "
            f"{tuple(reference.tensor.shape)}."
        )
    t = vector.tensor.double()
    own = t.norm(dim=-1, keepdim=True)
    want = reference.tensor.double().norm(dim=-1, keepdim=True).to(t.device)
    scale = torch.where(own > eps, want / own.clamp_min(eps), torch.zeros_like(own))
    out = (t * scale).to(vector.tensor.dtype)
    vec = SteeringVector.from_tensor(out, vector.layer, vector.model_name, description="matched")
    return vec.with_label(f"{vector.describe()}, row norms of {reference.describe()}")


def residual_random_like(
    reference: SteeringVector,
    residual_rows: Float[Tensor, "n d_model"],
    generator: Validated[torch.Generator],
) -> SteeringVector:
    """A null vector drawn from the residual distribution, norm-matched per row to
    ``reference``: each row is ``z @ X_c / sqrt(n − 1)`` with ``z ~ N(0, I_n)`` and ``X_c``
    the centred ``residual_rows`` — exactly ``N(0, Σ̂)``, the empirical covariance of the
    residual stream (the distribution of a difference of two residuals, up to scale), not
    an isotropic direction."""
    if not isinstance(generator, torch.Generator):
        raise SteeringError("residual_random_like needs a torch.Generator (seeded by the caller).")
    x = residual_rows.detach().double().cpu()
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] != reference.d_model:
        raise SteeringError(
            f"residual_rows must be [n >= 2, {reference.d_model}], got {tuple(x.shape)}."
        )
    xc = (x - x.mean(0)) / math.sqrt(x.shape[0] - 1)
    z = torch.randn((reference.k, x.shape[0]), generator=generator, dtype=torch.float64)
    draw = (z @ xc).to(reference.tensor.dtype).to(reference.tensor.device)
    vec = SteeringVector.from_tensor(
        draw, reference.layer, reference.model_name, description="residual_random"
    )
    return match_row_norms(vec, reference).with_label("residual-distribution random")


def embedding_random_like(
    model: Model,
    reference: SteeringVector,
    token_pool: Sequence[int],
    generator: Validated[torch.Generator],
) -> SteeringVector:
    """A null vector whose rows are differences of two random token embeddings
    ``W_E[a] − W_E[b]`` (two different tokens drawn from ``token_pool``), norm-matched per row to
    ``reference``; added at ``reference``'s layer."""
    if not isinstance(generator, torch.Generator):
        raise SteeringError("embedding_random_like needs a torch.Generator.")
    if len(token_pool) < 2:
        raise SteeringError("embedding_random_like needs a pool of at least 2 tokens.")
    pool = torch.as_tensor(list(token_pool))
    ia = torch.randint(len(pool), (reference.k,), generator=generator)
    ib = (ia + 1 + torch.randint(len(pool) - 1, (reference.k,), generator=generator)) % len(pool)
    W_E = model.W_E.detach()
    diff = W_E[pool[ia].to(W_E.device)] - W_E[pool[ib].to(W_E.device)]  # a != b
    vec = SteeringVector.from_tensor(
        diff.to(reference.tensor.dtype),
        reference.layer,
        model.cfg.model_name,
        description="embedding_random",
    )
    return match_row_norms(vec, reference).with_label("random embedding difference")


def seed_of(*keys: int) -> int:
    """A generator seed from a tuple of non-negative ints (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def per_prompt_draws(
    draw: Callable[[torch.Generator], SteeringVector],
    n_texts: int,
    per_prompt: int,
    seed: Sequence[int],
) -> list[list[Placement]]:
    """Independent null draws for every text: ``per_prompt`` conditions; condition ``j`` is
    one placement per text ``t`` (front alignment, ``rows=(t,)``) holding text ``t``'s
    ``j``-th draw. Text ``t``'s draws come, in order, from a generator seeded by
    ``(*seed, t)`` alone (:func:`seed_of`): reproducible, different across texts, and the
    same whatever the other texts are. ``draw(generator)`` makes one null vector."""
    if isinstance(per_prompt, bool) or not isinstance(per_prompt, int) or per_prompt < 1:
        raise SteeringError(f"per_prompt must be an int >= 1, got {per_prompt!r}.")
    conds: list[list[Placement]] = [[] for _ in range(per_prompt)]
    for t in range(n_texts):
        gen = torch.Generator().manual_seed(seed_of(*seed, t))
        for j in range(per_prompt):
            conds[j].append(Placement(draw(gen), "front", (t,)))
    return conds


def embedding_vector(
    model: Model,
    positive: str,
    negative: str,
    coeff: float = 1.0,
    *,
    equalize: Equalize = "right",
    pad_token: str | int = " ",
) -> SteeringVector:
    """``coeff · (W_E[p+] − W_E[p−])`` at layer 0: the pair's token embeddings, nothing else.

    The two sides are tokenized and aligned exactly as in ``SteeringVector.from_pair``;
    shape ``[k, d_model]`` with ``k`` the aligned length (row 0, the shared leading token, is 0).
    """
    pos_ids, neg_ids = pair_token_ids(model, positive, negative, equalize, pad_token)
    W_E = model.W_E.detach()
    diff = W_E[torch.tensor(pos_ids)] - W_E[torch.tensor(neg_ids)]
    vec = SteeringVector.from_tensor(
        float(coeff) * diff, 0, model.cfg.model_name, description="embedding_difference"
    )
    return vec.with_label(f"emb({positive!r})−emb({negative!r}) ×{float(coeff):g}")


def transplant_vector(
    model: Model,
    positive: str,
    negative: str,
    source: int,
    target: int,
    coeff: float = 1.0,
    *,
    norm_texts: Sequence[str] | None = None,
    scale: float | None = None,
    equalize: Equalize = "right",
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
    vec = SteeringVector.from_pair(model, positive, negative, source, coeff, equalize=equalize)
    moved = (vec * float(scale)).at_layer(target)
    return moved.with_label(f"transplant {source}→{target} ×{scale:.3g}")


def random_like(vector: SteeringVector, generator: Validated[torch.Generator]) -> SteeringVector:
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


def dim_slice(
    vector: SteeringVector, dims: Validated[float | slice | Sequence[int]]
) -> SteeringVector:
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
        slice_frac: fraction of dimensions kept by the ``slice`` control (``None`` or
            ``False``: off).
        topk: ``k`` of ``topk_overlap``.
        on_short: passed to :func:`actadd.steering` (``"error"`` or ``"clip"``).
        transplant_norm: ``"row"`` — each transplanted row is rescaled to the norm of the same
            row of ActAdd's vector at ``L`` (:func:`match_row_norms`); ``"typical"`` — one
            global ratio of typical residual norms (the paper's rescaling; version 1).
        control_words: a control word set; ``target_vs_control`` is the target's log-prob
            change minus theirs (empty: not measured).
        null_draws_per_prompt: per (pair, layer), each text gets this many draws of its own
            (:func:`per_prompt_draws`) of each null vector norm-matched per row to ActAdd —
            ``residual`` (:func:`residual_random_like`) and ``embedding``
            (:func:`embedding_random_like`): ``k × n_prompts`` draws per cell for the cost
            of ``k`` conditions; 0 turns them off.
        null_draws: the older design — this many draws, each evaluated on every text (one
            condition per draw). Exclusive with ``null_draws_per_prompt``; 0: off.
        null_kinds: which nulls the draws make: ``residual``, ``embedding`` (each costs its
            own conditions).
    """

    prompts: Sequence[str]
    layers: Sequence[int]
    neutral: Sequence[str] = (NEUTRAL_TEXT,)
    injections: Sequence[str] = INJECTIONS
    embedding: bool = True
    transplant_sources: Sequence[int] = (0, 2)
    sweep_targets: Sequence[int] = ()
    sweep_sources: Sequence[int] = ()
    dose_layers: Sequence[int] = ()
    dose_scales: Sequence[float] = DEFAULT_DOSE
    random_control: bool = True
    slice_frac: float | None = 0.7
    seed: int = 0
    topk: int = 20
    on_short: str = "error"
    transplant_norm: str = "row"
    control_words: Sequence[str] = ()
    null_draws: int = 0
    null_draws_per_prompt: int = 0
    null_kinds: Sequence[str] = NULL_KINDS

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        prompts = _tuple(self.prompts, "prompts")
        if not prompts:
            raise ConfigError("The prompt set is empty: give at least one user prompt.")
        set_("prompts", tuple(text_list(prompts, "prompts")))
        neutral = _tuple(self.neutral, "neutral")
        set_("neutral", tuple(text_list(neutral, "neutral texts")) if neutral else ())
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
        if self.slice_frac is False:  # TOML has no None
            set_("slice_frac", None)
        if self.slice_frac is not None and not (
            isinstance(self.slice_frac, (int, float)) and 0 < self.slice_frac <= 1
        ):
            raise ConfigError(f"slice_frac must be in (0, 1] or None, got {self.slice_frac!r}.")
        if isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 1:
            raise ConfigError(f"topk must be a positive int, got {self.topk!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {self.seed!r}.")
        if self.transplant_norm not in TRANSPLANT_NORMS:
            raise ConfigError(
                f"transplant_norm must be one of {TRANSPLANT_NORMS}, got {self.transplant_norm!r}."
            )
        ctrl = _tuple(self.control_words, "control_words")
        set_("control_words", words(list(ctrl), "control_words") if ctrl else ())
        check_null_draws(self.null_draws, self.null_draws_per_prompt, "settings")
        kinds = _tuple(self.null_kinds, "null_kinds")
        if not kinds or any(k not in NULL_KINDS for k in kinds):
            raise ConfigError(
                f"null_kinds must be a non-empty subset of {NULL_KINDS}, got {kinds}."
            )
        set_("null_kinds", tuple(k for k in NULL_KINDS if k in kinds))
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

    def check_model(self, model: Model) -> None:
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


def check_null_draws(shared: Any, per_prompt: Any, where: str) -> None:
    """``null_draws`` and ``null_draws_per_prompt`` are ints >= 0, not both non-zero."""
    for name, v in (("null_draws", shared), ("null_draws_per_prompt", per_prompt)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{where}: {name} must be an int >= 0, got {v!r}.")
    if shared and per_prompt:
        raise ConfigError(
            f"{where}: give null_draws_per_prompt (each prompt its own draws) or null_draws "
            f"(every draw on every prompt), not both; got {per_prompt} and {shared}."
        )


def word_token_pool(model: Model, min_chars: int = 3) -> list[int]:
    """Ids of word-like tokens: a leading space then at least ``min_chars`` ASCII letters
    (the pool the embedding-difference null draws from); every id if fewer than 2 qualify."""
    tok = model.tokenizer
    pool = []
    if tok is not None:
        for piece, i in tok.get_vocab().items():
            word = tok.convert_tokens_to_string([piece])
            if (
                word.startswith(" ")
                and len(word) > min_chars
                and word[1:].isascii()
                and (word[1:].isalpha())
            ):
                pool.append(int(i))
    return sorted(pool) if len(pool) >= 2 else list(range(model.cfg.d_vocab))


def pairs_from_config(items: Sequence[dict[str, Any]]) -> list[PairSetting]:
    """:class:`PairSetting` objects from config tables: the pair's own keys
    (:data:`actadd.config.PAIR_KEYS`) plus ``name``, ``coeff``, ``target`` (a preset name or
    a word list), ``equalize`` and ``sum_with``."""
    if isinstance(items, dict) or not isinstance(items, Sequence) or not items:
        raise ConfigError("'pairs' must be a non-empty list of tables ([[pairs]] in TOML).")
    out = []
    for i, item in enumerate(items):
        where = f"pairs[{i}] ({item.get('name', '?')!r})" if isinstance(item, dict) else "pairs"
        check_keys(item, SETTING_KEYS, where, required=("name", "positive", "coeff", "target"))
        pair = Pair.parse({k: v for k, v in item.items() if k in PAIR_KEYS}, where)
        rest = {k: v for k, v in item.items() if k not in PAIR_KEYS and k != "target"}
        target = item["target"]
        out.append(
            PairSetting(
                pair=pair, target_words=target if isinstance(target, str) else tuple(target), **rest
            )
        )
    return out
