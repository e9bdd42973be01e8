"""The playground panel both playground test modules drive, with each module's ``BASE``
settings (``playground_settings.BASE``, or the module's smaller copy)."""

from __future__ import annotations

import pytest

import actadd


@pytest.fixture
def panel(request, tiny_llama):
    pytest.importorskip("ipywidgets", reason="the playground extra: pip install -e '.[playground]'")
    p = actadd.playground(tiny_llama, **request.module.BASE)
    yield p
    assert p.wait(60)
