"""Capability under steering: cloze facts, top-1 accuracy."""
