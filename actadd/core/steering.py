"""Applying steering vectors: ``with actadd.steering(model, vectors, align=...):``.

Inside the context every forward pass of ``model`` (``model(...)``, ``run_with_cache``,
``model.generate`` and :func:`actadd.generate`) has the vectors added to the residual stream
at their ``resid_pre`` layers. On exit, normal or by exception, every hook is removed.

**Where the rows go.** A forward call that starts a sequence (no KV cache, or an empty one)
defines the *prompt*: for each batch row, its real (unpadded) token positions, read from the
attention mask (left or right padding both work). A vector with ``k`` rows is then placed on
that row's prompt positions according to its :class:`Align`. Given none (``align=None``,
the default), a per-position vector (``k > 1``, ActAdd's) goes to the front, as in the
paper, and a one-row vector (CAA, PCA, a mean) to every position after the leading token,
``"all:1"`` (:func:`~actadd.core.align.default_align`):

- ``"front"`` (the paper): prompt positions ``[0, k)`` — row 0 on the leading token;
- ``Align.offset(s)`` / ``"offset:s"`` / an ``int``: positions ``[s, s + k)``;
- ``"back"``: the last ``k`` prompt positions;
- ``Align.at([p0, p1, ...])`` / ``"positions:p0,p1"``: row ``j`` at position ``p_j``
  (negative counts from the prompt's end; a 1-row vector goes to every listed position);
- ``Align.span(a, b)`` / ``"span:a:b"``: a 1-row vector at every prompt position from ``a``
  to ``b`` before the prompt's end (``[a, n - b)``), e.g. the user turn of a chat prompt;
- ``"all"``: a single-row vector (see ``SteeringVector.mean``) added at every position,
  generated tokens included — the llama.cpp / repeng / steering-vectors convention;
  ``"all:s"`` / ``Align.all(s)``: every position from prompt position ``s`` on, generated
  tokens included (``"all:1"``: all but the leading token).

A context whose additions all land on the leading token only (a one-row vector at
``"front"``, say) steers almost nothing: the leading token is an attention sink the model
barely reads. It warns once (:class:`~actadd.errors.LeadingTokenWarning`).

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
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pandas as pd
import torch
from torch import Tensor

from actadd.core.ablation import Ablation
from actadd.core.placement import (
    ALIGN_KINDS,
    Align,
    AlignKind,
    AlignLike,
    OnShort,
    Placement,
    as_placement,
    prompt_positions,
)
from actadd.core.steerable import Steerable, resolve_steerable
from actadd.core.steering_plan import (
    Call,
    Plan,
    Where,
    applied_records,
    apply_plan,
    build_plans,
    covered,
    first_markers,
    leading_only,
    ones,
    padding_mask,
)
from actadd.errors import LeadingTokenWarning, SteeringError, Validated
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
        align: Validated[AlignLike | None] = None,
        *,
        on_short: OnShort = "error",
        allow_other_model: bool = False,
    ) -> None:
        if on_short not in ("error", "clip"):
            raise SteeringError(f"on_short must be 'error' or 'clip', got {on_short!r}.")
        # every placement with its alignment resolved; ablations apart (they run first)
        self.entries, self.ablations = resolve_steerable(
            model, vectors, align, allow_other_model=allow_other_model
        )
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
        self._plans: dict[int, Plan] = {}
        self._plan_key: object = None
        self._prompt_mask: Tensor | None = None
        self._call: Call | None = None
        self._handles: list = []
        self._active = False
        self._pinned: Tensor | None = None
        self._row_index: Tensor | None = None
        self._previous_forward = None
        self._wrapper = None
        self._thread: threading.Thread | None = None  # the thread that entered (and holds the lock)
        self._warned = False  # LeadingTokenWarning given (once per context)

    # ------------------------------------------------------------------ planning

    def _build_plans(self, mask: Tensor) -> None:
        """Place every vector on the prompt described by ``mask`` ([batch, prompt_len])."""
        self._plans = build_plans(
            self.model, self.entries, self.ablations, self.layers, mask, self.on_short
        )
        self._prompt_mask = mask
        if not self._warned and leading_only(self._plans, mask):
            self._warned = True
            what = " + ".join(f"{p.vector.describe()} at {p.align}" for p in self.entries)
            warnings.warn(
                LeadingTokenWarning(
                    f"{what}: every steering addition lands on the leading token only, an "
                    "attention sink the model barely reads, so the output will hardly "
                    "change; for a one-row vector leave align out (every position after the "
                    "leading token) or pass align='all'."
                ),
                stacklevel=2,
            )

    def _positions(self, where: Where, call: Call, batch: int) -> Tensor:
        """[batch, call.new] bool: which of this call's positions ``where`` covers."""
        return covered(where, call, batch, self._prompt_mask, self._marker_position)

    def _marker_position(self, marker: str | int) -> Tensor:
        """[batch]: each row's first absolute position of ``marker`` (see _scan_markers)."""
        return self._marker_start[self._marker_ids[marker]]

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
        self._call = Call(cached, new)
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
                self._build_plans(mask if mask is not None else ones(batch, cached))
                self._plan_key = None
            return
        mask = args.get("attention_mask")
        if mask is not None:
            mask = mask[:, :new]
        elif tokens is not None and batch > 1 and model.tokenizer is not None:
            mask = padding_mask(model, tokens, args)
        else:
            mask = ones(batch, new)
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
            real = padding_mask(self.model, tokens, {}).to(tokens.device).bool()
        self._marker_start = first_markers(
            tokens, real, cached, self._marker_ids, self._marker_start
        )

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
                call = Call(0, resid.shape[1])
                self._build_plans(ones(resid.shape[0], resid.shape[1]))
            plan = self._plans.get(layer)
            if plan is None:
                return resid
            return apply_plan(resid, plan, call, self._row_index, self._positions)

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
        return pd.DataFrame.from_records(
            applied_records(self._plans), columns=["row", "position", "layer", "norm", "kind"]
        )


def steering(
    model: Model,
    vectors: Validated[Steerable],
    align: Validated[AlignLike | None] = None,
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
        align: default alignment (``"front"``, ``"back"``, ``"all"``, ``"all:s"``,
            ``"offset:s"`` / ``int``, ``"positions:..."`` / list of ints, or an
            :class:`Align`); ``None`` (the default): each vector's own, front for a
            per-position vector and every position after the leading token for a one-row
            vector (:func:`~actadd.core.align.default_align`).
        on_short: ``"error"`` (default) when a prompt is shorter than a vector needs, or
            ``"clip"`` to drop the rows that do not fit.
        allow_other_model: use vectors made for another model with the same ``d_model``.
    """
    return Steering(model, vectors, align, on_short=on_short, allow_other_model=allow_other_model)
