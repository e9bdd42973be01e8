"""Perplexity under steering (the paper's wedding protocol)."""
