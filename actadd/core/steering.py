"""Applying steering vectors: ``with actadd.steering(model, vectors, align=...):``.

Inside the context every forward pass of ``model`` (``model(...)``, ``run_with_cache``,
``model.generate`` and :func:`actadd.generate`) has the vectors added to the residual stream
at their ``resid_pre`` layers. On exit, normal or by exception, every hook is removed.

**Where the rows go.** A forward call that starts a sequence (no KV cache, or an empty one)
defines the *prompt*: for each batch row, its real (unpadded) token positions, read from the
attention mask (left or right padding both work). A vector with ``k`` rows is then placed on
that row's prompt positions according to its :class:`Align`:

- ``"front"`` (the paper): prompt positions ``[0, k)`` — row 0 on the leading token;
- ``Align.offset(s)`` / ``"offset:s"`` / an ``int``: positions ``[s, s + k)``;
- ``"back"``: the last ``k`` prompt positions;
- ``Align.at([p0, p1, ...])`` / ``"positions:p0,p1"``: row ``j`` at position ``p_j``
  (negative counts from the prompt's end; a 1-row vector goes to every listed position);
- ``Align.span(a, b)`` / ``"span:a:b"``: a 1-row vector at every prompt position from ``a``
  to ``b`` before the prompt's end (``[a, n - b)``), e.g. the user turn of a chat prompt;
- ``"all"``: a single-row vector (see ``SteeringVector.mean``) added at every position,
  generated tokens included — the llama.cpp / repeng / steering-vectors convention.

Calls that continue a sequence through a KV cache cover positions ``[cached, cached + n)``;
prompt alignments add only where those overlap the prompt, so generated tokens feel the
steering through attention to the cached keys and values — exactly as in one long forward
pass. Unlike the paper's code, nothing is skipped by a ``seq_len == 1`` test, so a one-token
prompt is steered too. Without a KV cache, use :func:`actadd.generate` (which tells the
context where the prompt ends); TransformerLens's own ``generate`` without a cache re-feeds
the whole sequence, which this context would read as a new, longer prompt.

Several vectors at one layer are summed before they are added, so steering with
``[v1, v2]`` is exactly steering with ``v1 + v2``. Positions a vector does not cover are
left bit-for-bit untouched.

**Threads.** The context patches the model itself, so it steers the thread that entered
it and no other: it holds the model's lock (:mod:`actadd.runtime.modellock`) from entering to
leaving, so actadd's calls on the same model from another thread (``generate``, sweeps, the
playground, another ``steering``) wait until it is left, and a direct ``model(...)`` from
another thread meanwhile raises :class:`~actadd.errors.SteeringError` rather than being
steered by a context that is not its own.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor
from transformer_lens.utilities.defaults_utils import USE_DEFAULT_VALUE
from transformer_lens.utilities.tokenize_utils import get_attention_mask

from actadd.core.ablation import Ablation
from actadd.core.placement import (
    ALIGN_KINDS,
    ONE_ROW_KINDS,
    PHASE_KINDS,
    Align,
    AlignKind,
    AlignLike,
    OnShort,
    Placement,
    as_placement,
    prompt_positions,
)
from actadd.core.vectors import SteeringVector, check_compatible
from actadd.errors import SteeringError, Validated
from actadd.runtime.backends import Model, backend_of
from actadd.runtime.hooks import resid_pre
from actadd.runtime.modellock import model_lock
from actadd.runtime.tokens import encode_batch, single_token_id

__all__ = [
    "ALIGN_KINDS",
    "Ablation",
    "Align",
    "AlignKind",
    "AlignLike",
    "OnShort",
    "Placement",
    "Steerable",
    "Steering",
    "active_steering",
    "as_placement",
    "distinct_rows",
    "prompt_is",
    "prompt_positions",
    "rows_are",
    "steering",
]


# what a steering context takes: vectors, placements (or their tuple shorthand), ablations
Steerable = (
    SteeringVector | Placement | Ablation | Sequence[SteeringVector | Placement | Ablation | tuple]
)


@dataclass
class _Where:
    """Positions decided call by call: ``align`` (``"all"``, a prompt alignment given as
    ``touched``, ``"generated[:k]"`` or ``"from:<token>"``) on the batch rows ``rows``."""

    align: Align
    rows: Tensor  # [batch] bool
    touched: Tensor | None = None  # [batch, prompt_len] bool, for prompt alignments


@dataclass
class _Plan:
    """Additions for one sequence at one layer: dense prompt additions + an all-position row,
    plus generation-phase additions and ablations, whose positions each call works out."""

    add: Tensor | None  # [batch, prompt_len, d_model] summed rows at prompt positions
    touched: Tensor | None  # [batch, prompt_len] bool: positions that receive an addition
    everywhere: Tensor | None  # [batch, 1, d_model]: added at every position ("all")
    later: list[tuple[Tensor, _Where]]  # (row [d_model], where): "generated" / "from" rows
    ablate: list[tuple[Tensor, _Where]]  # (unit direction [d_model], where), run first


@dataclass
class _Call:
    cached: int  # positions already in the KV cache before this call
    new: int  # positions this call processes


def active_steering(model: Model) -> list[Steering]:
    """The steering contexts active on ``model``, innermost first.

    Each active context wraps ``model.forward``; the chain of wrappers is read off the
    model itself, so there is no module-level state.
    """
    found = []
    forward = vars(model).get("forward")
    while forward is not None and isinstance(getattr(forward, "steering", None), Steering):
        found.append(forward.steering)
        forward = forward.steering._previous_forward
    return found


@contextmanager
def prompt_is(model: Model, mask: Tensor) -> Iterator[None]:
    """Tell every active steering context on ``model`` that the prompt is ``mask``
    ([batch, prompt_len], see :meth:`Steering.prompt`). For decoding loops."""
    with ExitStack() as stack:
        for s in active_steering(model):
            stack.enter_context(s.prompt(mask))
        yield


@contextmanager
def rows_are(model: Model, index: Tensor) -> Iterator[None]:
    """Inside, batch row ``j`` of a forward call is row ``index[j]`` of the prompt pinned by
    :func:`prompt_is`, for every active steering context on ``model``: a decoding loop runs
    the prompt pass once per distinct row (:func:`distinct_rows`) and each of those rows is
    steered as the prompt row it stands for."""
    with ExitStack() as stack:
        for s in active_steering(model):
            stack.enter_context(s.rows_are(index))
        yield


def distinct_rows(model: Model, tokens: Tensor, mask: Tensor) -> list[int]:
    """For each row of a prompt batch (``tokens`` and ``mask`` [batch, prompt_len]), the
    first row whose tokens, mask and steering additions — under every active steering
    context, with ``mask`` as the prompt — equal its own. Such rows compute the same
    forward pass over the prompt, so a decoding loop runs it once per distinct row.

    Conservative: a plan holding anything but per-row tensors (``None`` and empty lists
    aside) makes every row distinct, so a kind of steering this function does not know is
    never shared."""
    contexts = active_steering(model)
    for s in contexts:
        s._ensure_plans(mask, mask)
    plans = [s._plans[layer] for s in contexts for layer in s.layers]
    # None and empty lists hold nothing; anything else must be a per-row tensor
    parts = [t for plan in plans for t in vars(plan).values() if t is not None and len(t)]
    batch = len(tokens)
    if not all(isinstance(t, Tensor) and len(t) == batch for t in parts):
        return list(range(batch))
    rows = [t.cpu().numpy() for t in (tokens, mask, *parts) if t is not None]
    keys: dict[tuple, int] = {}
    return [keys.setdefault(tuple(r[b].tobytes() for r in rows), b) for b in range(batch)]


class Steering:
    """Context manager that adds steering vectors to a model's residual stream.

    Prefer :func:`steering`. After (or during) use, :meth:`applied` lists where additions
    landed in the last sequence.
    """

    def __init__(
        self,
        model: Model,
        vectors: Validated[Steerable],
        align: Validated[AlignLike] = "front",
        *,
        on_short: OnShort = "error",
        allow_other_model: bool = False,
    ) -> None:
        if on_short not in ("error", "clip"):
            raise SteeringError(f"on_short must be 'error' or 'clip', got {on_short!r}.")
        default = Align.parse(align)
        single = (SteeringVector, Placement, Ablation)
        if not isinstance(vectors, (*single, Sequence)) or isinstance(vectors, (str, bytes)):
            hint = " (for a {layer: vector} dict, pass list(d.values()))"
            hint = hint if isinstance(vectors, dict) else ""
            raise SteeringError(
                "steering takes a SteeringVector, a Placement, an Ablation, or a list of them "
                f"(items may be (vector, align) tuples); got {type(vectors).__name__}{hint}."
            )
        items = [vectors] if isinstance(vectors, single) else list(vectors)
        # every placement with its alignment resolved; ablations apart (they run first)
        self.entries: list[Placement] = []
        self.ablations: list[Ablation] = []
        for item in items:
            if isinstance(item, Ablation):
                check_compatible(item.direction, model, allow_other_model=allow_other_model)
                self.ablations.append(item)
                continue
            p = as_placement(item)
            vec, al, rows = p.vector, p.align or default, p.rows
            check_compatible(vec, model, allow_other_model=allow_other_model)
            if al.kind in ONE_ROW_KINDS and vec.k != 1:
                raise SteeringError(
                    f"align={al} adds one d_model vector at each of its positions, but "
                    f"{vec.describe()} has {vec.k} rows. Use v.mean() (or v.mean(skip_first=True)"
                    ") or v.rows([i])."
                )
            self.entries.append(Placement(vec, al, rows))
        aligns = [p.align for p in self.entries] + [a.align for a in self.ablations]
        # marker token -> id, resolved now so a bad marker fails before any compute
        self._marker_ids = {
            a.marker: single_token_id(model, a.marker, "marker token")
            for a in aligns
            if a.kind == "from"
        }
        self._marker_start: dict[int, Tensor] = {}  # id -> [batch] first absolute position
        self.model = model
        self.on_short = on_short
        self.layers = sorted(
            {p.vector.layer for p in self.entries} | {a.layer for a in self.ablations}
        )
        self._plans: dict[int, _Plan] = {}
        self._plan_key: object = None
        self._prompt_mask: Tensor | None = None
        self._call: _Call | None = None
        self._handles: list = []
        self._active = False
        self._pinned: Tensor | None = None
        self._row_index: Tensor | None = None
        self._previous_forward = None
        self._wrapper = None
        self._thread: threading.Thread | None = None  # the thread that entered (and holds the lock)

    # ------------------------------------------------------------------ planning

    def _build_plans(self, mask: Tensor) -> None:
        """Place every vector on the prompt described by ``mask`` ([batch, prompt_len])."""
        cfg = self.model.cfg
        batch, plen = mask.shape
        real = [torch.nonzero(mask[b].cpu(), as_tuple=True)[0] for b in range(batch)]
        plans: dict[int, _Plan] = {}
        for layer in self.layers:
            add = touched = everywhere = None
            later, ablate = [], []
            for ab in self.ablations:
                if ab.layer == layer:
                    u = ab.direction.tensor[0].to(cfg.device, cfg.dtype)
                    where = self._where(ab.align, ab.rows, ab.positions, real, plen, ab.describe())
                    ablate.append((u / u.norm(), where))
            for vec, al, only in ((p.vector, p.align, p.rows) for p in self.entries):
                if vec.layer != layer:
                    continue
                targets = self._targets(only, batch, vec.describe())
                t = vec.tensor.to(cfg.device, cfg.dtype)
                if al.kind in ("generated", "from"):
                    later.append((t[0], self._where(al, only, 1, real, plen, vec.describe())))
                    continue
                if al.kind == "all":
                    if everywhere is None:
                        everywhere = torch.zeros(
                            batch, 1, cfg.d_model, device=cfg.device, dtype=cfg.dtype
                        )
                    everywhere[list(targets), 0] += t[0]
                    continue
                if add is None:
                    add = torch.zeros(batch, plen, cfg.d_model, device=cfg.device, dtype=cfg.dtype)
                    touched = torch.zeros(batch, plen, dtype=torch.bool, device=cfg.device)
                for b in targets:
                    rows, pos = prompt_positions(al, vec.k, len(real[b]), self.on_short)
                    absolute = real[b][pos].to(cfg.device)
                    add[b, absolute] += t[rows.to(cfg.device)]
                    touched[b, absolute] = True
            plans[layer] = _Plan(add, touched, everywhere, later, ablate)
        self._plans = plans
        self._prompt_mask = mask

    @staticmethod
    def _targets(only, batch: int, what: str) -> range | tuple[int, ...]:
        if only is not None and max(only) >= batch:
            raise SteeringError(
                f"{what} is assigned to batch rows {list(only)} but the input has {batch} rows."
            )
        return range(batch) if only is None else only

    def _where(self, al: Align, only, k: int, real: list[Tensor], plen: int, what: str) -> _Where:
        """Where an ablation or a generation-phase row goes, for this prompt."""
        device = self.model.cfg.device
        batch = len(real)
        rows = torch.zeros(batch, dtype=torch.bool)
        rows[list(self._targets(only, batch, what))] = True
        if al.kind in PHASE_KINDS:
            return _Where(al, rows.to(device))
        touched = torch.zeros(batch, plen, dtype=torch.bool)
        for b in torch.nonzero(rows, as_tuple=True)[0].tolist():
            _, pos = prompt_positions(al, k, len(real[b]), self.on_short)
            touched[b, real[b][pos]] = True
        return _Where(al, rows.to(device), touched.to(device))

    def _positions(self, where: _Where, call: _Call, batch: int) -> Tensor:
        """[batch, call.new] bool: which of this call's positions ``where`` covers."""
        device = where.rows.device
        if where.align.kind == "all":
            return where.rows[:, None].expand(batch, call.new)
        q = torch.arange(call.cached, call.cached + call.new, device=device)  # absolute
        plen = self._prompt_mask.shape[1]
        if where.touched is not None:
            inside = q < plen
            out = torch.zeros(batch, call.new, dtype=torch.bool, device=device)
            out[:, inside] = where.touched[:, q[inside]]
            return out
        if where.align.kind == "generated":
            count = where.align.count
            stop = plen + count if count is not None else q[-1] + 1
            covered = (q >= plen) & (q < stop)
        else:  # "from": from the marker's first position on, in this row
            start = self._marker_start[self._marker_ids[where.align.marker]].to(device)
            covered = q[None, :] >= start[:, None]
            # the prompt's padding is never covered
            prompt = self._prompt_mask.to(device=device, dtype=torch.bool)
            pad = torch.zeros_like(covered)
            inside = q < plen
            pad[:, inside] = ~prompt[:, q[inside]]
            return covered & ~pad & where.rows[:, None]
        return covered[None, :] & where.rows[:, None]

    def _ensure_plans(self, mask: Tensor, key: object) -> None:
        if key is not self._plan_key or self._prompt_mask is None:
            self._build_plans(mask)
            self._plan_key = key

    # ------------------------------------------------------------------ the forward wrapper

    def _begin_call(self, bound: inspect.BoundArguments) -> None:
        """Work out which absolute positions this forward call covers, and the prompt."""
        args = bound.arguments
        model = self.model
        backend = backend_of(model)
        cached = backend.cached_length(args)
        inp = args.get("input")
        tokens = None
        if isinstance(inp, (str, list)):
            # what the forward will tokenize, without setting the model's defaults
            tokens = encode_batch(model, inp, args.get("prepend_bos"), args.get("padding_side"))
        elif isinstance(inp, Tensor):
            if args.get("start_at_layer") is None:
                tokens = inp if inp.ndim == 2 else inp[None]
            inp = inp if inp.ndim >= 2 else inp[None]
        else:
            raise SteeringError(f"Unsupported model input of type {type(inp).__name__}.")
        batch, new = tokens.shape if tokens is not None else inp.shape[:2]
        self._call = _Call(cached, new)
        if self._marker_ids:
            self._scan_markers(tokens, args.get("attention_mask"), cached)

        pinned = self._pinned
        if pinned is not None:
            self._ensure_plans(pinned, pinned)
            index = self._row_index
            if index is not None and len(index) != batch:
                raise SteeringError(
                    f"rows_are maps {len(index)} rows but the forward call has {batch}."
                )
            return
        if self._row_index is not None:
            raise SteeringError("rows_are needs a pinned prompt (prompt_is).")
        if cached > 0:
            if self._prompt_mask is None or self._prompt_mask.shape[0] != batch:
                # a cache filled outside this context: its positions are the prompt
                mask = backend.cached_mask(args, cached)
                self._build_plans(mask if mask is not None else _ones(batch, cached))
                self._plan_key = None
            return
        mask = args.get("attention_mask")
        if mask is not None:
            mask = mask[:, :new]
        elif tokens is not None and batch > 1 and model.tokenizer is not None:
            mask = _padding_mask(model, tokens, args)
        else:
            mask = _ones(batch, new)
        self._build_plans(mask.to(torch.long))
        self._plan_key = None

    def _scan_markers(self, tokens: Tensor | None, mask: Tensor | None, cached: int) -> None:
        """Record, per batch row, the first absolute position of each marker token."""
        if tokens is None:
            raise SteeringError(
                "align='from:<marker>' needs token input to find the marker; this forward "
                "call got a residual stream (start_at_layer). Use token input, or another "
                "alignment."
            )
        batch, new = tokens.shape
        real = torch.ones(batch, new, dtype=torch.bool, device=tokens.device)
        if mask is not None:
            real = mask[:, -new:].to(tokens.device).bool()
        elif cached == 0 and batch > 1 and self.model.tokenizer is not None:
            real = _padding_mask(self.model, tokens, {}).to(tokens.device).bool()
        never = torch.iinfo(torch.long).max
        for token_id in self._marker_ids.values():
            start = self._marker_start.get(token_id)
            if cached == 0 or start is None or len(start) != batch:
                start = torch.full((batch,), never, dtype=torch.long)
            hits = (tokens == token_id) & real
            first = torch.where(hits.any(-1), hits.int().argmax(-1), never).cpu()
            found = first != never
            start = torch.where(found & (start == never), first + cached, start)
            self._marker_start[token_id] = start

    def _wrap_forward(self):
        model = self.model
        signature = inspect.signature(type(model).forward)

        def forward(*args, **kwargs):
            self._check_thread()
            bound = signature.bind(model, *args, **kwargs)
            self._begin_call(bound)
            # the next forward in the chain is read at call time, not captured: contexts may
            # be exited in any order, and an exiting one splices itself out of the chain
            inner = self._previous_forward
            try:
                if inner is None:
                    return type(model).forward(model, *args, **kwargs)
                return inner(*args, **kwargs)
            finally:
                self._call = None

        forward.steering = self  # read by active_steering()
        return forward

    @contextmanager
    def prompt(self, mask: Tensor) -> Iterator[None]:
        """Inside, the prompt is ``mask`` ([batch, prompt_len] attention mask), whatever
        the forward calls look like.

        A decoding loop that re-feeds the growing sequence without a KV cache uses this so
        that prompt alignments (``"back"`` especially) stay on the prompt; with a KV cache
        the first call already defines the prompt.
        """
        previous = self._pinned
        self._pinned = mask
        try:
            yield
        finally:
            self._pinned = previous

    @contextmanager
    def rows_are(self, index: Tensor) -> Iterator[None]:
        """Inside, batch row ``j`` of a forward call is row ``index[j]`` of the pinned
        prompt (see :func:`rows_are`); needs :meth:`prompt`."""
        previous = self._row_index
        self._row_index = torch.as_tensor(index, dtype=torch.long)
        try:
            yield
        finally:
            self._row_index = previous

    # ------------------------------------------------------------------ the hooks

    def _hook_for(self, layer: int):
        def hook(resid: Tensor, hook) -> Tensor:
            self._check_thread()
            call = self._call
            if call is None:  # a block run directly, outside model.forward
                if self._marker_ids:
                    raise SteeringError(
                        "align='from:<marker>' needs the model's forward (to see the tokens); "
                        "a block was run directly."
                    )
                call = _Call(0, resid.shape[1])
                self._build_plans(_ones(resid.shape[0], resid.shape[1]))
            plan = self._plans.get(layer)
            if plan is None:
                return resid
            batch = resid.shape[0]
            # batch row j is prompt row index[j] (a decoding loop sharing the prompt pass of
            # identical rows; never with ablations or marker alignments: distinct_rows)
            index = self._row_index
            for u, where in plan.ablate:  # ablations first, in the order given
                covered = self._positions(where, call, batch)
                if bool(covered.any()):
                    ablated = resid - (resid @ u)[..., None] * u
                    resid = torch.where(covered[..., None], ablated, resid)
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
                    covered = self._positions(where, call, batch)
                    delta[covered] += row
                    hit |= covered
                b, p = torch.nonzero(hit, as_tuple=True)
                if len(b):
                    resid = resid.index_put((b, p), resid[b, p] + delta[b, p])
            return resid

        return hook

    # ------------------------------------------------------------------ enter / exit

    def _check_thread(self) -> None:
        """A forward call (or a block run directly) from a thread other than the one that
        entered this context is refused, never steered (see the module docstring)."""
        owner = self._thread
        if owner is not None and threading.current_thread() is not owner:
            raise SteeringError(
                f"Model {self.model.cfg.model_name!r} is being steered by another thread "
                f"({owner.name!r}); this call would be steered by that thread's context. "
                "actadd's calls (generate, sweeps, steering) wait their turn; call the model "
                "directly only after that context is left."
            )

    def __enter__(self) -> Steering:
        if self._active:
            raise SteeringError("This steering context is already active.")
        model = self.model
        # waits while another thread holds the model (steering it, or generating)
        self._thread = model_lock(model).acquire()
        self._previous_forward = vars(model).get("forward")
        try:
            self._wrapper = self._wrap_forward()
            model.forward = self._wrapper
            for layer in self.layers:
                hook_point = model.hook_dict[resid_pre(model, layer)]
                hook_point.add_hook(self._hook_for(layer), dir="fwd")
                self._handles.append((hook_point, hook_point.fwd_hooks[-1]))
        except BaseException:
            self._remove()
            raise
        self._active = True
        return self

    def _remove(self) -> None:
        try:
            self._unpatch()
        finally:
            self._active = False
            thread, self._thread = self._thread, None
            if thread is not None:
                model_lock(self.model).release(thread)

    def _unpatch(self) -> None:
        for hook_point, handle in self._handles:
            handle.hook.remove()
            if handle in hook_point.fwd_hooks:
                hook_point.fwd_hooks.remove(handle)
        self._handles = []
        wrapper, self._wrapper = self._wrapper, None
        current = vars(self.model).get("forward")
        if wrapper is not None and current is wrapper:
            if self._previous_forward is None:
                vars(self.model).pop("forward", None)
            else:
                self.model.forward = self._previous_forward
        elif wrapper is not None:
            # a context entered after this one is still active: splice this one out of the
            # chain, so the model is exactly as if this context had never been entered
            for s in active_steering(self.model):
                if s._previous_forward is wrapper:
                    s._previous_forward = self._previous_forward
                    break

    def __exit__(self, *exc) -> None:
        self._remove()

    # ------------------------------------------------------------------ inspection

    def applied(self) -> pd.DataFrame:
        """Where the additions of the last sequence landed: one row per (batch row, position,
        layer), with the L2 norm of what was added there."""
        records = []
        for layer, plan in self._plans.items():
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
                            dict(
                                row=b, position=-1, layer=layer, norm=float(row.norm()), kind="all"
                            )
                        )
        return pd.DataFrame.from_records(
            records, columns=["row", "position", "layer", "norm", "kind"]
        )


def steering(
    model: Model,
    vectors: Validated[Steerable],
    align: Validated[AlignLike] = "front",
    *,
    on_short: OnShort = "error",
    allow_other_model: bool = False,
) -> Steering:
    """Add ``vectors`` to ``model`` inside a ``with`` block. See the module docstring.

    Args:
        model: the ``HookedTransformer``.
        vectors: one vector, or a list; an item may be a :class:`Placement` (or its
            shorthand ``(vector, align)`` / ``(vector, align, rows)``) to give that vector
            its own alignment or apply it only to some batch rows (sweeps batch many
            steering settings into one forward this way).
        align: default alignment (``"front"``, ``"back"``, ``"all"``, ``"offset:s"`` /
            ``int``, ``"positions:..."`` / list of ints, or an :class:`Align`).
        on_short: ``"error"`` (default) when a prompt is shorter than a vector needs, or
            ``"clip"`` to drop the rows that do not fit.
        allow_other_model: use vectors made for another model with the same ``d_model``.
    """
    return Steering(model, vectors, align, on_short=on_short, allow_other_model=allow_other_model)


def _ones(batch: int, n: int) -> Tensor:
    return torch.ones(batch, n, dtype=torch.long)


def _padding_mask(model: Model, tokens: Tensor, args: dict) -> Tensor:
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
