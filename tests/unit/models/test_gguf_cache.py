"""The converted-model cache (actadd.models.gguf_cache) on a synthetic GGUF: content key,
manifest, verification, rebuild, read-only directories and a disk too small.

Every test that could write converted weights points ``ACTADD_CACHE_DIR`` at ``tmp_path`` (the
``cache`` fixture, conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from unit.models.synthetic_gguf import (
    _cache_entries,
    write_tiny_llama_gguf,
)

import actadd
from actadd import ModelLoadError
from actadd.errors import ModelCacheWarning
from actadd.models import gguf_cache, sources

# --------------------------------------------------------------------------- the converted cache


@pytest.fixture
def tiny_gguf(tmp_path) -> Path:
    path = tmp_path / "tiny.gguf"
    write_tiny_llama_gguf(path)
    return path


def _logits(model) -> torch.Tensor:
    return model(model.to_tokens("Hello, world!"))


def _zero_middle(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\0" * (size // 4))


def _random_bytes(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(np.random.default_rng(0).bytes(size // 4))


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _other_gguf_in_manifest(path: Path) -> None:
    manifest = json.loads(path.read_text())
    manifest["source"]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))


DAMAGES = {
    "truncated weights": ("weights.safetensors", _truncate),
    "zeroed weights, same size": ("weights.safetensors", _zero_middle),
    "random bytes in weights": ("weights.safetensors", _random_bytes),
    "deleted tokenizer.json": ("tokenizer/tokenizer.json", Path.unlink),
    "truncated tokenizer.json": ("tokenizer/tokenizer.json", _truncate),
    "deleted tokenizer_config.json": ("tokenizer/tokenizer_config.json", Path.unlink),
    "overwritten hparams.json": ("hparams.json", _zero_middle),
    "deleted manifest": ("manifest.json", Path.unlink),
    "garbage manifest": ("manifest.json", _random_bytes),
    "manifest of another GGUF": ("manifest.json", _other_gguf_in_manifest),
}


def test_cache_entry_is_named_by_content_and_its_manifest_records_every_file(tiny_gguf, cache):
    import hashlib

    model = actadd.load_model(tiny_gguf)
    (entry,) = _cache_entries(cache)
    gguf_sha = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert entry.name == f"{gguf_sha[:24]}-v{gguf_cache.CONVERSION_VERSION}"
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == gguf_sha
    assert manifest["source"]["size"] == tiny_gguf.stat().st_size
    assert manifest["source"]["quantization"] == "F32"
    on_disk = {
        p.relative_to(entry).as_posix()
        for p in entry.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert set(manifest["files"]) == on_disk
    assert {"weights.safetensors", "hparams.json", "tokenizer/tokenizer.json"} <= on_disk
    for name, record in manifest["files"].items():
        data = (entry / name).read_bytes()
        assert record == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        assert (entry / name).stat().st_mode & 0o777 == 0o644  # a cache may be shared
    assert model.actadd_source == {
        "file": str(tiny_gguf.resolve()),
        "sha256": gguf_sha,
        "size": tiny_gguf.stat().st_size,
        "quantization": "F32",
    }


def test_the_cache_follows_content_not_path_or_mtime(tmp_path, tiny_gguf, cache, conversions):
    actadd.load_model(tiny_gguf)
    copy = tmp_path / "renamed copy.gguf"
    shutil.copyfile(tiny_gguf, copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    actadd.load_model(copy)
    assert len(conversions) == 1 and len(_cache_entries(cache)) == 1

    write_tiny_llama_gguf(copy, seed=1)  # same path, same size, new content
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    actadd.load_model(copy)
    assert len(conversions) == 2 and len(_cache_entries(cache)) == 2


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_a_damaged_cache_entry_is_rebuilt_with_one_warning_naming_it(
    tiny_gguf, cache, conversions, damage
):
    first = actadd.load_model(tiny_gguf)
    (entry,) = _cache_entries(cache)
    name, hurt = DAMAGES[damage]
    hurt(entry / name)

    with pytest.warns(ModelCacheWarning) as caught:
        model = actadd.load_model(tiny_gguf)
    (message,) = [str(w.message) for w in caught if w.category is ModelCacheWarning]
    assert str(entry) in message and "\n" not in message
    assert len(conversions) == 2
    assert torch.equal(_logits(model), _logits(first))
    for special in ("bos_token", "eos_token", "pad_token", "padding_side"):
        assert getattr(model.tokenizer, special) == getattr(first.tokenizer, special)
    assert gguf_cache.check_entry(entry) == (gguf_cache.check_entry(entry)[0], None)
    assert not [p for p in (cache / "gguf").iterdir() if p != entry]  # no temporaries left

    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelCacheWarning)
        actadd.load_model(tiny_gguf)  # sound again: no warning, no conversion
    assert len(conversions) == 2


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_check_entry_names_what_is_damaged(tiny_gguf, cache, damage):
    actadd.load_model(tiny_gguf)
    (entry,) = _cache_entries(cache)
    name, hurt = DAMAGES[damage]
    hurt(entry / name)
    manifest, problem = gguf_cache.check_entry(entry, gguf_cache.source_sha256(tiny_gguf))
    assert manifest is None
    assert problem.startswith(name) or (name == "manifest.json" and "manifest" in problem)


def test_hashes_are_checked_on_first_use_in_a_process_sizes_on_every_load(
    tiny_gguf, cache, monkeypatch
):
    actadd.load_model(tiny_gguf)
    hashed: list[str] = []
    real = gguf_cache.file_sha256

    def watched(path):
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(gguf_cache, "file_sha256", watched)
    monkeypatch.setattr(gguf_cache, "_VERIFIED", {})  # as in a new process
    monkeypatch.setattr(gguf_cache, "_SOURCE_SHA256", {})
    actadd.load_model(tiny_gguf)
    assert hashed.count("weights.safetensors") == 1 and hashed.count("tiny.gguf") == 1
    hashed.clear()
    actadd.load_model(tiny_gguf)
    assert hashed == []  # second use: stat only

    (entry,) = _cache_entries(cache)
    os.truncate(entry / "weights.safetensors", 100)  # caught by size, no hashing needed
    with pytest.warns(ModelCacheWarning, match="weights.safetensors is 100 bytes"):
        actadd.load_model(tiny_gguf)


def test_an_interrupted_conversion_leaves_no_entry_and_no_temporary(tiny_gguf, cache, monkeypatch):
    real = sources._convert_gguf

    def interrupted(src, out):
        real(src, out)  # every file written, then the process is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "_convert_gguf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        actadd.load_model(tiny_gguf)
    assert list((cache / "gguf").iterdir()) == []


def test_when_another_process_installs_the_entry_first_its_entry_is_kept(
    tiny_gguf, cache, monkeypatch
):
    real = sources._convert_gguf
    sha = gguf_cache.source_sha256(tiny_gguf)
    target = gguf_cache.entry_dir(sha)

    def racing(src, out):
        extra = real(src, out)
        if not target.exists():  # the other process finishes while we are converting
            gguf_cache.build_entry(src, sha, target, real)
        return extra

    monkeypatch.setattr(sources, "_convert_gguf", racing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelCacheWarning)
        model = actadd.load_model(tiny_gguf)
    assert _logits(model).isfinite().all()
    assert _cache_entries(cache) == [target]  # and no temporary directory left beside it
    assert gguf_cache.check_entry(target, sha)[1] is None


def test_debris_of_a_killed_conversion_is_never_used_and_is_cleaned_up(
    tiny_gguf, cache, conversions
):
    sha = gguf_cache.source_sha256(tiny_gguf)
    name = gguf_cache.entry_dir(sha).name
    # what SIGKILL mid-conversion leaves: a temporary directory of a dead process
    dead_pid = 4_999_999  # above Linux's largest pid_max
    debris = cache / "gguf" / f".{name}.tmp-{dead_pid}-abc"
    (debris / "tokenizer").mkdir(parents=True)
    (debris / "weights.safetensors").write_bytes(b"\0" * 100)
    old = time.time() - 2 * gguf_cache.STALE_TMP_S
    os.utime(debris, (old, old))
    fresh = cache / "gguf" / f".{name}.tmp-{dead_pid}-new"
    fresh.mkdir()

    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelCacheWarning)
        model = actadd.load_model(tiny_gguf)  # a cold build, not a "damaged entry"
    assert len(conversions) == 1
    assert _logits(model).isfinite().all()
    assert not debris.exists()  # stale and its process is gone
    assert fresh.exists()  # too recent to judge: left alone


@contextmanager
def _unprivileged():
    """Run as 'nobody' (root ignores permission bits, so a read-only directory needs this)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def world_readable_dir():
    directory = Path(tempfile.mkdtemp(prefix="actadd-ro-"))
    directory.chmod(0o755)
    yield directory
    for p in [directory, *directory.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(directory)


def test_a_cold_read_only_cache_is_one_clear_error(world_readable_dir, monkeypatch):
    gguf = world_readable_dir / "tiny.gguf"
    write_tiny_llama_gguf(gguf)
    gguf.chmod(0o644)
    cache = world_readable_dir / "cache"
    cache.mkdir(mode=0o555)
    cache.chmod(0o555)
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(cache))
    with _unprivileged(), pytest.raises(ModelLoadError) as info:
        actadd.load_model(gguf)
    message = str(info.value)
    assert "\n" not in message
    assert str(cache / "gguf") in message and "ACTADD_CACHE_DIR" in message
    assert list(cache.iterdir()) == []


def test_a_cache_path_under_a_regular_file_is_one_clear_error(tmp_path, tiny_gguf, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(tmp_path / "afile" / "cache"))
    with pytest.raises(ModelLoadError, match="set ACTADD_CACHE_DIR to a writable directory"):
        actadd.load_model(tiny_gguf)


def test_a_sound_read_only_cache_still_loads(world_readable_dir, monkeypatch):
    gguf = world_readable_dir / "tiny.gguf"
    write_tiny_llama_gguf(gguf)
    gguf.chmod(0o644)
    cache = world_readable_dir / "cache"
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(cache))
    good = _logits(actadd.load_model(gguf))
    for p in [cache, *cache.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    monkeypatch.setattr(gguf_cache, "_VERIFIED", {})  # as in a new process
    with _unprivileged():
        model = actadd.load_model(gguf)
    assert torch.equal(_logits(model), good)


def test_env_info_records_the_model_file_its_sha256_and_quantization(tiny_gguf, cache):
    import hashlib

    from actadd.lab.runinfo import env_info

    info = env_info(actadd.load_model(tiny_gguf))["model"]
    assert info["model_file"] == str(tiny_gguf.resolve())
    assert info["model_sha256"] == hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert info["quantization"] == "F32"
    tiny = env_info(actadd.load_model("tiny-llama"))["model"]
    assert (tiny["model_file"], tiny["model_sha256"], tiny["quantization"]) == (None,) * 3
    assert info["license"] is None and tiny["license"] is None  # no license actadd can name


# --------------------------------------------------------------------------- a disk too small


def _assert_disk_full_line(message: str, cache: Path, gguf: Path) -> None:
    assert "\n" not in message
    assert f"cache in {cache / 'gguf'} has no room for {gguf.name}" in message
    assert "needs at least" in message and "is free there" in message
    assert "set ACTADD_CACHE_DIR to a directory on a larger disk" in message


def test_a_cache_on_a_disk_smaller_than_the_weights_is_refused_before_dequantizing(
    tmp_path, tiny_gguf, small_disk, monkeypatch
):
    from actadd.models import gguf_llama

    dequantized = []
    monkeypatch.setattr(gguf_llama, "hf_state_dict", lambda *a: dequantized.append(a))
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(small_disk))
    needed = gguf_cache.conversion_bytes(tiny_gguf)
    assert needed > 64 * 1024  # the tmpfs is 64 KiB
    with pytest.raises(ModelLoadError) as info:
        actadd.load_model(tiny_gguf)
    _assert_disk_full_line(str(info.value), small_disk, tiny_gguf)
    assert f"at least {needed / 1024:,.1f} KiB" in str(info.value)
    assert dequantized == [] and os.listdir(small_disk / "gguf") == []


def test_a_disk_that_fills_during_the_conversion_is_one_line_and_leaves_nothing(
    tmp_path, tiny_gguf, small_disk, monkeypatch, conversions
):
    # the room check passes (as when another process fills the disk meanwhile): the real
    # tokenizer / safetensors writes then fail on the full tmpfs
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(small_disk))
    monkeypatch.setattr(gguf_cache, "ensure_room", lambda *args: None)
    with pytest.raises(ModelLoadError) as info:
        actadd.load_model(tiny_gguf)
    _assert_disk_full_line(str(info.value), small_disk, tiny_gguf)
    assert len(conversions) == 1 and os.listdir(small_disk / "gguf") == []


@pytest.mark.parametrize("where", ["weights", "tokenizer", "manifest"])
def test_running_out_of_space_leaves_no_entry_and_the_next_load_rebuilds_cleanly(
    tiny_gguf, cache, monkeypatch, where
):
    import errno

    import safetensors.torch

    full = OSError(errno.ENOSPC, "No space left on device")
    if where == "weights":  # safetensors reports it as a SafetensorError, not an OSError

        def save_file(*args, **kwargs):
            raise safetensors.SafetensorError(
                "Error while serializing: I/O error: No space left on device (os error 28)"
            )

        monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    elif where == "tokenizer":

        def tokenizer(*args, **kwargs):
            raise full

        monkeypatch.setattr(sources, "tokenizer_from_gguf", tokenizer)
    else:
        real = Path.write_text

        def write_text(self, *args, **kwargs):
            if self.name == gguf_cache.MANIFEST:
                raise full
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(ModelLoadError) as info:
        actadd.load_model(tiny_gguf)
    _assert_disk_full_line(str(info.value), cache, tiny_gguf)
    assert list((cache / "gguf").iterdir()) == []  # no entry, no temporary directory
    monkeypatch.undo()
    monkeypatch.setenv("ACTADD_CACHE_DIR", str(cache))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelCacheWarning)  # a cold build, not a repair
        model = actadd.load_model(tiny_gguf)
    assert _logits(model).isfinite().all()
    assert len(_cache_entries(cache)) == 1
