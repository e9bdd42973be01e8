"""Shared fixtures. Read-only models are loaded once per session and never mocked.

Tiers (see tests/README.md):
- tests/unit: tiny random models (``tiny-llama``, ``tiny-gpt2``, ``tiny-gemma3``), seconds each.
- tests/integration: the embedded SmolLM2-135M-Instruct, loaded once per session.
- tests/system: real processes and services (Ray, kill -9, the browser, notebooks, findings).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_state import changes, snapshot

import actadd
from actadd.runtime.backends import HAS_HOOKED, is_bridge

BRIDGE = pytest.mark.bridge
BRIDGE_MODELS = [
    pytest.param(f"bridge:{n}", marks=BRIDGE) for n in ("tiny-llama", "tiny-gpt2", "tiny-gemma3")
]


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.fixture
def conversions(monkeypatch) -> list[Path]:
    """Records every GGUF conversion into the model cache (the real one runs)."""
    from actadd.models import sources

    calls: list[Path] = []
    real = sources._convert_gguf

    def counted(src, out):
        calls.append(Path(src))
        return real(src, out)

    monkeypatch.setattr(sources, "_convert_gguf", counted)
    return calls


@pytest.fixture(scope="session")
def tiny_llama():
    return _load("tiny-llama")


@pytest.fixture(scope="session")
def tiny_gpt2():
    return _load("tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_gemma3():
    """Gemma 3's architecture, tiny: sliding window of 4 tokens on layers 0-2, QK-norm."""
    return _load("tiny-gemma3")


@pytest.fixture(scope="session", params=["tiny-llama", "tiny-gpt2", "tiny-gemma3"])
def tiny_model(request):
    return _load(request.param)


def _load(spec: str):
    """``"tiny-llama"`` (a HookedTransformer) or ``"bridge:tiny-llama"`` (a TransformerBridge
    around the HF model saved with save_pretrained, see actadd.models.bridge)."""
    backend, _, name = spec.rpartition(":")
    if not backend and not HAS_HOOKED:
        pytest.skip("this TransformerLens (4.x) has no HookedTransformer")
    return _warm(actadd.load_model(name, backend=backend or "hooked"))


def _warm(model):
    """A bridge makes some of its own state on its first forwards (hooks on the wrapped
    model, a flag for padded batches); make it now, so that _models_left_clean sees only
    what a test leaves."""
    if is_bridge(model):
        actadd.generate(model, ["a", "bc"], max_new_tokens=1, progress=False)
        # the first run_with_cache registers hooks on the wrapped HF modules (3 a block, kept)
        model.run_with_cache(model.to_tokens("a"), names_filter="blocks.0.hook_resid_pre")
    return model


@pytest.fixture(scope="session", params=["tiny-llama", "tiny-gpt2", "tiny-gemma3", *BRIDGE_MODELS])
def any_model(request):
    """Each tiny model on each backend: the steering proofs run on all six."""
    return _load(request.param)


@pytest.fixture(scope="session", params=BRIDGE_MODELS)
def tiny_bridge(request):
    return _load(request.param)


@pytest.fixture(scope="session")
def smollm2():
    if not HAS_HOOKED:
        pytest.skip("this TransformerLens (4.x) has no HookedTransformer")
    return actadd.load_model()


@pytest.fixture(scope="session")
def smollm2_bridge():
    """SmolLM2 on the TransformerBridge: the GGUF's tensors in an HF LlamaForCausalLM."""
    return _warm(actadd.load_model(backend="bridge"))


SHARED_MODELS = (
    "tiny_llama",
    "tiny_gemma3",
    "tiny_gpt2",
    "tiny_model",
    "any_model",
    "tiny_bridge",
    "smollm2",
    "smollm2_bridge",
)


@pytest.fixture(autouse=True)
def _models_left_clean(request):
    """Every test must leave the shared models as it found them: no hook on any module, no
    patched ``forward`` (on the model or a block) or other attribute left behind, every
    ``cfg`` field (``default_prepend_bos``...) and the tokenizer's sides unchanged, the
    model's lock free (:func:`model_state.snapshot`)."""
    models = {n: request.getfixturevalue(n) for n in SHARED_MODELS if n in request.fixturenames}
    before = {n: snapshot(m) for n, m in models.items()}
    yield
    for name, model in models.items():
        changed = changes(before[name], snapshot(model))
        assert not changed, f"{name} left changed:\n" + "\n".join(changed)
