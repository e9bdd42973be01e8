"""The generic sweep kind: layers x coefficients x alignments (x methods) through the sweep
engine."""
