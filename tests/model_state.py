"""A snapshot of everything about a model that a call could leave changed, for tests.

:func:`snapshot` records, for the model and every submodule, its PyTorch hooks (forward,
forward-pre, backward; with and without kwargs), the hooks on TransformerLens hook points,
the names of its instance attributes and which callables sit among them (a patched
``forward`` on the model or on a block), plus every field of ``model.cfg``, the tokenizer's
padding and truncation sides, PyTorch's global module hooks and whether a thread holds the
model's lock. :func:`changes` lists what differs between two snapshots, one line each.
Weights are left out unless asked for (``weights=True``: one sum per parameter).
"""

from __future__ import annotations

from torch import nn

from actadd.runtime.modellock import model_lock

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
)
_GLOBAL = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


def snapshot(model, *, weights: bool = False) -> dict[str, object]:
    """``{what: value}`` for everything listed in the module docstring."""
    state: dict[str, object] = {}
    for name, module in model.named_modules():
        where = name or "<model>"
        own = vars(module)
        for key in _HOOK_DICTS:
            hooks = own.get(key)
            if hooks:
                state[f"{where}.{key}"] = tuple(hooks)
        for key in ("fwd_hooks", "bwd_hooks"):  # TransformerLens HookPoint handles
            if own.get(key):
                state[f"{where}.{key}"] = len(own[key])
        state[f"{where} attributes"] = frozenset(own)
        state[f"{where} callables"] = frozenset(
            (k, id(v)) for k, v in own.items() if callable(v) and not isinstance(v, type)
        )
    for key, value in vars(model.cfg).items():
        state[f"cfg.{key}"] = repr(value)
    tok = getattr(model, "tokenizer", None)
    if tok is not None:
        state["tokenizer.padding_side"] = tok.padding_side
        state["tokenizer.truncation_side"] = tok.truncation_side
    for key in _GLOBAL:
        state[f"torch {key}"] = tuple(getattr(nn.modules.module, key))
    owner = model_lock(model).owner
    state["lock holder"] = None if owner is None else owner.name
    if weights:
        for name, p in model.named_parameters():
            state[f"weight {name}"] = float(p.detach().double().sum())
    return state


def changes(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What differs between two snapshots, one line each (for sets: what was added and
    removed)."""
    out = []
    for k in sorted(set(before) | set(after)):
        old, new = before.get(k, "<absent>"), after.get(k, "<absent>")
        if old == new:
            continue
        if isinstance(old, frozenset) and isinstance(new, frozenset):
            out.append(f"{k}: added {sorted(new - old)}, removed {sorted(old - new)}")
        else:
            out.append(f"{k}: {old!r} -> {new!r}")
    return out
