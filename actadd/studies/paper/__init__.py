"""The paper's experiments: word count by layer, sentiment, known failures, alignment, the demo."""

# the kinds are found through the registry (actadd.lab.kinds), the figures in .figures
__all__: list[str] = []
