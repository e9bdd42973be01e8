"""The pad confound: which pad tokens carry massive activations, and what that does to steering."""
