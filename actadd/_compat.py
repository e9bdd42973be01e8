"""Known, deliberate warning filters. Nothing else is silenced."""

import warnings

__all__ = ["silence_known_warnings"]


def silence_known_warnings() -> None:
    # TransformerLens 3.9 announces that HookedTransformer (and its from_pretrained) is
    # deprecated in favour of 4.x's TransformerBridge. We pin <4 on purpose (pyproject.toml);
    # the notice says nothing actionable to our users, so this one message is filtered.
    warnings.filterwarnings(
        "ignore", message=r"HookedTransformer.* is deprecated", category=DeprecationWarning
    )
