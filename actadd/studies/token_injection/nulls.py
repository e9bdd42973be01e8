"""The null vectors of the token-injection analysis, and how they are drawn.

A null is what a condition's effect is compared with when nothing about the pair should
matter: a random direction with ActAdd's per-row norms (:func:`random_like`), a draw from
the residual stream's distribution (:func:`residual_random_like`), a difference of two random
token embeddings (:func:`embedding_random_like`, from :func:`word_token_pool`), each
norm-matched per row (:func:`match_row_norms`). Draws come from seeded generators, never
global state: :func:`seed_of` makes a seed from a key, :func:`per_prompt_draws` gives every
prompt its own draws (the default design; see
:mod:`actadd.studies.token_injection.conditions`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from actadd.core.placement import Placement
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError, Validated
from actadd.runtime.backends import Model

__all__ = [
    "embedding_random_like",
    "match_row_norms",
    "per_prompt_draws",
    "random_like",
    "residual_random_like",
    "seed_of",
    "word_token_pool",
]


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
