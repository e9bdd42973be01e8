"""How a condition's next-token distribution differs from its baseline and from the references.

Metrics per condition and prompt (:func:`effect_metrics`): ``kl`` = KL(condition ‖ baseline),
``target_logprob_delta`` = change of the log-probability mass on the pair's target words,
``effect_corr`` = Pearson correlation over the vocabulary of the condition's log-prob shift with
ActAdd's shift, ``topk_overlap`` = overlap of the ``k`` most-promoted tokens (largest shift) with
ActAdd's, ``inject_corr`` = correlation of the shift with that of prepending p+. Any
perturbation of the front positions shares a generic component of the shift, so the
correlations have a floor well above 0: read them against the nulls'.

Distance to the tokens actually present (p+'s tokens at the vector's positions, the
``replace`` injection): ``js_replace`` = Jensen–Shannon divergence (nats, at most ln 2) of
the condition's next-token distribution from the replacement's, ``js_replace_base`` = the same
for the condition's baseline (how far there was to go), ``topk_replace`` = overlap of the ``k``
most-promoted tokens with the replacement's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from actadd.core.metrics import kl_div, logprob_mass
from actadd.core.metrics import topk_overlap as _topk_overlap
from actadd.errors import SteeringError
from actadd.lab.stats import pearson

__all__ = ["effect_metrics", "js_divergence"]

#: the columns of :func:`effect_metrics` that need a comparison (``ref``, ``inject``,
#: ``replace``, ``control_ids``): NaN where it is not given
_COMPARISONS = (
    "effect_corr",
    "topk_overlap",
    "inject_corr",
    "replace_corr",
    "js_replace",
    "js_replace_base",
    "topk_replace",
    "control_logprob_delta",
    "target_vs_control",
)


def js_divergence(
    logp: Float[Tensor, "... d_vocab"], logq: Float[Tensor, "... d_vocab"]
) -> Float[Tensor, "..."]:
    """Jensen–Shannon divergence (nats) of two distributions given as log-probs: the mean
    KL of each from their mixture; symmetric, 0 for equal distributions, at most ln 2."""
    logm = torch.logaddexp(logp, logq) - math.log(2.0)

    def kl(a: Tensor) -> Tensor:
        return (a.exp() * (a - logm)).nan_to_num(0.0).sum(-1)  # 0 · log 0 = 0

    return (0.5 * (kl(logp) + kl(logq))).clamp_min(0.0)


def effect_metrics(
    base: Float[Tensor, "batch d_vocab"],
    cond: Float[Tensor, "batch d_vocab"],
    target_ids: Sequence[int],
    *,
    ref: tuple[Tensor, Tensor] | None = None,
    inject: tuple[Tensor, Tensor] | None = None,
    replace: tuple[Tensor, Tensor] | None = None,
    control_ids: Sequence[int] = (),
    k: int = 20,
) -> dict[str, np.ndarray]:
    """Per-row effect of a condition, from next-token log-probs ``[batch, d_vocab]``.

    ``cond`` is compared with its baseline ``base``; ``ref``, ``inject`` and ``replace`` are
    ``(baseline, condition)`` pairs whose log-prob shifts the condition's shift is compared
    with (ActAdd, prepending p+, and p+'s tokens at the vector's own positions). Returns
    arrays of length ``batch``: ``kl``, ``target_logprob_delta``, ``effect_corr``,
    ``topk_overlap``, ``inject_corr``, ``replace_corr``, ``js_replace``,
    ``js_replace_base``, ``topk_replace`` (module docstring), and with ``control_ids``
    ``control_logprob_delta`` and ``target_vs_control`` (target change minus the control
    set's); NaN where a comparison is not given or a shift is exactly zero.
    """
    if base.shape != cond.shape:
        raise SteeringError(f"shape mismatch: {tuple(base.shape)} vs {tuple(cond.shape)}.")
    delta = cond - base
    nan = np.full(base.shape[0], np.nan)

    def mass_delta(ids: Sequence[int]) -> np.ndarray:
        return (logprob_mass(cond, ids) - logprob_mass(base, ids)).cpu().numpy()

    out = dict(
        kl=kl_div(cond, base).cpu().numpy(),
        target_logprob_delta=mass_delta(target_ids),
        **dict.fromkeys(_COMPARISONS, nan),
    )
    if ref is not None:
        ref_delta = ref[1] - ref[0]
        out["effect_corr"] = pearson(delta, ref_delta).cpu().numpy()
        out["topk_overlap"] = _topk_overlap(delta, ref_delta, k).cpu().numpy()
    if inject is not None:
        out["inject_corr"] = pearson(delta, inject[1] - inject[0]).cpu().numpy()
    if replace is not None:
        out["replace_corr"] = pearson(delta, replace[1] - replace[0]).cpu().numpy()
        out["js_replace"] = js_divergence(cond, replace[1]).cpu().numpy()
        out["js_replace_base"] = js_divergence(base, replace[1]).cpu().numpy()
        out["topk_replace"] = _topk_overlap(delta, replace[1] - replace[0], k).cpu().numpy()
    if len(control_ids):
        out["control_logprob_delta"] = mass_delta(control_ids)
        out["target_vs_control"] = out["target_logprob_delta"] - out["control_logprob_delta"]
    return out
