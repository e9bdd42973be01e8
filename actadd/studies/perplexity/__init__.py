"""Perplexity under steering (the paper's wedding protocol)."""

__all__: list[str] = []  # import its modules: config, kind, figures
