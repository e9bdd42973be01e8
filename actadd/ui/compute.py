"""What a playground run computes, through the library's own calls and with no widgets.

- :func:`steering_vector` — the vector of a :class:`~actadd.ui.settings.Settings`: ActAdd's
  :meth:`~actadd.core.vectors.SteeringVector.from_pair` (its mean over the rows after the leading
  token for one-row alignments, as the sweep engine's ``actadd_mean``), or a dataset method
  of :mod:`actadd.core.methods`;
- :func:`run` — completions side by side (:func:`actadd.compare`, same seeds), the token
  strip (:meth:`actadd.Steering.applied` of a steered pass over the prompt), the top-k
  next-token shift and the vector's logit lens
  (:func:`actadd.core.diagnostics.logit_lens`);
- :func:`quick_map` — Δ log p(target words) over layers × coefficients through the sweep
  engine's next-token path (:func:`actadd.sweeps.execute`).

``checkpoint`` (called between stages) lets a caller stop a run that a newer request has
superseded; stages never stop inside a steering context, so no hook is left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from actadd.config import TOPIC_PRESETS, Pair
from actadd.core.diagnostics import logit_lens
from actadd.core.generation import compare
from actadd.core.methods import dataset_vectors
from actadd.core.steering import steering
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError
from actadd.runtime.forward import last_logits
from actadd.runtime.tokens import encode, single_token_id
from actadd.sweeps import SweepSpec, execute
from actadd.ui.settings import Settings

__all__ = [
    "SHIFT_POOL",
    "STAGES",
    "Result",
    "VectorCache",
    "map_spec",
    "next_token_shift",
    "quick_map",
    "run",
    "steering_vector",
    "token_strip",
]

# Stages of run(), in order: the progress indicator counts them.
STAGES: tuple[str, ...] = ("vector", "completions", "token strip", "next-token shift", "lens")
# The shift table looks at tokens in the top SHIFT_POOL of either distribution, so that a
# huge ratio between two negligible probabilities does not fill it.
SHIFT_POOL = 100


@dataclass
class Result:
    """One run's outputs. ``completions``: :func:`actadd.compare`'s table (``prompt,
    sample, unsteered, steered``); ``strip``: one row per prompt token (``position, token,
    norm``, the L2 norm added there, 0 where nothing landed); ``phase``: additions whose
    positions are decided during generation (``kind, norm``); ``shift``: the tokens whose
    next-token log-prob rose or fell most (``token, p_unsteered, p_steered, delta_logp``);
    ``kl``: KL(steered ‖ unsteered) of the next token; ``lens``: the logit lens."""

    settings: Settings
    vector: SteeringVector
    completions: pd.DataFrame
    strip: pd.DataFrame
    phase: pd.DataFrame
    shift: pd.DataFrame
    kl: float
    lens: pd.DataFrame
    notes: list[str] = field(default_factory=list)


class VectorCache:
    """Dataset-method vectors at coefficient 1 for every layer, built once per (method,
    dataset, position) and scaled per request (a CAA over 32 pairs is a forward pass of 64
    prompts; a pair's vector is one of two and is not cached)."""

    def __init__(self) -> None:
        self._unit: dict[tuple, dict[int, SteeringVector]] = {}

    def dataset(self, model: HookedTransformer, s: Settings) -> SteeringVector:
        key = (id(model), s.source, s.dataset, s.position)
        if key not in self._unit:
            self._unit[key] = dataset_vectors(
                model, s.dataset, "all", s.source, position=s.position
            )
        return self._unit[key][s.layer] * s.coeff


def steering_vector(
    model: HookedTransformer, s: Settings, cache: VectorCache | None = None
) -> SteeringVector:
    """The vector ``s`` describes, at ``s.layer`` with ``s.coeff``."""
    if s.source != "pair":
        return (cache or VectorCache()).dataset(model, s)
    v = SteeringVector.from_pair(
        model, s.positive, s.negative, s.layer, s.coeff, equalize=s.equalize, pad_token=s.pad_token
    )
    return v.mean(skip_first=True) if s.one_row_align else v


def _nothing() -> None:
    return None


def run(
    model: HookedTransformer,
    s: Settings,
    *,
    cache: VectorCache | None = None,
    checkpoint: Callable[[], None] = _nothing,
    progress: Callable[[str, int], None] | None = None,
) -> Result:
    """Everything the panel shows for ``s``. ``checkpoint()`` runs before each stage (it
    may raise to stop the run); ``progress(stage, i)`` reports the stage starting."""
    s.check(model)

    def stage(i: int) -> None:
        checkpoint()
        if progress is not None:
            progress(STAGES[i], i)

    stage(0)
    vector = steering_vector(model, s, cache)
    notes = []
    if s.source == "pair" and s.one_row_align:
        notes.append(
            f"align {s.align} takes one row: the pair's vector is its mean over the rows "
            "after the leading token"
        )
    stage(1)
    completions = compare(
        model,
        s.prompt,
        vector,
        s.align,
        n_samples=s.n_samples,
        seed=s.seed,
        sampling=s.sampling,
        max_new_tokens=s.max_new_tokens,
        progress=False,
    )
    stage(2)
    tokens = torch.tensor([encode(model, s.prompt)], device=model.cfg.device)
    with torch.no_grad():
        clean = last_logits(model, tokens)[0]
        with steering(model, vector, s.align) as ctx:
            steered = last_logits(model, tokens)[0]
    strip, phase = token_strip(model, tokens[0].tolist(), ctx.applied(), s)
    if s.parsed_align.kind == "generated":
        notes.append(
            "generated positions only: the first generated token is drawn from the prompt's "
            "logits, so the next-token shift is zero and the text changes from the second "
            "generated token on"
        )
    stage(3)
    shift, kl = next_token_shift(model, clean, steered, s.table_rows)
    stage(4)
    lens = logit_lens(model, vector, s.table_rows)
    return Result(s, vector, completions, strip, phase, shift, kl, lens, notes)


def token_strip(
    model: HookedTransformer, ids: list[int], applied: pd.DataFrame, s: Settings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The prompt's tokens with the norm added at each (``applied`` of a steered pass over
    the prompt alone), and the additions placed during generation."""
    norms = [0.0] * len(ids)
    at = applied[applied.position >= 0]
    for p, n in zip(at.position, at.norm):
        norms[int(p)] += float(n)
    later = applied[applied.position < 0]
    for kind, n in zip(later.kind, later.norm):
        if kind == "all":  # every position, the prompt's included
            norms = [x + float(n) for x in norms]
        elif kind.startswith("from:"):  # from the marker's first position in the prompt on
            marker = single_token_id(model, s.parsed_align.marker, "marker token")
            if marker in ids:
                first = ids.index(marker)
                norms = [x + float(n) * (i >= first) for i, x in enumerate(norms)]
    strip = pd.DataFrame(
        dict(
            position=range(len(ids)),
            token=[model.to_string([t]) for t in ids],
            norm=norms,
        )
    )
    return strip, later[["kind", "norm"]].reset_index(drop=True)


def next_token_shift(
    model: HookedTransformer, clean: torch.Tensor, steered: torch.Tensor, k: int
) -> tuple[pd.DataFrame, float]:
    """The ``k`` tokens whose next-token log-prob rose most and the ``k`` that fell most
    (among the top :data:`SHIFT_POOL` of either distribution), and KL(steered ‖ clean)."""
    lp_clean = torch.log_softmax(clean.float(), -1)
    lp_steer = torch.log_softmax(steered.float(), -1)
    pool = torch.cat([lp_clean.topk(SHIFT_POOL).indices, lp_steer.topk(SHIFT_POOL).indices])
    pool = pool.unique()
    delta = (lp_steer - lp_clean)[pool]
    order = delta.argsort(descending=True).tolist()
    picks = order[:k] + [i for i in order[::-1][:k] if i not in order[:k]]
    ids = pool[picks].tolist()
    shift = pd.DataFrame(
        dict(
            token=[model.to_string([t]) for t in ids],
            token_id=ids,
            p_unsteered=lp_clean[ids].exp().tolist(),
            p_steered=lp_steer[ids].exp().tolist(),
            delta_logp=(lp_steer - lp_clean)[ids].tolist(),
        )
    )
    kl = float((lp_steer.exp() * (lp_steer - lp_clean)).sum())
    return shift, kl


def map_spec(s: Settings, n_layers: int) -> SweepSpec:
    """The quick map as a sweep: one prompt, the settings' pair (or dataset method), pair
    rule and alignment, ``map_layers`` × ``map_coeffs``, next-token metrics only."""
    if s.parsed_align.kind == "generated":
        raise SteeringError(
            "The quick map measures the next token, which generated/generated:k never moves "
            "(it is drawn from the prompt's logits): pick a prompt alignment or all."
        )
    if s.parsed_align.kind == "from":
        # the engine's next-token path starts mid-stack from a shared clean residual, where
        # the steering context cannot see tokens to find the marker (a SteeringError deep in
        # the engine otherwise)
        raise SteeringError(
            "The quick map cannot place from:<token> (the sweep engine's next-token path "
            "starts mid-stack and never sees the marker): pick a prompt alignment or all."
        )
    if s.source == "pair":
        methods = ("actadd_mean",) if s.one_row_align else ("actadd",)
        pair = Pair(s.positive, s.negative, pad_token=s.pad_token)
    else:
        methods, pair = (s.source,), Pair("+", "-")  # the pair is unused by dataset methods
    words = s.target_words.strip()
    return SweepSpec(
        name="playground-map",
        pairs=(pair,),
        layers=tuple(s.layers_for_map(n_layers)),
        coeffs=tuple(float(c) for c in s.map_coeffs),
        prompts=(s.prompt,),
        aligns=(s.align,),
        equalize=(s.equalize,),
        target_words=words if words in TOPIC_PRESETS else s.words,
        neutral_texts=(),
        methods=methods,
        dataset=None if s.source == "pair" else s.dataset,
        position=s.position,
    )


def quick_map(model: HookedTransformer, s: Settings) -> pd.DataFrame:
    """Δ log p(target words) at the next token, layers (index) × coefficients (columns),
    from the sweep engine's batched next-token path (one forward per layer)."""
    s.check_map(model)
    spec = map_spec(s, model.cfg.n_layers)
    spec.validate(model)
    df = execute(spec, model, progress=False)
    delta = df[(df.metric == "target_logprob_delta") & (df.layer >= 0)]
    grid = delta.pivot_table(index="layer", columns="coeff", values="value", aggfunc="mean")
    return grid.reindex(index=spec.layer_list(model.cfg.n_layers), columns=list(spec.coeffs))
