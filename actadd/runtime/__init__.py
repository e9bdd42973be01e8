"""The runtime: what runs a model. Backends (HookedTransformer, TransformerBridge), hook
names, tokens, the batched forward and the fast path. Imports nothing from the tiers above."""
