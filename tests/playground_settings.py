"""The playground tests' settings on tiny-llama (tests/unit/ui/)."""

BASE = dict(
    prompt="hello there",
    positive="ab",
    negative="cd",
    layer=1,
    coeff=3.0,
    target_words="a, e",
    max_new_tokens=6,
    n_samples=2,
    map_layers="0:4",
    map_coeffs=(-2.0, 2.0),
)
