"""Experiment kind ``method_null``: steering methods and a positive control against random
directions matched to each in row norms and in KL on neutral text, by a sequential rank
test (see :mod:`actadd.studies.method_null.run` and :mod:`~actadd.studies.method_null.claims`).
"""

from __future__ import annotations

from pathlib import Path

from actadd.studies.common import ConfigKind
from actadd.studies.method_null.claims import claims
from actadd.studies.method_null.config import NAME, MethodNullConfig
from actadd.studies.method_null.run import TABLES, run_method_null

__all__ = ["KIND", "MethodNullKind"]


class MethodNullKind(ConfigKind):
    name = NAME
    description = "methods and a positive control against KL-matched random directions"
    config_type = MethodNullConfig

    def run(self, spec: MethodNullConfig, model, run) -> None:
        run_method_null(spec, model, run)

    @staticmethod
    def part_tables(key: str) -> tuple[str, ...]:
        """The tables every cell's unit holds in ``parts/`` (``actadd verify``)."""
        return TABLES

    def claims(self, run) -> list:
        return claims(run)

    def figures(self, run) -> list[Path]:
        return []


KIND = MethodNullKind()
