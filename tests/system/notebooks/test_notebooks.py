"""Every notebook in notebooks/ runs top to bottom without a cell error, and shows its plots.

Each is executed in a fresh kernel of this interpreter (the project's venv) with nbclient,
at the small sizes the notebooks are written with, on the kernel's own (inline) matplotlib
backend, as in Jupyter. A plot cell (tagged ``plot``, or calling a drawing function of
``actadd.plots`` or pyplot) must leave an ``image/png`` output: a figure that silently fails
to display fails the test. Outputs are not written back: the notebooks stay stripped in git.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[3] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 300  # per cell
PLOT_TAG = "plot"
# a call of one of actadd.plots' drawing functions, or of pyplot
PLOT_CALL = re.compile(
    r"\b(?:heatmap|layer_curve|proportion_by_layer|mean_by|cell_bars|ratio_vs_relevance"
    r"|plt\.\w+)\s*\("
)


def plot_cells(nb) -> list[int]:
    """Indices of the code cells that draw a figure: tagged ``plot`` or calling a drawing
    function (:data:`PLOT_CALL`)."""
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and (PLOT_TAG in c.metadata.get("tags", ()) or PLOT_CALL.search(c.source))
    ]


def plot_cells_without_images(nb) -> list[str]:
    """One line per plot cell of an executed notebook that has no ``image/png`` output."""
    missing = []
    for i in plot_cells(nb):
        outputs = nb.cells[i].get("outputs", [])
        if not any("image/png" in o.get("data", {}) for o in outputs):
            first = nb.cells[i].source.strip().splitlines()[0][:60]
            missing.append(f"cell {i} ({first!r}) drew no image")
    return missing


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


def test_notebook_02_marks_its_three_plot_cells():
    nb = nbformat.read(next(p for p in NOTEBOOKS if p.stem.startswith("02_")), as_version=4)
    assert len(plot_cells(nb)) == 3


def test_a_plot_cell_without_an_image_is_caught():
    nb = nbformat.v4.new_notebook()
    image = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": ""})
    text = nbformat.v4.new_output("stream", text="<Figure size 550x352 with 1 Axes>")
    nb.cells = [
        nbformat.v4.new_code_cell('heatmap(summary, "kl_neutral");', outputs=[image]),
        nbformat.v4.new_code_cell('layer_curve(df, "kl_neutral");', outputs=[text]),
        nbformat.v4.new_code_cell("draw_it()", metadata={"tags": [PLOT_TAG]}),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    assert plot_cells(nb) == [0, 1, 2]
    missing = plot_cells_without_images(nb)
    assert [m.split(" (")[0] for m in missing] == ["cell 1", "cell 2"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    if "llamacpp" in path.stem and importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed; `make setup-interop` builds it")
    if "playground" in path.stem and importlib.util.find_spec("ipywidgets") is None:
        pytest.skip("ipywidgets is not installed; `make setup-playground` installs it")
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} has outputs saved: strip them before committing"
    )
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_spec_dir(tmp_path)))
    # the kernel chooses its own backend (inline), as in Jupyter: plots must show there
    monkeypatch.delenv("MPLBACKEND", raising=False)
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
    missing = plot_cells_without_images(nb)
    assert not missing, f"{path.name}: plot cells without a figure: {missing}"
