"""Steering-vector files: a checksum over the tensor data, and saves that leave nothing behind.

A vector file is a safetensors file whose JSON metadata (``"actadd"``) records how the
vector was made and, since format version 2, the sha256 of the tensor bytes.
"""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch

from actadd import SteeringVector, VectorFileError
from actadd.vectors import FORMAT_VERSION


@pytest.fixture(scope="module")
def vector() -> SteeringVector:
    gen = torch.Generator().manual_seed(0)
    return SteeringVector.from_tensor(torch.randn(3, 16, generator=gen), 2, "tiny-llama")


def _layout(path) -> tuple[dict, int]:
    """The safetensors header and the offset of the first data byte."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), 8 + n


def _overwrite(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _listing(directory) -> list[str]:
    return sorted(os.listdir(directory))  # hidden files included, unlike a shell glob


def test_saved_metadata_records_the_sha256_of_the_tensor_data(vector, tmp_path):
    import hashlib

    path = vector.save(tmp_path / "v.safetensors")
    header, start = _layout(path)
    meta = json.loads(header["__metadata__"]["actadd"])
    assert meta["format_version"] == FORMAT_VERSION == 2
    begin, end = header["vector"]["data_offsets"]
    data = path.read_bytes()[start + begin : start + end]
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert torch.equal(SteeringVector.load(path).tensor, vector.tensor)


def test_corrupted_data_bytes_are_refused_naming_the_file(vector, tmp_path):
    path = vector.save(tmp_path / "v.safetensors")
    header, start = _layout(path)
    # two float32 maxima: finite values whose norm overflows to inf (what used to load)
    _overwrite(path, start + header["vector"]["data_offsets"][0], struct.pack("<2f", 3e38, 3e38))
    with pytest.raises(VectorFileError, match="sha256") as info:
        SteeringVector.load(path)
    assert str(path) in str(info.value)


def test_one_flipped_bit_in_the_data_is_refused(vector, tmp_path):
    path = vector.save(tmp_path / "v.safetensors")
    header, start = _layout(path)
    offset = start + header["vector"]["data_offsets"][0] + 17
    byte = path.read_bytes()[offset]
    _overwrite(path, offset, bytes([byte ^ 0x01]))
    with pytest.raises(VectorFileError, match="corrupt"):
        SteeringVector.load(path)


def test_format_version_1_files_without_a_checksum_still_load(vector, tmp_path):
    from safetensors.torch import save_file

    meta = {
        "format": "actadd.steering_vector",
        "format_version": 1,
        "layer": 2,
        "model_name": "tiny-llama",
        "d_model": 16,
        "k": 3,
        "provenance": {"kind": "tensor"},
    }
    path = tmp_path / "old.safetensors"
    save_file({"vector": vector.tensor}, str(path), metadata={"actadd": json.dumps(meta)})
    assert torch.equal(SteeringVector.load(path).tensor, vector.tensor)


def test_a_file_from_a_newer_format_is_refused(vector, tmp_path):
    from safetensors.torch import save_file

    meta = {"format": "actadd.steering_vector", "format_version": 99, "layer": 2, "k": 3}
    meta["d_model"] = 16
    path = tmp_path / "future.safetensors"
    save_file({"vector": vector.tensor}, str(path), metadata={"actadd": json.dumps(meta)})
    with pytest.raises(VectorFileError, match="format version 99"):
        SteeringVector.load(path)


def test_saving_onto_an_existing_directory_is_refused_and_leaves_nothing(vector, tmp_path):
    target = tmp_path / "vectors"
    target.mkdir()
    with pytest.raises(VectorFileError, match="is a directory") as info:
        vector.save(target)
    assert str(target) in str(info.value)
    assert _listing(tmp_path) == ["vectors"]
    assert _listing(target) == []


def test_saving_under_a_regular_file_is_a_clear_error(vector, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(VectorFileError, match="Cannot write a steering vector"):
        vector.save(tmp_path / "afile" / "v.safetensors")
    assert _listing(tmp_path) == ["afile"]


def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary(
    vector, tmp_path, monkeypatch
):
    import safetensors.torch

    path = vector.save(tmp_path / "v.safetensors")
    before = path.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        (2 * vector).save(path)
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["v.safetensors"]


def test_saved_file_is_readable_by_others(vector, tmp_path):
    path = vector.save(tmp_path / "v.safetensors")
    assert path.stat().st_mode & 0o777 == 0o644
