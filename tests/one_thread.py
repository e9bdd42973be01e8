"""The one-thread fixture of the unit and system tiers (their conftest.py files import it)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are overhead-bound: one thread is faster, and immune to OpenMP
    oversubscription when the machine is shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
