"""Next-token forwards of the token-injection study, batched from the clean prefix.

:class:`PromptBatch` holds the prompts (unpadded, grouped by length) with their clean
residual streams; every steered condition is a set of rows of one batched forward from the
clean prefix (:class:`actadd.core.prefix.PrefixBatch`). Token injections are plain forwards on
the injected token lists (:func:`next_token_logprobs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from actadd.config import text_list
from actadd.core.metrics import log_probs
from actadd.core.prefix import Condition, PrefixBatch
from actadd.core.steering import AlignLike, OnShort, Placement, as_placement
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError
from actadd.runtime.backends import Model
from actadd.runtime.tokens import encode

__all__ = ["PromptBatch", "next_token_logprobs"]


def _placed(vectors: Condition, align: AlignLike) -> list[Placement]:
    """A condition's vectors with ``align`` as their default alignment."""
    if vectors is None:
        return []
    items = [vectors] if isinstance(vectors, (SteeringVector, Placement)) else list(vectors)
    placed = [as_placement(v) for v in items]
    return [p if p.align is not None else Placement(p.vector, align, p.rows) for p in placed]


@torch.no_grad()
def next_token_logprobs(
    model: Model,
    token_lists: Sequence[Sequence[int]],
    vectors: Condition = None,
    *,
    align: AlignLike = "front",
    on_short: OnShort = "error",
) -> Float[Tensor, "batch d_vocab"]:
    """Log-probabilities of the next token after each token list, steered by ``vectors``
    if given. Lists of equal length share a forward pass; none is padded, so each row is
    a plain forward on that token list (up to float rounding)."""
    if not len(token_lists) or any(len(t) == 0 for t in token_lists):
        raise SteeringError("next_token_logprobs needs at least one non-empty token list.")
    batch = PrefixBatch(model, token_lists, padding="by_length", max_rows=128)
    (logits,) = batch.logits([_placed(vectors, align)], on_short=on_short)
    return log_probs(logits).cpu()


class PromptBatch(PrefixBatch):
    """Prompts (leading token first, grouped by length, never padded) with their clean
    residual streams at every layer, read out as next-token log-probs on the CPU.

    Attributes:
        texts, token_lists: the texts and their ids.
        base: unsteered next-token log-probs, ``[n_texts, d_vocab]``.
    """

    def __init__(self, model: Model, texts: Sequence[str]) -> None:
        self.texts = text_list(texts, "prompts")
        self.token_lists = [encode(model, t) for t in self.texts]
        super().__init__(model, self.token_lists, padding="by_length", max_rows=128)
        self.prefetch(range(model.cfg.n_layers + 1))
        self.base = log_probs(self.clean).cpu()

    def logprobs(
        self, vectors: Condition = None, *, align: AlignLike = "front", on_short: OnShort = "error"
    ) -> Float[Tensor, "n_texts d_vocab"]:
        """Next-token log-probs at the end of every text, steered by ``vectors``."""
        return self.logprobs_many([vectors], align=align, on_short=on_short)[0]

    def logprobs_many(
        self,
        conditions: Sequence[Condition],
        *,
        align: AlignLike = "front",
        on_short: OnShort = "error",
    ) -> list[Float[Tensor, "n_texts d_vocab"]]:
        """:meth:`logprobs` for each condition (a vector, a list of vectors, or ``None``),
        all conditions batched from the clean prefix."""
        placed = [_placed(c, align) for c in conditions]
        return [log_probs(x).cpu() for x in self.logits(placed, on_short=on_short)]


def _text_resid(pb: PrefixBatch, layer: int) -> list[Tensor]:
    """Each text's clean ``resid_pre`` at ``layer``, ``[pos, d_model]``, in text order."""
    out: list[Tensor | None] = [None] * pb.n
    for g, r in zip(pb.groups, pb.resid(layer)):
        for row, t in enumerate(g.index):
            out[t] = r[row]
    return out
