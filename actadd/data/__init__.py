"""Data files shipped with actadd (see each file's provenance field)."""
