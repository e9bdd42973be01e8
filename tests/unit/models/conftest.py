"""Fixtures of the model-loading tests: a converted-model cache under ``tmp_path``."""

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(directory))
    return directory
