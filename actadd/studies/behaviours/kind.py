"""Experiment kind ``behaviours``: the CAA behaviour benchmark (Rimsky et al. 2023; Tan et
al. 2024's reliability measures) with every steering method, on the workbench's models.

The study's modules: the datasets (:mod:`actadd.studies.behaviours.data`), the config
(:mod:`~actadd.studies.behaviours.config`), the protocol
(:mod:`~actadd.studies.behaviours.protocol`), the run (:mod:`~actadd.studies.behaviours.run`),
the claims (:mod:`~actadd.studies.behaviours.claims`) and the figures
(:mod:`~actadd.studies.behaviours.figures`). This module is the kind (:data:`KIND`).
"""

from __future__ import annotations

from pathlib import Path

from actadd.studies.behaviours.claims import claims
from actadd.studies.behaviours.config import NAME, BehavioursConfig
from actadd.studies.common import ConfigKind

__all__ = ["KIND", "NAME", "BehavioursKind"]


class BehavioursKind(ConfigKind):
    name = NAME
    description = "the seven CAA A/B behaviours: every method, reliability, verdicts"
    config_type = BehavioursConfig

    def run(self, spec: BehavioursConfig, model, run) -> None:
        from actadd.studies.behaviours.run import run_behaviours

        run_behaviours(spec, model, run)

    @staticmethod
    def part_tables(key: str) -> tuple[str, ...]:
        """The tables every behaviour's unit holds in ``parts/`` (``actadd verify``)."""
        from actadd.studies.behaviours.run import UNIT_TABLES

        return UNIT_TABLES

    def claims(self, run) -> list:
        return claims(run)

    def figures(self, run) -> list[Path]:
        from actadd.lab.claims import adjust, table
        from actadd.studies.behaviours.claims import verdicts
        from actadd.studies.behaviours.figures import behaviour_figures

        tables = {n: run.read_table(n) for n in ("results", "data", "steerability")}
        tables["verdicts"] = verdicts(tables["results"], tables["data"], table(adjust(claims(run))))
        return behaviour_figures(tables, run.figures)


KIND = BehavioursKind()
