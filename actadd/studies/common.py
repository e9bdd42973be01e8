"""What the study kinds share: :class:`ConfigKind`, a kind whose spec is its
:class:`~actadd.config.Config`, and :func:`result_claim`, a claim from a statistical test's
result when the test is not one of :mod:`actadd.lab.claims`'s evidence builders (a Welch t, a
permutation slope, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from actadd.config import Config
from actadd.lab.claims import Claim
from actadd.lab.kinds import BaseKind

__all__ = ["ConfigKind", "result_claim"]


class ConfigKind(BaseKind):
    """A kind whose spec is its config: :meth:`parse` reads the TOML table into
    :attr:`config_type` (everything that needs no model), :meth:`check` is the config's
    ``check_model`` (the plan step: what needs the model), and ``config.json`` is the
    config's ``to_dict`` with the kind's name."""

    config_type: ClassVar[type[Config]]

    def parse(self, config: dict[str, Any]) -> Any:
        return self.config_type.from_dict(config)

    def saved_config(self, spec: Config) -> dict[str, Any]:
        return {**spec.to_dict(), "kind": self.name}

    def check(self, spec: Config, model) -> None:
        check_model = getattr(spec, "check_model", None)
        if check_model is not None:
            check_model(model)


def result_claim(result: Mapping[str, Any], estimate: str, **kw: Any) -> Claim:
    """A :class:`~actadd.lab.claims.Claim` whose estimate is ``result[estimate]`` and whose
    interval and p-value are ``result``'s ``lo``, ``hi`` and ``p`` (e.g. the dict of
    :func:`actadd.lab.stats.welch_t`); ``kw`` gives the rest (id, statement, test, n, ...)."""
    return Claim(estimate=result[estimate], lo=result["lo"], hi=result["hi"], p=result["p"], **kw)
