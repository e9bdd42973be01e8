"""Every notebook in notebooks/ runs top to bottom without a cell error.

Each is executed in a fresh kernel of this interpreter (the project's venv) with nbclient,
at the small sizes the notebooks are written with. Outputs are not written back: the
notebooks stay stripped in git.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[3] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 300  # per cell


def _kernel_spec_dir(tmp: Path) -> Path:
    """A kernelspec that runs this interpreter, so the kernel sees the same actadd."""
    import json

    spec = tmp / "kernels" / "actadd-venv"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "actadd venv",
                "language": "python",
            }
        )
    )
    return tmp


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {"01_quickstart.ipynb", "02_sweep_exploration.ipynb"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    if "llamacpp" in path.stem and importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed; `make setup-interop` builds it")
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} has outputs saved: strip them before committing"
    )
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_spec_dir(tmp_path)))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    client = NotebookClient(
        nb,
        timeout=TIMEOUT_S,
        kernel_name="actadd-venv",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
