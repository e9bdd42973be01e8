"""One folder per study: its kind (config -> tables), computation, claims and figures."""

__all__: list[str] = []  # one subpackage per study: import its modules
