"""Experiment kind: is a steering vector "just injecting extra tokens"? (actadd.analysis)."""

from __future__ import annotations

from actadd.analysis import experiment_figures, run_experiment
from actadd.experiments import register


@register("token_injection", "ActAdd vs token injection, embeddings, transplants and controls")
class TokenInjectionKind:
    run = staticmethod(run_experiment)
    figures = staticmethod(experiment_figures)
