"""The pad confound: which token pads the shorter prompt of a pair, and what its row carries.

ActAdd makes the two prompts of a pair the same length by padding the shorter one (the
paper pads with ``" "``). On SmolLM2 a lone ``" "`` becomes a massive-activation position at
L3–9, so the pad row of the vector, ``h(p+)[row] − h(pad)``, is dominated by it. This module
holds the instruments that test that confound:

- :func:`pair_tokens` — a pair's aligned tokens and which rows are padding (on which side);
- :func:`pair_residuals` / :func:`ordinary_stats` — the pair's residual rows, and the mean
  and mean-absolute residual of ordinary (non-leading) prompt positions at a layer;
- :func:`surgery_vectors` — the vector with the pad rows' residual operated on before the
  difference is taken: ``"zero_massive"`` zeroes the massive dimensions of each pad row,
  ``"mean_row"`` replaces the row by the mean ordinary-token residual;
- :func:`effect_rows` — next-token Δ log p of target words minus that of control words, for
  many vectors at one layer in one :class:`~actadd.core.prefix.PrefixBatch` forward;
- :func:`attention_to` — per layer and head, the attention mass later positions put on one
  key position, optionally under steering (TransformerLens ``hook_pattern``);
- :func:`norm_regression` — the slope of effect on pad-row norm within strata (pair, layer),
  with a bootstrap interval over pads and a permutation p-value over pads;
- :func:`recommend_pad` — the pre-stated rule that picks a model's default pad.

The experiment that runs them is the ``pad_confound`` kind
(:mod:`actadd.studies.pad_confound.kind`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from actadd.config import Pair
from actadd.core.metrics import kl_div, logprob_mass
from actadd.core.prefix import PrefixBatch
from actadd.core.steering import Align, Placement, steering
from actadd.core.vectors import SteeringVector
from actadd.errors import SteeringError
from actadd.runtime.backends import Model
from actadd.runtime.forward import real_positions, residuals
from actadd.runtime.hooks import attn_pattern, resid_pre
from actadd.runtime.tokens import encode, pair_token_ids
from actadd.studies.pad_confound.config import SURGERY_METHODS

__all__ = [
    "PLAIN",
    "SURGERY_METHODS",
    "OrdinaryStats",
    "PairTokens",
    "attention_to",
    "effect_rows",
    "massive_dims",
    "norm_regression",
    "operate_rows",
    "ordinary_stats",
    "pad_ranking",
    "pad_row_norms",
    "pair_residuals",
    "pair_tokens",
    "recommend_pad",
    "surgery_vectors",
]

PLAIN = "plain"


@dataclass(frozen=True)
class PairTokens:
    """A pair's two aligned, leading-token-prefixed id lists and its padding.

    ``pad_rows`` are the rows where one side is padding; ``padded_side`` is 0 when the
    positive prompt was padded, 1 when the negative one was (``-1``: no padding)."""

    positive: list[int]
    negative: list[int]
    pad_rows: tuple[int, ...]
    padded_side: int


def pair_tokens(
    model: Model, pair: Pair, pad_token: str | int, equalize: str = "right"
) -> PairTokens:
    """The tokens :meth:`SteeringVector.from_pair` takes the difference of, and which rows
    are padding (``equalize`` ``"right"`` or ``"left"``)."""
    if equalize not in ("right", "left"):
        raise SteeringError(f"pad rows exist for equalize 'right' or 'left', not {equalize!r}.")
    pos, neg = pair_token_ids(model, pair.positive, pair.negative, equalize, pad_token)
    lens = [
        len(encode(model, t, prepend_bos=True, truncate=False))
        for t in (pair.positive, pair.negative)
    ]
    short = min(lens)
    n = len(pos)
    if lens[0] == lens[1]:
        return PairTokens(pos, neg, (), -1)
    rows = range(short, n) if equalize == "right" else range(1, 1 + n - short)
    return PairTokens(pos, neg, tuple(rows), 0 if lens[0] < lens[1] else 1)


@torch.no_grad()
def pair_residuals(
    model: Model, tokens: PairTokens, layers: Sequence[int]
) -> dict[int, Float[Tensor, "2 pos d_model"]]:
    """``{layer: resid_pre [2, k, d_model]}`` of the positive (row 0) and negative (row 1)
    sides of a pair, from one forward pass."""
    t = torch.tensor([tokens.positive, tokens.negative], device=model.cfg.device)
    return residuals(model, t, layers)


@dataclass(frozen=True)
class OrdinaryStats:
    """Residual statistics of ordinary positions (real, non-leading prompt tokens) at a layer:
    the mean residual ``mean`` [d_model], the mean absolute value per dimension ``abs_mean``
    [d_model] and the mean row norm ``norm``."""

    mean: Float[Tensor, " d_model"]
    abs_mean: Float[Tensor, " d_model"]
    norm: float


def ordinary_stats(batch: PrefixBatch, layer: int) -> OrdinaryStats:
    """:class:`OrdinaryStats` of a left-padded :class:`PrefixBatch`'s texts at ``layer``."""
    (resid,) = batch.resid(layer)
    rows = resid[real_positions(batch.mask, skip_leading=True).to(resid.device)]
    if not len(rows):
        raise SteeringError("ordinary_stats needs texts of at least two tokens.")
    return OrdinaryStats(rows.mean(0), rows.abs().mean(0), float(rows.norm(dim=-1).mean()))


def massive_dims(row: Float[Tensor, " d_model"], stats: OrdinaryStats, ratio: float) -> Tensor:
    """The massive dimensions of a row: none when its norm is at most ``ratio`` × the
    ordinary norm; otherwise the fewest dimensions, taken in order of their excess
    ``|row| − mean |h|`` over ordinary positions, whose removal brings the row's norm down
    to at most ``ratio`` × the ordinary norm."""
    limit = ratio * stats.norm
    if float(row.norm()) <= limit:
        return torch.zeros(0, dtype=torch.long, device=row.device)
    order = torch.argsort(row.abs() - stats.abs_mean.to(row.device), descending=True)
    energy = row[order].double() ** 2
    left = energy.sum() - torch.cumsum(energy, 0)
    k = int(torch.nonzero(left <= limit**2, as_tuple=True)[0][0]) + 1
    return order[:k]


def operate_rows(
    resid: Float[Tensor, "pos d_model"],
    rows: Sequence[int],
    method: str,
    stats: OrdinaryStats,
    ratio: float,
) -> tuple[Tensor, list[int]]:
    """A copy of ``resid`` with ``rows`` operated on; returns it and how many dimensions of
    each row were changed. ``"zero_massive"``: the massive dimensions (:func:`massive_dims`)
    of each row set to 0, every other value kept; ``"mean_row"``: each row replaced by the
    mean ordinary residual."""
    if method not in SURGERY_METHODS:
        raise SteeringError(f"surgery method {method!r} unknown; allowed: {SURGERY_METHODS}.")
    out = resid.clone()
    changed = []
    for r in rows:
        if method == "zero_massive":
            dims = massive_dims(resid[r], stats, ratio)
            out[r, dims] = 0.0
            changed.append(len(dims))
        else:
            out[r] = stats.mean.to(out.dtype)
            changed.append(resid.shape[-1])
    return out, changed


def surgery_vectors(
    model: Model,
    pair: Pair,
    layers: Sequence[int],
    coeff: float,
    pad_token: str | int,
    method: str,
    stats: Mapping[int, OrdinaryStats],
    *,
    ratio: float = 2.0,
    equalize: str = "right",
) -> tuple[dict[int, SteeringVector], pd.DataFrame]:
    """``coeff · (h_L(p+) − h_L(p−))`` with the padded side's pad rows operated on (see
    :func:`operate_rows`) before the difference; every non-pad row equals the plain ActAdd
    vector's. Returns ``{layer: vector}`` and a table per (layer, row) of the pad row's norm
    before and after and the number of dimensions changed."""
    tokens = pair_tokens(model, pair, pad_token, equalize)
    if tokens.padded_side < 0:
        raise SteeringError(f"pair {pair.name} needs no padding: nothing to operate on.")
    acts = pair_residuals(model, tokens, layers)
    out, info = {}, []
    for layer in layers:
        sides = acts[layer].clone()
        side = sides[tokens.padded_side].clone()
        new, changed = operate_rows(side, tokens.pad_rows, method, stats[layer], ratio)
        sides[tokens.padded_side] = new
        prov = {
            "kind": "pad_surgery",
            "method": method,
            "massive_ratio": ratio,
            "positive": pair.positive,
            "negative": pair.negative,
            "pad_token": pad_token,
            "pad_rows": list(tokens.pad_rows),
            "coeff": coeff,
        }
        out[layer] = SteeringVector(
            coeff * (sides[0] - sides[1]), layer, model.cfg.model_name, prov
        )
        for r, n in zip(tokens.pad_rows, changed):
            info.append(
                dict(
                    layer=layer,
                    row=r,
                    method=method,
                    dims_changed=n,
                    norm_before=float(side[r].norm()),
                    norm_after=float(new[r].norm()),
                )
            )
    return out, pd.DataFrame(info)


def pad_row_norms(
    model: Model, pair: Pair, pad_token: str | int, layers: Sequence[int]
) -> dict[int, float]:
    """``{layer: mean residual norm of the pair's pad rows on the padded side}``."""
    tokens = pair_tokens(model, pair, pad_token)
    if tokens.padded_side < 0:
        raise SteeringError(f"pair {pair.name} needs no padding: it has no pad rows.")
    acts = pair_residuals(model, tokens, layers)
    rows = list(tokens.pad_rows)
    return {
        layer: float(acts[layer][tokens.padded_side, rows].norm(dim=-1).mean()) for layer in layers
    }


@torch.no_grad()
def effect_rows(
    batch: PrefixBatch,
    vectors: Sequence[SteeringVector],
    target_ids: Sequence[int],
    control_ids: Sequence[int],
) -> list[dict]:
    """For each vector (front-aligned, all at one layer or not) and each text of ``batch``:
    ``target_delta`` and ``control_delta`` (Δ log p of the target and control word sets
    against unsteered, nats), ``effect`` (their difference) and ``kl`` of the next token.
    One :meth:`PrefixBatch.logits` call for all vectors. Rows carry ``condition`` (the
    vector's index) and ``prompt_index``."""
    clean = batch.clean
    t0, c0 = logprob_mass(clean, target_ids), logprob_mass(clean, control_ids)
    conds = [Placement(v, Align.parse("front")) for v in vectors]
    out = []
    for i, logits in enumerate(batch.logits(conds)):
        dt = logprob_mass(logits, target_ids) - t0
        dc = logprob_mass(logits, control_ids) - c0
        kl = kl_div(logits, clean)
        for j in range(batch.n):
            out.append(
                dict(
                    condition=i,
                    prompt_index=j,
                    target_delta=float(dt[j]),
                    control_delta=float(dc[j]),
                    effect=float(dt[j] - dc[j]),
                    kl=float(kl[j]),
                )
            )
    return out


@torch.no_grad()
def attention_to(
    model: Model,
    tokens: Sequence[Sequence[int]],
    key: int,
    placements: Sequence[Placement] = (),
    *,
    layers: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Attention mass on key position ``key`` and on position 0 (the leading token), and the
    residual norm at ``key``, for token lists of one length.

    Returns ``{"key": [batch, layer, head], "first": [batch, layer, head],
    "key_norm": [batch, layer]}``: the mass is the mean over every query position after
    ``key`` of the softmax weight on the key (a sink gets most of each query's mass);
    ``key_norm`` is the ``resid_pre`` norm at ``key``. With ``placements`` the forward runs
    inside one :func:`actadd.steering` context (rows as the placements say); hooks are
    removed on exit, errors included.
    """
    lengths = {len(t) for t in tokens}
    if len(lengths) != 1:
        raise SteeringError(f"attention_to needs token lists of one length, got {lengths}.")
    (n,) = lengths
    if not 0 <= key < n - 1:
        raise SteeringError(f"key position {key} must have a later position (length {n}).")
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    pat = [attn_pattern(model, layer) for layer in layers]
    res = [resid_pre(model, layer) for layer in layers]
    x = torch.tensor([list(t) for t in tokens], device=model.cfg.device)
    with steering(model, list(placements)):
        _, cache = model.run_with_cache(x, names_filter=pat + res, stop_at_layer=max(layers) + 1)
    on_key = torch.stack([cache[p][:, :, key + 1 :, key].mean(-1) for p in pat], 1)
    on_first = torch.stack([cache[p][:, :, key + 1 :, 0].mean(-1) for p in pat], 1)
    norms = torch.stack([cache[r][:, key].norm(dim=-1) for r in res], 1)
    return {
        "key": on_key.float().cpu().numpy(),
        "first": on_first.float().cpu().numpy(),
        "key_norm": norms.float().cpu().numpy(),
    }


# ---------------------------------------------------------------------- statistics


def norm_regression(
    cells: pd.DataFrame,
    *,
    x: str = "log2_norm_ratio",
    y: str = "effect",
    strata: Sequence[str] = ("pair", "layer"),
    unit: str = "pad",
    scale: float = 1.0,
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Slope of ``y`` on ``x / scale`` within ``strata`` (fixed effects: both demeaned in
    each stratum), over cells with one row per (stratum, unit).

    Returns ``slope`` (change in ``y`` per ``scale`` of ``x``), its 95% bootstrap interval
    ``lo, hi`` (units resampled with replacement, demeaned values kept), the partial
    correlation ``r``, the permutation ``p`` (the same random relabelling of units applied
    to ``x`` in every stratum, so a unit's ``x`` profile across strata moves as a whole;
    two-sided, +1 corrected), ``n_cells``, ``n_units`` and ``n_strata``.
    """
    strata = list(strata)
    d = cells[[*strata, unit, x, y]].dropna()
    units = sorted(d[unit].unique())
    if len(units) < 3:
        raise ValueError(f"norm_regression needs at least 3 {unit}s, got {len(units)}")
    key = d[strata].astype(str).agg("|".join, axis=1)
    xs = d.pivot_table(index=key, columns=unit, values=x, aggfunc="mean") / scale
    ys = d.pivot_table(index=key, columns=unit, values=y, aggfunc="mean")
    full = xs.notna().all(axis=1) & ys.notna().all(axis=1)  # strata that hold every unit
    xs, ys = xs[full][units].to_numpy(float), ys[full][units].to_numpy(float)
    xc = xs - xs.mean(1, keepdims=True)
    yc = ys - ys.mean(1, keepdims=True)
    sxx, syy = float((xc**2).sum()), float((yc**2).sum())
    sxy = float((xc * yc).sum())
    slope = sxy / sxx if sxx > 0 else float("nan")
    r = sxy / np.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")
    rng = np.random.default_rng(seed)
    k = len(units)
    draws = rng.integers(0, k, size=(n_boot, k))
    bx, by = xc.T[draws], yc.T[draws]  # [boot, k, strata]
    den = (bx**2).sum((1, 2))
    boot = np.where(den > 0, (bx * by).sum((1, 2)) / np.where(den > 0, den, 1), np.nan)
    lo, hi = np.nanquantile(boot, [0.025, 0.975]) if np.isfinite(boot).any() else (np.nan,) * 2
    perms = np.array([rng.permutation(k) for _ in range(n_perm)])
    stat = (xc[:, perms].transpose(1, 0, 2) * yc[None]).sum((1, 2))
    p = (np.sum(np.abs(stat) >= abs(sxy) - 1e-12) + 1) / (n_perm + 1)
    return dict(
        slope=slope,
        lo=float(lo),
        hi=float(hi),
        r=float(r),
        p=float(p),
        n_cells=int(full.sum() * k),
        n_units=k,
        n_strata=int(full.sum()),
    )


def pad_ranking(
    effects: pd.DataFrame, norms: pd.DataFrame, *, massive_ratio: float
) -> pd.DataFrame:
    """One row per pad: mean effect and KL over pairs, layers and prompts (plain vectors),
    the largest pad-row norm as a multiple of the typical norm over every (pair, layer), and
    ``massive`` (that ratio above ``massive_ratio``). Sorted best first by
    :func:`recommend_pad`'s rule."""
    e = effects[effects.variant == PLAIN]
    g = e.groupby("pad").agg(effect=("effect", "mean"), kl=("kl", "mean"))
    n = norms.assign(ratio=norms.pad_norm / norms.typical_norm)
    g["max_norm_ratio"] = n.groupby("pad").ratio.max()
    g["massive"] = g.max_norm_ratio > massive_ratio
    g = g.reset_index().sort_values(["massive", "effect"], ascending=[True, False])
    return g.reset_index(drop=True)


def recommend_pad(ranking: pd.DataFrame) -> str:
    """The rule, stated before the data: among pads whose row is never massive (see
    :func:`pad_ranking`), the one with the largest mean effect over the whole grid."""
    ok = ranking[~ranking.massive]
    if ok.empty:
        raise ValueError("every pad carries a massive activation somewhere; no default")
    return str(ok.sort_values("effect", ascending=False).pad.iloc[0])
