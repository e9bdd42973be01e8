"""The experiment harness: the run store (run directories, provenance), statistics, claims,
the report, the kind registry and the runner behind ``actadd run``."""

#: the modules of the harness (import from them; nothing is re-exported here)
__all__ = ["claims", "kinds", "report", "runinfo", "runner", "runs", "stats"]
