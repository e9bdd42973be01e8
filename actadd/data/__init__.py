"""Data files shipped with actadd (see each file's provenance field)."""

__all__: list[str] = []  # data files only (actadd.core.datasets.DATA_DIR reads them)
