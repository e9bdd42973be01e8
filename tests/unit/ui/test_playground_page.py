"""The playground as a page for users: what its labels and status say, how the pad token
shows, results marked stale after a failed request, a page that opens without computing,
and the server command that culls idle kernels. On tiny-llama."""

from __future__ import annotations

import json
from pathlib import Path

import playground_settings
import pytest

# before actadd.ui.panel, which imports ipywidgets: without the extra the module is skipped
pytest.importorskip("ipywidgets", reason="the playground extra: pip install -e '.[playground]'")

import actadd  # noqa: E402
from actadd import SteeringVector  # noqa: E402
from actadd.core.diagnostics import logit_lens  # noqa: E402
from actadd.errors import SteeringError  # noqa: E402
from actadd.ui import compute, render, serve  # noqa: E402
from actadd.ui import panel as panel_module  # noqa: E402
from actadd.ui.settings import Settings, pad_shown, pad_typed  # noqa: E402

BASE = {**playground_settings.BASE, "max_new_tokens": 4, "n_samples": 1}  # the page, not samples
NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "06_playground.ipynb"


def run(p) -> None:
    p.run_button.click()
    assert p.wait(60)


# ---------------------------------------------------------------------- labels


def test_table_rows_is_an_output_control_that_sets_the_table_rows(panel, tiny_llama):
    sampling = {panel.greedy, panel.temperature, panel.top_p, panel.freq_penalty, panel.seed}
    assert panel.table_rows.description == "table rows"
    assert not hasattr(panel, "top_k")
    assert not any("top k" in getattr(w, "description", "") for w in sampling)
    panel.table_rows.value = 3
    run(panel)
    v = SteeringVector.from_pair(tiny_llama, "ab", "cd", 1, 3.0)
    assert panel.result.lens.equals(logit_lens(tiny_llama, v, 3))
    assert len(panel.result.shift) == 6  # 3 that rose most, 3 that fell most


def test_the_default_pad_shows_quoted_and_reads_back_as_a_space(panel):
    assert Settings().pad_token == " "
    assert panel.pad_token.value == '" "'  # not an empty-looking box
    assert panel.settings().pad_token == " "
    panel.pad_token.value = " "  # a space typed bare still works
    assert panel.settings().pad_token == " "
    panel.pad_token.value = "x"
    assert panel.settings().pad_token == "x"
    panel.pad_token.value = '"'  # a lone quote is the pad itself
    assert panel.settings().pad_token == '"'
    assert pad_typed(pad_shown(" a ")) == " a " and pad_typed('""') == ""


def test_status_says_what_the_vector_is_never_derived(panel):
    run(panel)
    status = panel.status.value
    assert status.startswith(
        """done: ActAdd 'ab' − 'cd' (padded on the right with " "), × 3 at layer 1"""
    )
    assert "align front" in status and "row norms" in status
    panel.source.value = "caa"
    panel.align.value = "all"
    panel.layer.value = 2
    run(panel)
    status = panel.status.value
    assert "derived" not in status and "@L" not in status
    v = panel.result.vector
    norm = float(v.norms()[0])
    # the size relative to the typical residual norm at the layer, as the vector records it
    assert v.relative_norm is not None
    assert v.relative_norm == v.norm() / v.resid_norm
    assert status == (
        "done: CAA (mean difference) of builtin:sentiment at the last token, × 3 at layer 2, "
        f"align all · ‖v‖ {norm:.3g} = {v.relative_norm:.2g}× resid"
    )


def test_describe_vector_names_each_method_and_position():
    s = Settings(**{**BASE, "source": "pca_diff", "position": "mean", "align": "all"})
    assert render.describe_vector(s) == (
        "PCA of the differences of builtin:sentiment at the mean over tokens, × 3 at layer 1"
    )
    s = Settings(**{**BASE, "equalize": "truncate", "align": "all"})
    assert render.describe_vector(s) == (
        "ActAdd 'ab' − 'cd' (truncated to the shorter), mean over its rows after the first, "
        "× 3 at layer 1"
    )


# ---------------------------------------------------------------------- stale results


def test_results_are_marked_stale_after_a_refused_request_and_cleared_by_the_next(panel):
    panel.align.value = "sideways"
    run(panel)  # nothing shown yet: nothing to mark
    assert panel.stale == set() and panel.run_stale_note.value == ""
    panel.align.value = "front"
    run(panel)
    first = panel.result
    panel.layer.value = 99  # refused before any compute
    run(panel)
    assert panel.result is first and panel.status.value == "error"
    assert panel.stale == {"run"}
    assert render.STALE_CLASS in panel._run_out._dom_classes
    assert "earlier request" in panel.run_stale_note.value
    assert "at layer 1, align front" in panel.run_stale_note.value  # which request they answer
    panel.layer.value = 2
    run(panel)
    assert panel.stale == set() and panel.run_stale_note.value == ""
    assert render.STALE_CLASS not in panel._run_out._dom_classes
    assert panel.status.value.startswith("done")


def test_a_run_failing_on_the_worker_marks_the_results_stale(panel, monkeypatch):
    run(panel)
    shown = panel.completions.value

    def broken_lens(*args, **kwargs):
        raise SteeringError("planted failure in the logit lens")

    monkeypatch.setattr(compute, "logit_lens", broken_lens)
    panel.layer.value = 2
    run(panel)
    assert "planted failure" in panel.error.value
    assert panel.stale == {"run"} and panel.completions.value == shown


def test_the_map_is_marked_stale_on_its_own(panel):
    panel.map_button.click()
    assert panel.wait(60) and panel.map_grid is not None
    panel.target_words.value = "hello"  # not one token: refused
    panel.map_button.click()
    assert panel.wait(60)
    assert panel.stale == {"map"}
    assert render.STALE_CLASS in panel.map_box._dom_classes
    assert render.STALE_CLASS not in panel._run_out._dom_classes
    panel.target_words.value = "a, e"
    panel.map_button.click()
    assert panel.wait(60) and panel.stale == set()


# ---------------------------------------------------------------------- the page


def test_the_page_opens_interactive_without_computing(monkeypatch, tiny_llama):
    """The notebook Voila serves, run as it is: it builds the panel and computes nothing
    (a Run on page load made the page wait for a full generation)."""
    monkeypatch.setattr(actadd, "playground", lambda: panel_module.playground(tiny_llama))
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") for c in code)
    namespace: dict = {}
    *body, last = "\n".join("".join(c["source"]) for c in code).strip().splitlines()
    exec("\n".join(body), namespace)  # noqa: S102 - the notebook's own cells
    shown = eval(last, namespace)  # noqa: S307 - its last line, the displayed panel
    assert isinstance(shown, panel_module.Playground)
    assert shown.result is None and not shown.worker.busy()
    assert shown.status.value.startswith("ready")


def test_the_page_shows_no_api_narration():
    nb = json.loads(NOTEBOOK.read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for internal in ("actadd.", "applied()", "actadd/ui", "sweep engine", "$ACTADD"):
        assert internal not in text


# ---------------------------------------------------------------------- the server


def test_the_server_culls_kernels_no_page_is_connected_to():
    jupyter_server = pytest.importorskip("jupyter_server.services.kernels.kernelmanager")
    argv = serve.voila_argv(9999, cull_idle_timeout=120, cull_interval=10, voila="voila")
    flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    assert flags["MappingKernelManager.cull_idle_timeout"] == "120"
    assert flags["MappingKernelManager.cull_interval"] == "10"
    assert flags["MappingKernelManager.cull_connected"] == "False"  # open pages keep theirs
    classes = {"MappingKernelManager": jupyter_server.MappingKernelManager}
    voila = pytest.importorskip("voila.app", reason="Voila: make setup-playground")
    classes["Voila"] = voila.Voila
    for key in (k for k in flags if "." in k):  # each is a real trait: a misspelt one is
        cls, trait = key.split(".")  # ignored by traitlets without a word
        assert classes[cls].class_traits().get(trait) is not None, key
    assert serve.CULL_IDLE_TIMEOUT_S > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cull-idle-timeout", "-1"], "cull idle timeout must be an int >= 0"),
        (["--cull-interval", "0"], "cull interval must be an int >= 1"),
        (["--port", "0"], "port must be an int >= 1"),
    ],
)
def test_bad_server_options_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        serve.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
