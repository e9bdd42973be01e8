"""The token-injection claims module: its old function name still resolves, with a warning."""

from __future__ import annotations

import pytest

from actadd.studies.token_injection import claims


def test_the_old_name_of_claims_against_controls_warns_and_gives_the_function():
    with pytest.warns(DeprecationWarning, match="v2_claims is now claims_against_controls"):
        old = claims.v2_claims
    assert old is claims.claims_against_controls


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        claims.nope  # noqa: B018
