"""The converted-model cache on the real conversion: SmolLM2's entry, damaged the ways users
have met (issue 12), is detected on load and rebuilt, and the model answers as before.

One conversion serves every test: the session's own entry (the one the ``smollm2`` fixture
loads) is copied into a temporary ``ACTADD_CACHE_DIR`` per test, with hard links for the
files a test does not damage. Every damage first gives the file its own copy, so the shared
entry is never touched. The same damages, each followed by a full rebuild, run on a tiny
GGUF in ``tests/unit/models/test_gguf_cache.py`` (which also checks that the rebuilt tokenizer
keeps its eos and pad); here the full rebuild (one SmolLM2 conversion, a few seconds) runs for the
case users reported as silent and worst: 50 MB of zeros that made "The capital of France
is" answer " the".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import actadd
from actadd import ModelLoadError
from actadd.errors import ModelCacheWarning
from actadd.models import gguf_cache, smollm2_path, sources

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def good_entry() -> Path:
    """The session's verified SmolLM2 entry in the default cache (converted at most once)."""
    return sources.converted_gguf_dir(smollm2_path())


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture
def entry(good_entry, tmp_path, monkeypatch) -> Path:
    """A private copy of the SmolLM2 entry, in a temporary cache that load_model() uses."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(cache))
    target = cache / "gguf" / good_entry.name
    shutil.copytree(good_entry, target, copy_function=_link_or_copy)
    return target


def _own(path: Path) -> Path:
    """Replace a hard link by a private copy, so damaging it cannot reach the shared entry."""
    private = path.with_name(path.name + ".own")
    shutil.copyfile(path, private)
    os.replace(private, path)
    return path


def _truncate(path: Path) -> None:
    os.truncate(_own(path), path.stat().st_size - 1000)


def _zero_50mb(path: Path) -> None:
    with open(_own(path), "r+b") as f:
        f.seek(100 << 20)
        f.write(b"\0" * (50 << 20))


def _random_bytes(path: Path) -> None:
    with open(_own(path), "r+b") as f:
        f.seek(100 << 20)
        f.write(np.random.default_rng(0).bytes(50 << 20))


def _delete(path: Path) -> None:
    path.unlink()


DAMAGES = {
    "truncated weights": ("weights.safetensors", _truncate),
    "50 MB of zeros in the weights": ("weights.safetensors", _zero_50mb),
    "random bytes in the weights": ("weights.safetensors", _random_bytes),
    "deleted tokenizer.json": ("tokenizer/tokenizer.json", _delete),
    "truncated tokenizer.json": ("tokenizer/tokenizer.json", _truncate),
    "deleted tokenizer_config.json": ("tokenizer/tokenizer_config.json", _delete),
    "deleted manifest": ("manifest.json", _delete),
}


def _next_token(model) -> str:
    logits = model(model.to_tokens(PROMPT))[0, -1]
    assert logits.isfinite().all()
    return model.to_single_str_token(int(logits.argmax()))


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_each_reported_damage_is_detected_in_the_real_entry(entry, damage):
    name, hurt = DAMAGES[damage]
    hurt(entry / name)
    manifest, problem = gguf_cache.check_entry(entry)
    print(f"{damage}: {problem}")
    assert manifest is None
    assert name in problem


def test_zeroed_weights_are_rebuilt_and_the_model_still_answers_paris(entry, conversions, smollm2):
    _zero_50mb(entry / "weights.safetensors")
    with pytest.warns(ModelCacheWarning, match="weights.safetensors does not match") as caught:
        model = actadd.load_model()
    (message,) = [str(w.message) for w in caught if w.category is ModelCacheWarning]
    assert str(entry) in message and "\n" not in message
    assert len(conversions) == 1
    assert _next_token(model) == " Paris"
    tokens = model.to_tokens(PROMPT)
    torch.testing.assert_close(model(tokens), smollm2(tokens), rtol=0, atol=1e-5)
    assert gguf_cache.check_entry(entry)[1] is None


def test_a_cold_read_only_cache_is_one_line_naming_actadd_cache_dir(monkeypatch, conversions):
    directory = Path(tempfile.mkdtemp(prefix="actadd-ro-"))
    try:
        directory.chmod(0o755)
        cache = directory / "cache"
        cache.mkdir()
        cache.chmod(0o555)
        monkeypatch.setenv("ACTADD_CACHE_DIR", str(cache))
        euid, egid = os.geteuid(), os.getegid()
        if euid == 0:  # root ignores permission bits: be 'nobody' for the load
            os.setegid(65534)
            os.seteuid(65534)
        try:
            with pytest.raises(ModelLoadError) as info:
                actadd.load_model()
        finally:
            if euid == 0:
                os.seteuid(euid)
                os.setegid(egid)
        message = str(info.value)
        assert "\n" not in message
        assert str(cache / "gguf") in message and "ACTADD_CACHE_DIR" in message
        assert conversions == []  # refused before any conversion work
        assert list(cache.iterdir()) == []
    finally:
        shutil.rmtree(directory)


def test_loaded_model_carries_its_file_sha256_quantization_and_license(smollm2):
    from actadd.lab.retarget import DEPTHS, SMOLLM2
    from actadd.lab.runinfo import env_info
    from actadd.models.sources import SMOLLM2_LICENSE

    info = env_info(smollm2)["model"]
    assert info["model_file"] == str(smollm2_path().resolve())
    assert info["model_sha256"] == gguf_cache.file_sha256(smollm2_path())
    assert info["quantization"] == "Q4_1"
    assert info["license"] == SMOLLM2_LICENSE
    assert info["n_layers"] == DEPTHS[SMOLLM2]  # what --model maps SmolLM2 configs from
