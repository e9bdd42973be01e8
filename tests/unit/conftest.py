"""Fixtures of the unit tier: torch on one thread (shared with tests/system), a small disk."""

import pytest
from one_thread import _one_thread  # noqa: F401  (autouse: every unit test runs on one thread)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs mounted under ``tmp_path``: a disk that fills up for real. Skipped
    unless this process is root and the mount works; unmounted afterwards."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "small_disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
