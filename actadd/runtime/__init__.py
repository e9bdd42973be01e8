"""The runtime: what runs a model. Imports nothing from the tiers above.

- :mod:`actadd.runtime.backends` — HookedTransformer and TransformerBridge behind one interface;
- :mod:`actadd.runtime.hooks` — hook-point names, built in one place;
- :mod:`actadd.runtime.tokens` — tokenization that never writes model state;
- :mod:`actadd.runtime.forward` — left padding, residuals, last-position logits;
- :mod:`actadd.runtime.fast` — the fast path (SDPA, static KV cache, hooks intact) and
  :func:`~actadd.runtime.fast.forward_mode`, which decides "fast or TransformerLens";
- :mod:`actadd.runtime.modellock` — one thread at a time on a model.
"""

__all__: list[str] = []  # a namespace: import from its modules (nothing loads torch here)
