"""The conditions of the token-injection analysis.

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
``ctxdiff``                 *contextual difference*: ``c · (h_L(x + p+) − h_L(x + p−))`` at the
                            arms' rows, the arms read after each prompt ``x``, added at ActAdd's
                            rows of ``x`` without replacing a token (:mod:`.contextual`)
``ctxdiff_normed``          the contextual difference at ActAdd's row norms
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
token injections are token id lists (:func:`inject_tokens`). The null vectors and their
sampling are in :mod:`actadd.studies.token_injection.nulls`; what a run is told
(:class:`~actadd.studies.token_injection.settings.PairSetting`, a pair with its coefficient
and target words, and :class:`~actadd.studies.token_injection.settings.Settings`, what a run
compares) in :mod:`actadd.studies.token_injection.settings`. Both are re-exported here, the
module their names were first imported from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from actadd.core.diagnostics import typical_norm
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError, Validated
from actadd.runtime.backends import Model
from actadd.runtime.hooks import attn_scores, check_layer
from actadd.runtime.modellock import exclusive
from actadd.runtime.tokens import Equalize, encode, pair_token_ids
from actadd.studies.token_injection import nulls, settings

# re-exported: the names this module held before the split (the old import path)
from actadd.studies.token_injection.nulls import *  # noqa: F403
from actadd.studies.token_injection.settings import *  # noqa: F403
from actadd.studies.token_injection.settings import INJECTION_MODES

__all__ = [
    "aligned_arms",
    "dim_slice",
    "embedding_vector",
    "hidden_below",
    "inject_tokens",
    "place_ids",
    "transplant_vector",
    *nulls.__all__,
    *settings.__all__,
]


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
        return place_ids(ids, extra, "insert")
    if mode == "append":
        return ids + extra
    return place_ids(ids, extra, "replace")


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
