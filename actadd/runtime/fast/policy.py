"""When the fast path runs, and when TransformerLens's own forward runs instead.

- per model: :func:`unsupported_reason` names a configuration the fast path does not cover
  (the model is then left to TransformerLens throughout);
- per call: :func:`fast_allowed` says whether an actadd forward asked to run fast may
  (not inside :func:`transformerlens_forward`, and only on a backend that has a fast path);
- per block and call: :class:`_Points` reads which hook points are hooked (the fast path
  calls only those) and whether a hook needs TransformerLens's own block forward (on
  the attention scores or pattern, on ``ln1``, a plain PyTorch hook on a submodule, or a
  global module hook), re-read only when torch has registered a hook since.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.utils.hooks import RemovableHandle

from actadd.runtime.backends import HookedTransformer, Model, backend_of
from actadd.runtime.fast.components import (
    POST_NORM_ARCHITECTURES,
    Attention,
    GroupedQueryAttention,
    TransformerBlock,
)

__all__ = [
    "ATTENTION_CFG",
    "cfg_reason",
    "fast_allowed",
    "transformerlens_forward",
    "unsupported_reason",
]

# cfg attribute -> the value the fast path assumes (anything else: TransformerLens's forward)
_REQUIRED_CFG = {
    "attention_dir": "causal",
    "use_attn_in": False,
    "use_split_qkv_input": False,
    "use_hook_mlp_in": False,
    "use_attn_result": False,
    "use_normalization_before_and_after": False,
    "attn_only": False,
    "parallel_attn_mlp": False,
    "use_attention_sinks": False,
    "use_qk_norm": False,
    "clip_qkv": None,
    "use_logn_attn": False,
    "use_dynamic_ntk_rope": False,
    "load_in_4bit": False,
    "ungroup_grouped_query_attention": False,
    "n_devices": 1,
}


#: what the fast path's blocks need beyond their attention (norms, MLP, layout)
_BLOCK_ONLY = (
    "use_hook_mlp_in",
    "use_normalization_before_and_after",
    "attn_only",
    "parallel_attn_mlp",
    "use_qk_norm",
)
#: the part of :data:`_REQUIRED_CFG` any attention computed outside TransformerLens's own
#: ``forward`` assumes (the fast path's, and the behaviours study's shared-prefix attention)
ATTENTION_CFG = {k: v for k, v in _REQUIRED_CFG.items() if k not in _BLOCK_ONLY}


def cfg_reason(cfg, required: dict = ATTENTION_CFG) -> str | None:
    """The first ``cfg`` attribute that differs from ``required``, or a positional embedding
    other than standard or rotary, as a reason; ``None`` if neither."""
    for name, wanted in required.items():
        if getattr(cfg, name, wanted) != wanted:
            return f"cfg.{name} = {getattr(cfg, name)!r}"
    if cfg.positional_embedding_type not in ("standard", "rotary"):
        return f"positional_embedding_type {cfg.positional_embedding_type!r}"
    return None


def unsupported_reason(model: HookedTransformer) -> str | None:
    """Why :func:`~actadd.runtime.fast.fast_path` leaves ``model`` to TransformerLens, or
    ``None`` if it covers it."""
    cfg = model.cfg
    reason = cfg_reason(cfg, _REQUIRED_CFG)
    if reason is not None:
        return reason
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        return f"post-norm architecture {cfg.original_architecture}"
    if getattr(cfg, "attn_scores_soft_cap", -1.0) not in (None, -1.0, 0.0):
        return "attention score soft cap"
    if any(t != "global" for t in (getattr(cfg, "attn_types", None) or [])):
        return "local attention"
    for block in model.blocks:
        if type(block) is not TransformerBlock:
            return f"block type {type(block).__name__}"
        attn = block.attn
        if type(attn) not in (Attention, GroupedQueryAttention):
            return f"attention type {type(attn).__name__}"
        if attn.attn_type != "global" or attn._attention_dir_override not in (None, "causal"):
            return "non-global or overridden attention direction"
    return None


# --------------------------------------------------------------------------- hooks


def _hooked(module: nn.Module) -> bool:
    """Whether calling ``module`` could run anything besides its ``forward``."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _global_hooks() -> bool:
    m = nn.modules.module
    return bool(
        m._global_forward_hooks
        or m._global_forward_pre_hooks
        or m._global_backward_hooks
        or m._global_backward_pre_hooks
    )


def _patched(module: nn.Module) -> bool:
    """Whether someone put an instance-level ``forward`` on ``module``."""
    return "forward" in module.__dict__


def _hook_stamp() -> int | None:
    """Changes whenever torch registers a hook anywhere (every registration takes a new
    ``RemovableHandle`` id); ``None`` if this torch does not expose the counter."""
    return getattr(RemovableHandle, "next_id", None)


class _Points:
    """A block's hook points the fast path runs through: each attribute is the
    ``HookPoint`` if something is attached to it, else ``None`` (an empty hook point is the
    identity, so it is skipped). ``fallback`` says the block must run TransformerLens's own
    forward: a hook on what SDPA never materialises (``attn.hook_attn_scores``,
    ``attn.hook_pattern``), on ``ln1`` (TransformerLens runs it three times per block), or
    a plain PyTorch hook on a submodule or anywhere globally.

    Re-read only when torch has registered a hook since the last read (removing one can
    only leave a hook point empty, and calling an empty hook point is still exact)."""

    NAMES = {
        "resid_pre": "hook_resid_pre",
        "attn_out": "hook_attn_out",
        "resid_mid": "hook_resid_mid",
        "mlp_out": "hook_mlp_out",
        "resid_post": "hook_resid_post",
        "q": "attn.hook_q",
        "k": "attn.hook_k",
        "v": "attn.hook_v",
        "rot_q": "attn.hook_rot_q",
        "rot_k": "attn.hook_rot_k",
        "z": "attn.hook_z",
        "ln2_scale": "ln2.hook_scale",
        "ln2_normalized": "ln2.hook_normalized",
        "mlp_pre": "mlp.hook_pre",
        "mlp_pre_linear": "mlp.hook_pre_linear",
        "mlp_post": "mlp.hook_post",
    }

    def __init__(self, block: TransformerBlock) -> None:
        self.modules = dict(block.named_modules())
        self.stamp: object = object()  # never equal to a stamp: read on first use
        self.fallback = True

    def refresh(self) -> None:
        stamp = _hook_stamp()
        if stamp is not None and stamp == self.stamp:
            return
        self.stamp = stamp
        mods = self.modules
        for attr, name in self.NAMES.items():
            hp = mods.get(name)
            setattr(self, attr, hp if hp is not None and _hooked(hp) else None)
        attn, ln1 = mods["attn"], mods["ln1"]
        self.fallback = (
            _global_hooks()
            or any(_hooked(mods[n]) for n in ("attn", "ln1", "ln2", "mlp"))
            or _hooked(attn.hook_attn_scores)
            or _hooked(attn.hook_pattern)
            or any(_hooked(m) for m in ln1.children())
        )


_OFF = "_actadd_transformerlens_forward"  # instance attribute: depth of the contexts below


@contextmanager
def transformerlens_forward(model: Model) -> Iterator[None]:
    """Inside, every actadd forward on ``model`` runs TransformerLens's own forward, as
    ``fast=False`` does: :func:`~actadd.runtime.fast.fast_path` leaves the model alone, and
    :func:`actadd.core.generation.generate_tokens` decodes with TransformerLens's cache. For
    checking a result against TransformerLens, and for ``benchmarks/bench_suite.py``'s
    before/after timings of whole experiments. Nests; kept on the model instance."""
    vars(model)[_OFF] = vars(model).get(_OFF, 0) + 1
    try:
        yield
    finally:
        vars(model)[_OFF] -= 1
        if not vars(model)[_OFF]:
            del vars(model)[_OFF]


def fast_allowed(model: Model, fast: bool = True) -> bool:
    """Whether an actadd forward asked to run ``fast`` may (not inside
    :func:`transformerlens_forward`)."""
    return fast and backend_of(model).fast and not vars(model).get(_OFF, 0)
