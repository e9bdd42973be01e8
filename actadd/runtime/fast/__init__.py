"""A leaner forward pass through TransformerLens 3.9 blocks, with every hook point intact.

``with fast_path(model):`` gives each of the model's block *instances* (never the classes) a
``forward`` that computes what ``TransformerBlock.forward`` computes with far fewer tensor
operations, and takes it away again on exit, normal or by exception. Decoding one token
through SmolLM2 on a CPU, TransformerLens dispatches ~410 torch operations per layer (~220
that are not views); the fast path ~160 (~50). At batch 1 that overhead, not the matmuls,
is what separated TransformerLens from Hugging Face. What changes:

- Q, K and V come from one matmul when their weights share a buffer (as
  :func:`actadd.models.layout.fast_layout` lays them out);
- a decoding step (one query per row) calls ``torch.nn.functional.scaled_dot_product_attention``
  with grouped K/V heads (``enable_gqa``) instead of materialising scores, repeating the
  K/V heads, building a causal mask, masking, softmax, NaN-cleaning and a second matmul;
  a pass of several queries (a prompt, a next-token forward, a perplexity pass) keeps
  TransformerLens's attention arithmetic, in fewer operations (see Numerics);
- the positions and the attention mask depend only on the forward call, so they are
  computed once per call and shared by every layer; each key is rotated once (a
  :class:`StaticKVCache` keeps the rotated keys), not at every step;
- ``ln1`` runs once per block (TransformerLens normalises the same residual three times,
  for the query, key and value inputs); RMSNorm, the gated MLP and rotary run bit for bit
  as TransformerLens computes them, with fewer operations;
- a hook point is called only when something is attached to it (an empty ``HookPoint`` is
  the identity); which ones are hooked is re-read whenever torch registers a hook.

**Hooks.** Every hook point on the path fires exactly where TransformerLens fires it, in
the same order, with the same tensor: ``hook_resid_pre`` (steering adds there),
``attn.hook_q/k/v``, ``hook_rot_q/k``, ``hook_z``, ``hook_attn_out``, ``hook_resid_mid``,
``ln2.hook_*``, ``mlp.hook_*``, ``hook_mlp_out``, ``hook_resid_post``. The fast path does
not hook the attention scores or pattern (SDPA never materialises them), so a block whose
``attn.hook_attn_scores`` / ``attn.hook_pattern`` is hooked — or whose ``ln1`` is hooked
(it fires three times per block in TransformerLens), or whose submodules carry plain
PyTorch hooks or their own patched ``forward`` — runs TransformerLens's own ``forward`` for
that call, as does every block while a global module hook is registered. ``run_with_cache``
therefore sees what it sees without the fast path.

**Scope.** Configurations the fast path does not cover (see :func:`unsupported_reason`:
alibi, local or bidirectional attention, soft caps, attention sinks, QK norm, split QKV
inputs, post-norm or parallel blocks, several devices, ...) are left entirely to
TransformerLens.

**Numerics.** A forward of several queries per row computes what TransformerLens computes
in the same order, and its logits equal TransformerLens's bit for bit on the development
machine (tested against TransformerLens on tiny models and SmolLM2 to 1e-4, observed 0).
Decoding steps agree to float rounding: SDPA scales and accumulates in another order
(max |diff| 2.9e-5 on SmolLM2's logits, which reach ~40; SDPA on a whole prompt would reach
1.3e-4 through the massive activations of SmolLM2's first token).
Exact additions, cache = no cache and batch = alone hold within the fast path as they hold
within TransformerLens's (``tests/unit/test_fastpath.py``, ``tests/unit/test_steer.py``).

:class:`StaticKVCache` is a drop-in ``TransformerLensKeyValueCache`` whose entries write
into preallocated buffers instead of concatenating the whole cache at every step.

**Choosing.** Every actadd forward that offers ``fast=`` (generation, :class:`PrefixBatch
<actadd.core.prefix.PrefixBatch>`, the next-token metrics) enters :func:`forward_mode`, the
one place that decides "fast path or TransformerLens's own forward".

**Layout.** :mod:`~actadd.runtime.fast.policy` decides when the fast path runs (covered
configurations, hooks, :func:`transformerlens_forward`); :mod:`~actadd.runtime.fast.block`
and :mod:`~actadd.runtime.fast.attention` compute; :mod:`~actadd.runtime.fast.geometry`
holds what one call's layers share; :mod:`~actadd.runtime.fast.kvcache` the static cache;
:mod:`~actadd.runtime.fast.components` the TransformerLens classes it recognises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from actadd.runtime.backends import Model
from actadd.runtime.fast.block import _FastBlock
from actadd.runtime.fast.components import TransformerBlock
from actadd.runtime.fast.geometry import _Shared
from actadd.runtime.fast.kvcache import StaticKVCache, StaticKVCacheEntry
from actadd.runtime.fast.policy import fast_allowed, transformerlens_forward, unsupported_reason
from actadd.runtime.modellock import exclusive

__all__ = [
    "StaticKVCache",
    "StaticKVCacheEntry",
    "fast_allowed",
    "fast_path",
    "forward_mode",
    "transformerlens_forward",
    "unsupported_reason",
]


@contextmanager
def fast_path(model: Model) -> Iterator[bool]:
    """Run ``model``'s blocks through the fast path inside the ``with`` block (see the module
    docstring). Yields ``True`` if it applies, ``False`` if the model is left to
    TransformerLens (:func:`unsupported_reason`, or a block with a ``forward`` patched by
    someone else, or inside :func:`transformerlens_forward`). Nested uses on one model are
    fine: the outermost owns the patch.

    The blocks are patched for the calling thread only: it holds the model's lock
    (:mod:`actadd.runtime.modellock`) inside, and a block called from another thread meanwhile runs
    TransformerLens's own ``forward``.
    """
    with exclusive(model), _fast_path(model) as applied:
        yield applied


@contextmanager
def _fast_path(model: Model) -> Iterator[bool]:
    if not fast_allowed(model):
        yield False
        return
    blocks = list(model.blocks)
    if any(isinstance(vars(b).get("forward"), _FastBlock) for b in blocks):
        yield True
        return
    if unsupported_reason(model) is not None or any("forward" in vars(b) for b in blocks):
        yield False
        return
    shared = _Shared(model)
    patched: list[tuple[TransformerBlock, _FastBlock]] = []
    try:
        for index, block in enumerate(blocks):
            fast = _FastBlock(block, index, shared)
            block.forward = fast
            patched.append((block, fast))
        yield True
    finally:
        for block, fast in patched:
            if vars(block).get("forward") is fast:
                del block.forward


@contextmanager
def forward_mode(model: Model, fast: bool = True) -> Iterator[bool]:
    """The context an actadd forward on ``model`` runs in, holding the model's lock
    (:mod:`actadd.runtime.modellock`): :func:`fast_path` if ``fast`` and
    :func:`fast_allowed` (not inside :func:`transformerlens_forward`, a backend with a fast
    path), else TransformerLens's own forward. Yields that choice, ``True`` for the fast path
    (even where :func:`fast_path` then leaves an uncovered model to TransformerLens, see
    :func:`unsupported_reason`: a caller may still use :class:`StaticKVCache` there, which
    TransformerLens's forward fills as it fills its own cache)."""
    allowed = bool(fast_allowed(model, fast))
    with fast_path(model) if allowed else exclusive(model):
        yield allowed
