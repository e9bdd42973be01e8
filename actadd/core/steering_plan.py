"""What a steering context's hooks add, and where: the plans behind :mod:`actadd.core.steering`.

When a forward call starts a sequence, the context places every vector on that prompt
(:func:`build_plans`): per layer, one :class:`Plan` holding the prompt additions summed into
a dense ``[batch, prompt_len, d_model]`` tensor, the all-position rows, and the
generation-phase rows and ablations whose positions each later call works out
(:func:`covered`). The hook at ``blocks.{L}.hook_resid_pre`` applies the layer's plan to the
positions of the current call (:func:`apply_plan`): ablations first, then the additions.
:func:`applied_records` lists where the additions of a sequence landed.

These are the steering context's internals; researchers use :func:`actadd.steering`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from transformer_lens.utilities.defaults_utils import USE_DEFAULT_VALUE
from transformer_lens.utilities.tokenize_utils import get_attention_mask

from actadd.core.ablation import Ablation
from actadd.core.placement import PHASE_KINDS, Align, OnShort, Placement, prompt_positions
from actadd.errors import SteeringError
from actadd.runtime.backends import Model

__all__ = [
    "Call",
    "Plan",
    "Where",
    "applied_records",
    "apply_plan",
    "build_plans",
    "covered",
    "first_markers",
    "leading_only",
    "ones",
    "padding_mask",
]


@dataclass
class Where:
    """Positions decided call by call: ``align`` (``"all"``, a prompt alignment given as
    ``touched``, ``"generated[:k]"`` or ``"from:<token>"``) on the batch rows ``rows``."""

    align: Align
    rows: Tensor  # [batch] bool
    touched: Tensor | None = None  # [batch, prompt_len] bool, for prompt alignments


@dataclass
class Plan:
    """Additions for one sequence at one layer: dense prompt additions + an all-position row,
    plus generation-phase additions and ablations, whose positions each call works out."""

    add: Tensor | None  # [batch, prompt_len, d_model] summed rows at prompt positions
    touched: Tensor | None  # [batch, prompt_len] bool: positions that receive an addition
    everywhere: Tensor | None  # [batch, 1, d_model]: added at every position ("all")
    later: list[tuple[Tensor, Where]]  # (row [d_model], where): "generated" / "from" rows
    ablate: list[tuple[Tensor, Where]]  # (unit direction [d_model], where), run first


@dataclass
class Call:
    cached: int  # positions already in the KV cache before this call
    new: int  # positions this call processes


# ---------------------------------------------------------------------- planning


def build_plans(
    model: Model,
    entries: Sequence[Placement],
    ablations: Sequence[Ablation],
    layers: Sequence[int],
    mask: Tensor,
    on_short: OnShort,
) -> dict[int, Plan]:
    """Place every vector and ablation on the prompt described by ``mask`` ([batch,
    prompt_len]): ``{layer: plan}``."""
    cfg = model.cfg
    batch, plen = mask.shape
    real = [torch.nonzero(mask[b].cpu(), as_tuple=True)[0] for b in range(batch)]
    plans: dict[int, Plan] = {}
    for layer in layers:
        add = touched = everywhere = None
        later, ablate = [], []
        for ab in ablations:
            if ab.layer == layer:
                u = ab.direction.tensor[0].to(cfg.device, cfg.dtype)
                what = ab.describe()
                where = _where(model, ab.align, ab.rows, ab.positions, real, plen, on_short, what)
                ablate.append((u / u.norm(), where))
        for vec, al, only in ((p.vector, p.align, p.rows) for p in entries):
            if vec.layer != layer:
                continue
            targets = _targets(only, batch, vec.describe())
            t = vec.tensor.to(cfg.device, cfg.dtype)
            if al.kind in ("generated", "from"):
                where = _where(model, al, only, 1, real, plen, on_short, vec.describe())
                later.append((t[0], where))
                continue
            if al.kind == "all" and al.offset:
                # every position from prompt position `offset` on: the prompt's (per row,
                # after its padding) and, as they come, every generated one
                what = vec.describe()
                for b in targets:
                    absolute = real[b][al.offset :].to(cfg.device)
                    add, touched = _dense(add, touched, batch, plen, cfg)
                    add[b, absolute] += t[0]
                    touched[b, absolute] = True
                gen = Align.generated()
                later.append((t[0], _where(model, gen, only, 1, real, plen, on_short, what)))
                continue
            if al.kind == "all":
                if everywhere is None:
                    everywhere = torch.zeros(
                        batch, 1, cfg.d_model, device=cfg.device, dtype=cfg.dtype
                    )
                everywhere[list(targets), 0] += t[0]
                continue
            add, touched = _dense(add, touched, batch, plen, cfg)
            for b in targets:
                rows, pos = prompt_positions(al, vec.k, len(real[b]), on_short)
                absolute = real[b][pos].to(cfg.device)
                add[b, absolute] += t[rows.to(cfg.device)]
                touched[b, absolute] = True
        plans[layer] = Plan(add, touched, everywhere, later, ablate)
    return plans


def _dense(add: Tensor | None, touched: Tensor | None, batch: int, plen: int, cfg):
    """The plan's dense prompt additions and their mask, zeros when not made yet."""
    if add is None:
        add = torch.zeros(batch, plen, cfg.d_model, device=cfg.device, dtype=cfg.dtype)
        touched = torch.zeros(batch, plen, dtype=torch.bool, device=cfg.device)
    return add, touched


def leading_only(plans: dict[int, Plan], mask: Tensor) -> bool:
    """Every addition of ``plans`` lands on a leading token (each row's first real position
    of the prompt ``mask``) and there is at least one: nothing at other prompt positions,
    at every position (``"all"``) or at generated ones. Ablations are not additions."""
    first = mask.to(torch.long).argmax(-1)
    hit = False
    for plan in plans.values():
        if plan.everywhere is not None or plan.later:
            return False
        if plan.touched is None or not bool(plan.touched.any()):
            continue
        lead = torch.zeros_like(plan.touched)
        lead[torch.arange(len(first)), first.to(lead.device)] = True
        if bool((plan.touched & ~lead).any()):
            return False
        hit = True
    return hit


def _targets(only, batch: int, what: str) -> range | tuple[int, ...]:
    if only is not None and max(only) >= batch:
        raise SteeringError(
            f"{what} is assigned to batch rows {list(only)} but the input has {batch} rows."
        )
    return range(batch) if only is None else only


def _where(
    model: Model,
    al: Align,
    only,
    k: int,
    real: list[Tensor],
    plen: int,
    on_short: OnShort,
    what: str,
) -> Where:
    """Where an ablation or a generation-phase row goes, for this prompt."""
    device = model.cfg.device
    batch = len(real)
    rows = torch.zeros(batch, dtype=torch.bool)
    rows[list(_targets(only, batch, what))] = True
    if al.kind in PHASE_KINDS and not (al.kind == "all" and al.offset):
        return Where(al, rows.to(device))
    touched = torch.zeros(batch, plen, dtype=torch.bool)
    for b in torch.nonzero(rows, as_tuple=True)[0].tolist():
        if al.kind == "all":  # "all:s": the prompt from position s (generated: covered())
            touched[b, real[b][al.offset :]] = True
            continue
        _, pos = prompt_positions(al, k, len(real[b]), on_short)
        touched[b, real[b][pos]] = True
    return Where(al, rows.to(device), touched.to(device))


def covered(
    where: Where,
    call: Call,
    batch: int,
    prompt_mask: Tensor,
    marker_start: Callable[[str | int], Tensor],
) -> Tensor:
    """[batch, call.new] bool: which of this call's positions ``where`` covers, for the
    prompt ``prompt_mask``; ``marker_start(marker)`` is each row's first marker position."""
    device = where.rows.device
    if where.align.kind == "all" and where.touched is None:
        return where.rows[:, None].expand(batch, call.new)
    q = torch.arange(call.cached, call.cached + call.new, device=device)  # absolute
    plen = prompt_mask.shape[1]
    if where.touched is not None:
        inside = q < plen
        out = torch.zeros(batch, call.new, dtype=torch.bool, device=device)
        out[:, inside] = where.touched[:, q[inside]]
        if where.align.kind == "all":  # "all:s": every generated position too
            out |= (q >= plen)[None, :] & where.rows[:, None]
        return out
    if where.align.kind == "generated":
        count = where.align.count
        stop = plen + count if count is not None else q[-1] + 1
        hit = (q >= plen) & (q < stop)
    else:  # "from": from the marker's first position on, in this row
        start = marker_start(where.align.marker).to(device)
        hit = q[None, :] >= start[:, None]
        # the prompt's padding is never covered
        prompt = prompt_mask.to(device=device, dtype=torch.bool)
        pad = torch.zeros_like(hit)
        inside = q < plen
        pad[:, inside] = ~prompt[:, q[inside]]
        return hit & ~pad & where.rows[:, None]
    return hit[None, :] & where.rows[:, None]


# ---------------------------------------------------------------------- the hook's work


def apply_plan(
    resid: Tensor,
    plan: Plan,
    call: Call,
    index: Tensor | None,
    positions: Callable[[Where, Call, int], Tensor],
) -> Tensor:
    """``resid`` ([batch, new, d_model]) with ``plan`` applied to this call's positions:
    ablations first (in the order given), then the prompt, all-position and generation-phase
    additions. Batch row ``j`` is prompt row ``index[j]`` when ``index`` is given;
    ``positions(where, call, batch)`` is :func:`covered` for the context's prompt."""
    batch = resid.shape[0]
    # batch row j is prompt row index[j] (a decoding loop sharing the prompt pass of
    # identical rows; never with ablations or marker alignments: distinct_rows)
    for u, where in plan.ablate:  # ablations first, in the order given
        hit = positions(where, call, batch)
        if bool(hit.any()):
            ablated = resid - (resid @ u)[..., None] * u
            resid = torch.where(hit[..., None], ablated, resid)
    if plan.add is not None:
        lo, hi = call.cached, min(call.cached + call.new, plan.add.shape[1])
        if hi > lo:
            touched = plan.touched[:, lo:hi]
            if index is not None:
                touched = touched[index.to(touched.device)]
            b, p = torch.nonzero(touched, as_tuple=True)
            if len(b):
                q = p + lo  # absolute position
                src = b if index is None else index.to(b.device)[b]
                resid = resid.index_put((b, p), resid[b, p] + plan.add[src, q])
    if plan.everywhere is not None:
        everywhere = plan.everywhere
        if index is not None:
            everywhere = everywhere[index.to(everywhere.device)]
        resid = resid + everywhere
    if plan.later:
        delta = torch.zeros_like(resid)
        hit = torch.zeros(resid.shape[:2], dtype=torch.bool, device=resid.device)
        for row, where in plan.later:
            rows_hit = positions(where, call, batch)
            delta[rows_hit] += row
            hit |= rows_hit
        b, p = torch.nonzero(hit, as_tuple=True)
        if len(b):
            resid = resid.index_put((b, p), resid[b, p] + delta[b, p])
    return resid


def applied_records(plans: dict[int, Plan]) -> list[dict[str, Any]]:
    """Where the additions of ``plans`` landed: one record per (batch row, position, layer),
    with the L2 norm of what was added there (position -1: decided call by call)."""
    records = []
    for layer, plan in plans.items():
        if plan.touched is not None:
            for b, p in zip(*torch.nonzero(plan.touched, as_tuple=True)):
                records.append(
                    dict(
                        row=int(b),
                        position=int(p),
                        layer=layer,
                        norm=float(plan.add[b, p].norm()),
                        kind="prompt",
                    )
                )
        for what, items in (("ablate ", plan.ablate), ("", plan.later)):
            for vec, where in items:
                for b in torch.nonzero(where.rows, as_tuple=True)[0].tolist():
                    norm = 1.0 if what else float(vec.norm())
                    kind = f"{what}{where.align}"
                    records.append(dict(row=b, position=-1, layer=layer, norm=norm, kind=kind))
        if plan.everywhere is not None:
            for b, row in enumerate(plan.everywhere[:, 0]):
                if bool(row.any()):
                    records.append(
                        dict(row=b, position=-1, layer=layer, norm=float(row.norm()), kind="all")
                    )
    return records


# ---------------------------------------------------------------------- reading a call


def first_markers(
    tokens: Tensor,
    real: Tensor,
    cached: int,
    marker_ids: dict[str | int, int],
    previous: dict[int, Tensor],
) -> dict[int, Tensor]:
    """``{token id: [batch] first absolute position}`` of each marker token after this call
    (``tokens`` and ``real`` [batch, new]; ``previous``: the same before it; a row with no
    marker yet holds the largest long)."""
    batch = tokens.shape[0]
    never = torch.iinfo(torch.long).max
    out = dict(previous)
    for token_id in marker_ids.values():
        start = out.get(token_id)
        if cached == 0 or start is None or len(start) != batch:
            start = torch.full((batch,), never, dtype=torch.long)
        hits = (tokens == token_id) & real
        first = torch.where(hits.any(-1), hits.int().argmax(-1), never).cpu()
        found = first != never
        start = torch.where(found & (start == never), first + cached, start)
        out[token_id] = start
    return out


def ones(batch: int, n: int) -> Tensor:
    """An all-real attention mask ([batch, n])."""
    return torch.ones(batch, n, dtype=torch.long)


def padding_mask(model: Model, tokens: Tensor, args: dict) -> Tensor:
    """The attention mask TransformerLens would derive for a padded token batch."""
    tok = model.tokenizer
    side = args.get("padding_side")
    if side not in ("left", "right"):
        side = tok.padding_side
    prepend = args.get("prepend_bos", USE_DEFAULT_VALUE)
    if prepend in (USE_DEFAULT_VALUE, None):
        prepend = model.cfg.default_prepend_bos
    # the side is passed, never set on the tokenizer (another thread may be reading it)
    return get_attention_mask(tok, tokens, prepend, padding_side=side)
