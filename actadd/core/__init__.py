"""The steering library a researcher imports: the vector, its placement, the steering context,
ablation, dataset methods (CAA, PCA), chat turns, prefix batches, generation, metrics and
diagnostics. Builds on :mod:`actadd.runtime` and :mod:`actadd.models`."""

__all__: list[str] = []  # the package exports nothing itself: import its modules
