"""The experiment harness: the run store (run directories, provenance), statistics, claims,
the report, the kind registry and the runner behind ``actadd run``."""
