"""A claim from a statistical test's result: the one step the studies' claims share when the
test is not one of :mod:`actadd.lab.claims`'s evidence builders (a Welch t, a permutation
slope, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actadd.lab.claims import Claim

__all__ = ["result_claim"]


def result_claim(result: Mapping[str, Any], estimate: str, **kw: Any) -> Claim:
    """A :class:`~actadd.lab.claims.Claim` whose estimate is ``result[estimate]`` and whose
    interval and p-value are ``result``'s ``lo``, ``hi`` and ``p`` (e.g. the dict of
    :func:`actadd.lab.stats.welch_t`); ``kw`` gives the rest (id, statement, test, n, ...)."""
    return Claim(estimate=result[estimate], lo=result["lo"], hi=result["hi"], p=result["p"], **kw)
