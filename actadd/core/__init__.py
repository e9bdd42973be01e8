"""The steering library a researcher imports: the vector, its placement, the steering context,
ablation, dataset methods (CAA, PCA), chat turns, prefix batches, generation, metrics and
diagnostics. Builds on :mod:`actadd.runtime` and :mod:`actadd.models`."""
