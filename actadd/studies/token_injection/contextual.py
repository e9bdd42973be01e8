"""The contextual difference: ActAdd's difference, taken in the prompt's own context.

ActAdd adds ``v = c · (h_L([BOS] + p+) − h_L([BOS] + p−))`` at the front rows ``[0, k)`` of
a prompt. Its difference is *context-free*: both arms are read right after the leading
token. The **contextual difference** of prompt ``x`` (``n`` tokens, leading token first) is
the same difference with the arms read *after the prompt*::

    d_x = c · (h_L(x + p+)[n : n + k − 1] − h_L(x + p−)[n : n + k − 1])

with a zero row on top for the leading token (ActAdd's row 0 is zero too). ``p±`` are the
pair's aligned arms (:func:`~actadd.studies.token_injection.conditions.aligned_arms`): the
very tokens ActAdd's vector is made of, its pad included (``" w" − ""`` with pad ``" a"`` is
``" w"`` against ``" a"``). ``d_x`` is added where ActAdd adds: resid_pre of layer ``L``,
front alignment, positions ``[0, k)`` of ``x`` itself. It replaces no token; every prompt
gets its own ``d_x`` (:func:`contextual_placements`).

**Why after the prompt.** Attention is causal: the residual at a position depends only on
the tokens up to it. Reading the arms at the front of the prompt (``p±`` inserted after the
leading token) gives, at rows ``[0, k)``, exactly ActAdd's vector: the prompt comes after
those rows and cannot reach them (:func:`contextual_difference` with ``context="front"``
shows it; a test checks the identity). The prompt's context reaches an arm's rows only when
the prompt precedes the arm, so the arms are read after the whole prompt: each row is what
``w`` is at layer ``L`` once the model has read the prompt, minus what the pad is there.
Where a row is *added* stays ActAdd's, so the two conditions differ in one thing: the context
the difference was taken in. The arms are ActAdd's own token ids, so an arm written without a
leading space (``"Anger"``, ``"Love"``) follows the prompt's last word with no space between
them; the one-word concepts ``" w"`` and ``" bride and groom"`` read as a next word.

**What it separates.** The replacement (``inject_replace``: ``p+``'s tokens over the
prompt's first tokens) differs from ActAdd in three ways: the replaced prompt tokens are gone;
``w`` is read in context (the rest of the prompt integrates it); and that happens from layer
0, not only from ``L`` (``visible_replace``, the tokens hidden below ``L``, isolates the
last). The contextual difference keeps every token and adds only at ``L``, as ActAdd does,
but its rows carry the prompt's context. If ActAdd falls short of the tokens because its
vector misses the context, the contextual difference moves the next-token distribution
closer to the replacement's than ActAdd does (Jensen–Shannon divergence ``js_replace``, top-k
agreement, target log-prob, topic rates of sampled text); if it stays as far, the shortfall
lies in what the tokens do beyond carrying context: the replaced token is gone, or the tokens
act below ``L``. Its size differs from ActAdd's, so ``ctxdiff_normed`` — the contextual
difference rescaled row by row to ActAdd's row norms
(:func:`~actadd.studies.token_injection.nulls.match_row_norms`): the direction from the
context, the size from ActAdd — separates a change of direction from a change of size, and
meets the same residual-distribution nulls as ActAdd (norm-matched per row to ActAdd). At
``L = 0`` the contextual difference is ActAdd's vector (``resid_pre`` of layer 0 is the
embedding, which has no context); the claims leave that layer out of the comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Placement
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError, Validated
from actadd.runtime.backends import Model
from actadd.studies.token_injection.conditions import PairSetting, aligned_arms, place_ids
from actadd.studies.token_injection.forwards import _text_resid
from actadd.studies.token_injection.nulls import match_row_norms

__all__ = [
    "CONTEXTS",
    "ContextSource",
    "contextual_difference",
    "contextual_placements",
]

#: where the arms are read: after the prompt (the contextual difference), or right after
#: the leading token with the prompt following ("front": ActAdd's rows, by causality)
CONTEXTS: tuple[str, ...] = ("after_prompt", "front")


class ContextSource:
    """Every prompt with each of a pair's aligned arms read in its context, with their
    residual streams at ``layers``: the source of the contextual differences.

    Args:
        model: the model.
        token_lists: the prompts' ids, leading token first.
        plus, minus: the aligned arms (equal length ``k − 1``, no leading token).
        layers: the layers whose residual streams are kept.
        context: ``"after_prompt"`` (the arms after the whole prompt) or ``"front"`` (the
            arms right after the leading token, the prompt after them).
    """

    def __init__(
        self,
        model: Model,
        token_lists: Sequence[Sequence[int]],
        plus: Sequence[int],
        minus: Sequence[int],
        layers: Sequence[int],
        *,
        context: Validated[Literal["after_prompt", "front"]] = "after_prompt",
    ) -> None:
        if context not in CONTEXTS:
            raise SteeringError(f"Unknown context {context!r}; allowed: {CONTEXTS}.")
        if len(plus) != len(minus) or not len(plus):
            raise SteeringError(
                f"The aligned arms must have one equal, non-zero length; got {len(plus)} and "
                f"{len(minus)} tokens."
            )
        self.model, self.context, self.width = model, context, len(plus)
        self.lengths = [len(t) for t in token_lists]
        batches = []
        for arm in (plus, minus):
            if context == "after_prompt":
                lists = [list(t) + list(arm) for t in token_lists]
            else:
                lists = [place_ids(t, arm, "insert") for t in token_lists]
            pb = PrefixBatch(model, lists, padding="by_length", max_rows=128)
            pb.prefetch(layers)
            batches.append(pb)
        self.plus, self.minus = batches

    def rows(self, layer: int) -> list[Float[Tensor, "k d_model"]]:
        """Each prompt's difference at ``layer`` (coefficient 1): a zero row for the leading
        token, then the ``k − 1`` arm rows of ``h_L(· + p+) − h_L(· + p−)``."""
        out = []
        for n, a, b in zip(
            self.lengths, _text_resid(self.plus, layer), _text_resid(self.minus, layer)
        ):
            start = n if self.context == "after_prompt" else 1
            diff = a[start : start + self.width] - b[start : start + self.width]
            out.append(torch.cat([torch.zeros_like(diff[:1]), diff]))
        return out


def contextual_difference(
    model: Model,
    token_lists: Sequence[Sequence[int]],
    pair: PairSetting,
    layer: int,
    *,
    coeff: float | None = None,
    context: Validated[Literal["after_prompt", "front"]] = "after_prompt",
    source: ContextSource | None = None,
) -> list[SteeringVector]:
    """Each prompt's contextual difference at ``layer`` (module docstring): one
    :class:`~actadd.core.vectors.SteeringVector` of ActAdd's shape ``[k, d_model]`` per token
    list, times ``coeff`` (default: the pair's). ``source`` reuses a
    :class:`ContextSource` built for this pair and these prompts."""
    if source is None:
        plus, minus = aligned_arms(
            model, pair.positive, pair.negative, pair.equalize, pair.pad_token
        )
        source = ContextSource(model, token_lists, plus, minus, [layer], context=context)
    c = float(pair.coeff if coeff is None else coeff)
    return [
        SteeringVector.from_tensor(
            c * rows, layer, model.cfg.model_name, description="contextual_difference"
        ).with_label(f"contextual difference of {pair.name} ×{c:g}")
        for rows in source.rows(layer)
    ]


def contextual_placements(
    vectors: Sequence[SteeringVector], reference: SteeringVector | None = None
) -> list[Placement]:
    """Text ``i``'s vector on batch row ``i``, front alignment; with ``reference`` (ActAdd's
    vector at the same layer and coefficient), each rescaled row by row to the reference's
    row norms (the ``ctxdiff_normed`` condition)."""
    out = []
    for i, vec in enumerate(vectors):
        if reference is not None:
            vec = match_row_norms(vec, reference)
        out.append(Placement(vec, "front", (i,)))
    return out
