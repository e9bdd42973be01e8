"""Token helpers: one-token strings and what their errors say."""

from __future__ import annotations

import pytest

from actadd.errors import SteeringError
from actadd.runtime.tokens import single_token_id


def test_a_several_token_string_names_its_pieces_and_the_callers_rule(tiny_llama):
    with pytest.raises(SteeringError, match=r"word 'ab' is 2 tokens \(\['a', 'b'\]\); one only\."):
        single_token_id(tiny_llama, "ab", "word", "one only")


def test_the_default_rule_offers_a_token_id(tiny_llama):
    with pytest.raises(SteeringError, match=r"pad_token 'ab' is 2 tokens .*\(or pass a token id\)"):
        single_token_id(tiny_llama, "ab")
    assert single_token_id(tiny_llama, "a") == single_token_id(tiny_llama, "a", rule="unused")
