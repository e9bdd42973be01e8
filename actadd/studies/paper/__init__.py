"""The paper's experiments: word count by layer, sentiment, known failures, alignment, the demo."""
