"""The generic sweep kind: layers x coefficients x alignments (x methods) through the sweep
engine."""

__all__: list[str] = []  # import its module: kind
