"""One folder per study: its kind (config -> tables), computation, claims and figures."""
