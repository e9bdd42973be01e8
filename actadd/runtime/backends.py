"""The two model backends actadd runs on, behind one small interface.

- :class:`HookedBackend`: TransformerLens's ``HookedTransformer`` (the default; what every
  GGUF, tiny and TransformerLens-name model is). Its own KV cache and ``start_at_layer``.
- :class:`BridgeBackend`: TransformerLens's ``TransformerBridge``, which wraps a Hugging Face
  model in place (any local HF checkpoint the bridge has an adapter for). Hugging Face's
  ``DynamicCache``; TransformerLens 3.9 has no ``start_at_layer`` on the bridge, so a
  forward "from a saved residual" runs from the tokens instead (:attr:`Backend.restarts`).

Everything that differs between them is here; the steering context, generation, the
batched forward and the sweeps ask :func:`backend_of` and never test the model's type.
Hook points are found the same way on both (:mod:`actadd.runtime.hooks`): the bridge registers
``blocks.{L}.hook_resid_pre`` as an alias of its ``blocks.{L}.hook_in``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Literal

from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

try:
    from transformer_lens import HookedTransformer

    HAS_HOOKED = True
except ImportError:  # TransformerLens 4.x removed it: only the bridge backend exists there
    HAS_HOOKED = False

    class HookedTransformer:  # type: ignore[no-redef]
        """Stand-in on TransformerLens 4.x, so annotations resolve; nothing is one."""


from actadd.errors import SteeringError

__all__ = [
    "BACKENDS",
    "BRIDGE",
    "HAS_HOOKED",
    "HF_CACHE_KWARGS",
    "HOOKED",
    "Backend",
    "BackendName",
    "BridgeBackend",
    "HookedBackend",
    "HookedTransformer",
    "Model",
    "TransformerBridge",
    "backend_of",
    "check_backend",
    "hf_cache_kwarg",
    "is_bridge",
    "route_hf_cache",
]

#: what actadd's functions take as ``model``: either backend
Model = HookedTransformer | TransformerBridge

BackendName = Literal["hooked", "bridge"]
BACKENDS: tuple[str, ...] = ("hooked", "bridge")


class Backend:
    """What the steering code needs from a model, beyond ``model.cfg`` and hook points."""

    name: BackendName
    #: a steered forward may start from a saved residual stream (``start_at_layer``)
    restarts: bool
    #: actadd's fast path (:mod:`actadd.runtime.fast`) can run this model's blocks
    fast: bool
    #: :meth:`final` returns logits, not the final residual stream
    final_is_logits: bool

    def cached_length(self, args: dict[str, Any]) -> int:
        """Positions already in the KV cache of a forward call (its bound arguments)."""
        raise NotImplementedError

    def cached_mask(self, args: dict[str, Any], cached: int) -> Tensor | None:
        """The attention mask of the cached positions, if the call says ([batch, cached])."""
        raise NotImplementedError

    def new_cache(self, model, batch: int) -> Any:
        """An empty KV cache for a decoding loop of ``batch`` rows."""
        raise NotImplementedError

    def cache_kwargs(self, model, cache: Any) -> dict[str, Any]:
        """Keyword arguments that make ``model(...)`` read and extend ``cache``."""
        raise NotImplementedError

    def step_mask(self, full_mask: Tensor, new: int) -> Tensor:
        """The ``attention_mask`` of a cached call adding ``new`` positions, from the mask of
        the whole sequence so far ([batch, cached + new])."""
        raise NotImplementedError

    def final(self, model, x: Tensor, **kwargs) -> Tensor:
        """``model(x, **kwargs)`` stopped before the unembedding where the backend can:
        the final residual stream [batch, pos, d_model] (hooked) or the logits (bridge).
        :func:`actadd.runtime.forward.last_logits` turns either into last-position logits."""
        raise NotImplementedError


class HookedBackend(Backend):
    name = "hooked"
    restarts = True
    fast = True
    final_is_logits = False

    def cached_length(self, args):
        cache = args.get("past_kv_cache")
        return int(cache[0].past_keys.shape[1]) if cache is not None else 0

    def cached_mask(self, args, cached):
        prev = getattr(args.get("past_kv_cache"), "previous_attention_mask", None)
        return prev if prev is not None and prev.shape[-1] == cached else None

    def new_cache(self, model, batch):
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        return TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, batch)

    def cache_kwargs(self, model, cache):
        return {"past_kv_cache": cache}

    def step_mask(self, full_mask, new):
        # TransformerLens's cache keeps the previous mask itself; a call passes its own part
        return full_mask[:, -new:]

    def final(self, model, x, **kwargs):
        return model(x, stop_at_layer=model.cfg.n_layers, **kwargs)


class BridgeBackend(Backend):
    name = "bridge"
    restarts = False  # TransformerLens 3.9: start_at_layer raises NotImplementedError
    fast = False
    # stop_at_layer=n_layers still returns logits on the bridge (3.9)
    final_is_logits = True

    def cached_length(self, args):
        extra = args.get("kwargs") or {}
        if extra.get("past_kv_cache") is not None:
            # the bridge would swallow it silently in **kwargs and run without a cache
            raise SteeringError(
                "A TransformerBridge takes Hugging Face's cache "
                "(past_key_values=, or cache= on transformers >= 5.25), not past_kv_cache=."
            )
        cache = next((extra[k] for k in HF_CACHE_KWARGS if extra.get(k) is not None), None)
        return int(cache.get_seq_length()) if cache is not None else 0

    def cached_mask(self, args, cached):
        mask = args.get("attention_mask")
        return mask[:, :cached] if mask is not None and mask.shape[-1] > cached else None

    def new_cache(self, model, batch):
        from transformers import DynamicCache

        route_hf_cache(model)  # a bridge booted outside load_model
        return DynamicCache()

    def cache_kwargs(self, model, cache):
        return {hf_cache_kwarg(model): cache, "use_cache": True}

    def step_mask(self, full_mask, new):
        # Hugging Face wants the mask of the whole sequence; the bridge derives the
        # positions of left-padded rows from it
        return full_mask

    def final(self, model, x, **kwargs):
        return model(x, **kwargs)


HOOKED, BRIDGE = HookedBackend(), BridgeBackend()

#: the names Hugging Face gives the KV-cache argument of ``forward``: ``past_key_values``
#: until transformers 5.24, ``cache`` from 5.25 (the old name then warns, FutureWarning)
HF_CACHE_KWARGS = ("cache", "past_key_values")


def hf_cache_kwarg(model) -> str:
    """The KV-cache keyword that the Hugging Face model inside a bridge takes: ``cache``
    where its ``forward`` has that parameter (transformers >= 5.25), else
    ``past_key_values``. Asked of the model's own signature, not of a version number."""
    forward = type(model.original_model).forward
    return _cache_kwarg_of(forward)


@functools.cache
def _cache_kwarg_of(forward) -> str:
    params = inspect.signature(forward).parameters
    return "cache" if "cache" in params else "past_key_values"


_ROUTED = "_actadd_cache_routed"


def route_hf_cache(bridge) -> None:
    """Make a bridge's KV cache work on transformers >= 5.25 (idempotent).

    transformers 5.25 hands each attention layer its KV cache as ``cache=``; the attention of
    TransformerLens's bridge (3.9 and 4.3, ``AttentionBridge._update_kv_cache``) reads only
    ``past_key_values=`` (or ``layer_past=``) and, finding neither, runs without the cache:
    cached generation then silently ignores every earlier token. One forward pre-hook on each
    attention module passes the cache under the old name as well. Where ``forward`` still
    takes ``past_key_values`` (transformers <= 5.24) it installs nothing.
    ``load_model(..., backend="bridge")`` calls it; so does the first cached call on a bridge
    booted elsewhere.
    """
    if getattr(bridge, _ROUTED, False):
        return
    if hf_cache_kwarg(bridge) == "cache":
        from transformer_lens.model_bridge.generalized_components.attention import (
            AttentionBridge,
        )

        for module in bridge.modules():
            if isinstance(module, AttentionBridge):
                module.register_forward_pre_hook(_cache_as_past_key_values, with_kwargs=True)
    setattr(bridge, _ROUTED, True)


def _cache_as_past_key_values(module, args, kwargs):
    if kwargs.get("cache") is not None and kwargs.get("past_key_values") is None:
        kwargs["past_key_values"] = kwargs["cache"]
        return args, kwargs
    return None


def is_bridge(model) -> bool:
    """Whether ``model`` is a TransformerLens ``TransformerBridge``."""
    return isinstance(model, TransformerBridge)


def backend_of(model) -> Backend:
    """The backend of a loaded model: :data:`BRIDGE` for a ``TransformerBridge``, otherwise
    :data:`HOOKED`."""
    return BRIDGE if is_bridge(model) else HOOKED


def check_backend(backend: object) -> BackendName:
    """``backend`` if it names one, else a one-line :class:`ModelLoadError`."""
    from actadd.errors import ModelLoadError

    if backend not in BACKENDS:
        raise ModelLoadError(f"backend must be one of {list(BACKENDS)}, got {backend!r}.")
    if backend == "hooked" and not HAS_HOOKED:
        raise ModelLoadError(
            "This TransformerLens (4.x) has no HookedTransformer; load with backend='bridge'."
        )
    return backend  # type: ignore[return-value]
