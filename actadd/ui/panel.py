"""The playground's widgets: :func:`playground` returns a :class:`Playground` to display.

Every computation is :mod:`actadd.ui.compute` on a :class:`~actadd.ui.worker.LatestWorker`
thread; the widgets only read settings and show results. Works in JupyterLab, VS Code
notebooks and Voila (``make playground``).
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import ipywidgets as W
from transformer_lens import HookedTransformer

from actadd.errors import ActAddError, SteeringError
from actadd.models import load_model
from actadd.ui import compute, render
from actadd.ui.settings import ALIGN_CHOICES, SOURCES, Settings, pad_shown, pad_typed
from actadd.ui.sliders import WideFloatSlider, WideIntSlider, WideLogSlider, numbers
from actadd.ui.worker import LatestWorker

__all__ = ["MODEL_ENV", "Playground", "playground"]

# playground(model=None) loads this model name when the variable is set (the browser test
# serves the page on a tiny model this way); otherwise the embedded SmolLM2
MODEL_ENV = "ACTADD_PLAYGROUND_MODEL"
COEFF_RANGE = 20.0


class Playground:
    """The panel. ``widget`` is the root; the notebook displays the object itself.

    Drive it from Python as a user would: set ``layer.value``, :meth:`set_coeff`, press
    ``run_button.click()``, then :meth:`wait`; the last run's :class:`compute.Result` is
    ``result``, the last map ``map_grid``, the last error line ``error.value``.

    The work runs on a background thread, which holds the model while it computes
    (:mod:`actadd.runtime.modellock`): actadd's calls on the same model from another cell
    (``generate``, a sweep, ``steering``) wait for the panel's current step, and a direct
    ``model(...)`` while the panel is steering raises a SteeringError instead of being
    steered. Call :meth:`wait` first to use the model without waiting.

    Inputs are never clamped to a widget's range: a layer past the model's, or a
    coefficient past the slider's, widens the slider and is refused (or used) as typed; a
    coefficient of 0 on the log scale is refused with one line.
    """

    def __init__(self, model: HookedTransformer, settings: Settings | None = None) -> None:
        self.model = model
        s = settings or Settings(layer=min(2, model.cfg.n_layers - 1))
        self.cache = compute.VectorCache()
        self.result: compute.Result | None = None
        self.map_grid = None
        self._map_settings: Settings | None = None
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self.worker = LatestWorker(self._on_result, self._on_error, self._on_busy)
        lay = W.Layout(width="auto")
        wide = dict(style={"description_width": "110px"}, layout=W.Layout(width="98%"))
        # ---- inputs
        self.prompt = W.Textarea(s.prompt, description="prompt", rows=2, **wide)
        self.source = W.Dropdown(options=SOURCES, value=s.source, description="vector")
        self.positive = W.Text(s.positive, description="p+")
        self.negative = W.Text(s.negative, description="p−")
        self.equalize = W.Dropdown(
            options=("right", "left", "truncate"), value=s.equalize, description="pair length"
        )
        # shown in quotes: the default pad " " looked like an empty box
        self.pad_token = W.Text(
            pad_shown(s.pad_token),
            description="pad token",
            tooltip='the token that pads the shorter prompt, in quotes: " " is a space',
        )
        self.dataset = W.Text(s.dataset, description="dataset")
        self.position = W.Dropdown(options=("last", "mean"), value=s.position, description="at")
        n = model.cfg.n_layers
        # ranges that hold the starting values: traitlets checks a widget's value against
        # its range in no fixed order while it is made, so widening then is not reliable
        self.layer = WideIntSlider(
            s.layer,
            min=min(0, s.layer),
            max=max(n - 1, s.layer),
            description="layer",
            continuous_update=False,
        )
        self.layer.add_class("actadd-layer")
        self.coeff = WideFloatSlider(
            s.coeff,
            min=-max(COEFF_RANGE, abs(s.coeff)),
            max=max(COEFF_RANGE, abs(s.coeff)),
            step=0.1,
            description="coefficient",
            continuous_update=False,
        )
        self.log = W.Checkbox(False, description="log scale", indent=False, layout=lay)
        self.sign = W.ToggleButtons(options=("+", "−"), value="+", layout=lay)
        self.sign.style.button_width = "32px"
        exponent = math.log10(abs(s.coeff) or 1.0)
        self.magnitude = WideLogSlider(
            abs(s.coeff) or 1.0,
            base=10,
            min=min(-2, math.floor(exponent)),
            max=max(2, math.ceil(exponent)),
            step=0.05,
            description="|coefficient|",
        )
        # a coefficient of 0 asked for on the log scale, which cannot show it: refused at Run
        self._log_zero = False
        self.align = W.Combobox(
            value=s.align, options=ALIGN_CHOICES, description="align", ensure_option=False
        )
        self.greedy = W.Checkbox(s.greedy, description="greedy", indent=False, layout=lay)
        # free text boxes, not bounded ones: a bounded box clamps a bad value silently
        # (temperature 0 became 0.01); Settings refuses it with one line in the panel instead
        self.temperature = W.FloatText(s.temperature, step=0.1, description="temperature")
        self.top_p = W.FloatText(s.top_p, step=0.05, description="top p")
        self.freq_penalty = W.FloatText(s.freq_penalty, description="freq penalty")
        self.seed = W.IntText(s.seed, description="seed")
        self.n_samples = W.IntSlider(s.n_samples, min=1, max=16, description="samples")
        self.max_new_tokens = W.IntSlider(
            s.max_new_tokens, min=1, max=100, description="new tokens"
        )
        # rows of the two tables below (not a sampling setting: sampling has no top-k here)
        self.table_rows = W.IntSlider(
            s.table_rows,
            min=1,
            max=30,
            description="table rows",
            tooltip="rows of the next-token shift and logit lens tables, at the next Run",
        )
        self.map_layers = W.Text(s.map_layers, description="map layers", placeholder="auto")
        self.map_coeffs = W.Text(
            ", ".join(f"{c:g}" for c in s.map_coeffs), description="map coeffs"
        )
        self.target_words = W.Text(s.target_words, description="target words")
        # ---- actions and state
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.run_button.add_class("actadd-run")
        self.map_button = W.Button(description="Quick map", icon="th")
        self.map_button.add_class("actadd-map")
        self.progress = W.IntProgress(
            0, min=0, max=len(compute.STAGES), layout=W.Layout(width="160px")
        )
        self.progress.layout.visibility = "hidden"
        self.status = W.Label("ready: set the inputs and press Run")
        self.status.add_class("actadd-status")
        self.error = W.HTML("")
        self.error.add_class("actadd-error")
        # ---- outputs
        self.completions = W.HTML("")
        self.completions.add_class("actadd-completions")
        self.strip = W.HTML("")
        self.shift = W.HTML("")
        self.lens = W.HTML("")
        self.notes = W.HTML("")
        self.map_box = W.VBox([])
        # results that no longer answer the inputs (a newer request failed): dimmed, with a
        # note saying which request they answer; cleared by the next result
        self.stale: set[str] = set()
        self.run_stale_note = W.HTML("")
        self.map_stale_note = W.HTML("")
        self.run_button.on_click(lambda _: self.run())
        self.map_button.on_click(lambda _: self.quick_map())
        self.log.observe(self._toggle_log, names="value")
        self.layer.observe(self._narrow_layer, names="value")
        self.magnitude.observe(self._moved_magnitude, names="value")
        self.sign.observe(self._moved_magnitude, names="value")
        self.source.observe(self._toggle_source, names="value")
        self.widget = self._layout()
        self._toggle_log()
        self._toggle_source()

    # ------------------------------------------------------------------ layout

    def _layout(self) -> W.Widget:
        self._pair_box = W.HBox([self.positive, self.negative, self.equalize, self.pad_token])
        self._dataset_box = W.HBox([self.dataset, self.position])
        self._coeff_box = W.HBox([self.coeff, self.log])
        self._log_box = W.HBox([self.sign, self.magnitude])
        sampling = W.HBox(
            [
                W.VBox([self.greedy, self.temperature, self.top_p, self.freq_penalty]),
                W.VBox([self.seed, self.n_samples, self.max_new_tokens]),
            ]
        )
        inputs = W.VBox(
            [
                self.prompt,
                W.HBox([self.source]),
                self._pair_box,
                self._dataset_box,
                W.HBox([self.layer, self.align]),
                self._coeff_box,
                self._log_box,
                sampling,
            ]
        )
        actions = W.HBox([self.run_button, self.map_button, self.progress, self.status])
        h = lambda text: W.HTML(f"<b>{text}</b>")  # noqa: E731
        self._run_out = W.VBox(
            [
                h("Completions (same seeds)"),
                self.completions,
                self.notes,
                h("Where the additions landed"),
                self.strip,
                self.table_rows,
                W.HBox(
                    [
                        W.VBox([h("Next-token shift"), self.shift]),
                        W.VBox([h("Logit lens of the vector"), self.lens]),
                    ]
                ),
            ]
        )
        outputs = W.VBox(
            [
                self.error,
                self.run_stale_note,
                self._run_out,
                h("Quick map: Δ log p(target words), next token (click a cell)"),
                W.HBox([self.map_layers, self.map_coeffs, self.target_words]),
                self.map_stale_note,
                self.map_box,
            ]
        )
        title = W.HTML(
            f"<style>.{render.STALE_CLASS} {{opacity: 0.4}}</style>"
            "<h3>actadd playground: " + render.visible(self.model.cfg.model_name) + "</h3>"
        )
        return W.VBox([title, inputs, actions, outputs])

    def _repr_mimebundle_(self, **kwargs) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _toggle_log(self, *_) -> None:
        c = self.coeff_value if hasattr(self, "_log_on") else self.coeff.value
        self._log_on = bool(self.log.value)
        self._coeff_box.children = (self.coeff, self.log) if not self._log_on else (self.log,)
        self._log_box.layout.display = "" if self._log_on else "none"
        self.set_coeff(c)

    def _narrow_layer(self, *_) -> None:
        """Back to the model's layers once the layer is one of them again."""
        last = self.model.cfg.n_layers - 1
        if 0 <= self.layer.value <= last:
            self.layer.min, self.layer.max = 0, last

    def _moved_magnitude(self, *_) -> None:
        self._log_zero = False

    def _toggle_source(self, *_) -> None:
        pair = self.source.value == "pair"
        self._pair_box.layout.display = "" if pair else "none"
        self._dataset_box.layout.display = "none" if pair else ""

    # ------------------------------------------------------------------ values

    @property
    def coeff_value(self) -> float:
        """The coefficient, from the linear slider or (log scale) sign × magnitude."""
        if getattr(self, "_log_on", False):
            if self._log_zero:
                return 0.0
            return (-1.0 if self.sign.value == "−" else 1.0) * float(self.magnitude.value)
        return float(self.coeff.value)

    def set_coeff(self, value: float) -> None:
        """Show ``value`` on whichever coefficient control is active."""
        if getattr(self, "_log_on", False):
            if value != 0:  # past the slider's range, it widens (never clamps)
                self.sign.value = "−" if value < 0 else "+"
                self.magnitude.value = abs(value)
            self._log_zero = value == 0
        else:
            if abs(value) > self.coeff.max:  # a map cell past the slider's range widens it
                self.coeff.max, self.coeff.min = abs(value), -abs(value)
            self.coeff.value = value
            self._log_zero = False

    def settings(self) -> Settings:
        """The current inputs as :class:`Settings` (raises a one-line ActAddError)."""
        if getattr(self, "_log_on", False) and self._log_zero:
            raise SteeringError(
                "A coefficient of 0 is not on the log scale (|coefficient| > 0): turn log "
                "scale off to steer with 0, or pick a magnitude."
            )
        return Settings(
            prompt=self.prompt.value,
            source=self.source.value,
            positive=self.positive.value,
            negative=self.negative.value,
            equalize=self.equalize.value,
            pad_token=pad_typed(self.pad_token.value),
            dataset=self.dataset.value,
            position=self.position.value,
            layer=int(self.layer.value),
            coeff=self.coeff_value,
            align=self.align.value.strip(),
            greedy=bool(self.greedy.value),
            temperature=float(self.temperature.value),
            top_p=float(self.top_p.value),
            freq_penalty=float(self.freq_penalty.value),
            seed=int(self.seed.value),
            n_samples=int(self.n_samples.value),
            max_new_tokens=int(self.max_new_tokens.value),
            table_rows=int(self.table_rows.value),
            map_layers=self.map_layers.value,
            map_coeffs=numbers(self.map_coeffs.value, "map coeffs"),
            target_words=self.target_words.value,
        )

    # ------------------------------------------------------------------ actions

    def _checked(self, map_: bool = False) -> Settings | None:
        try:
            s = self.settings()
            s.check(self.model)
            if map_:
                compute.map_spec(s, self.model.cfg.n_layers)
                s.check_map(self.model)
        except ActAddError as exc:
            self._show_error(exc)
            self._mark_stale("map" if map_ else "run")
            self.status.value = "error"
            return None
        self.error.value = ""
        return s

    def run(self) -> int | None:
        """Check the inputs (an error is one line, nothing computed), then compute on the
        worker; a newer run supersedes this one. Returns the request's ticket."""
        s = self._checked()
        if s is None:
            return None
        self.progress.value = 0
        return self.worker.submit(
            lambda checkpoint: compute.run(
                self.model, s, cache=self.cache, checkpoint=checkpoint, progress=self._progress
            ),
            "run",
        )

    def quick_map(self) -> int | None:
        """The layer × coefficient map of Δ log p(target words) on the worker."""
        s = self._checked(map_=True)
        if s is None:
            return None
        return self.worker.submit(lambda checkpoint: (s, compute.quick_map(self.model, s)), "map")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker is idle (for scripts and tests)."""
        return self.worker.wait(timeout)

    def map_cell(self, layer: int, coeff: float) -> W.Button:
        """The map's button for (layer, coeff)."""
        return self._cells[(int(layer), float(coeff))]

    # ------------------------------------------------------------------ worker callbacks

    def _progress(self, stage: str, i: int) -> None:
        self.progress.value = i
        self.status.value = f"{stage}…"

    def _on_busy(self, channel: str, busy: bool) -> None:
        (self._busy.add if busy else self._busy.discard)(channel)
        if busy:
            self.status.value = "map…" if channel == "map" else "working…"
        self.progress.layout.visibility = "visible" if self._busy else "hidden"

    def _show_error(self, exc: BaseException) -> None:
        line = (str(exc).strip().splitlines() or [""])[0]
        self.error.value = (
            f"<span style='color:#b00'>{type(exc).__name__}: {render.visible(line)}</span>"
        )

    def _on_error(self, channel: str, ticket: int, exc: BaseException) -> None:
        self._show_error(exc)
        self._mark_stale(channel)
        self.status.value = "error"

    def _mark_stale(self, channel: str) -> None:
        """Dim the results of ``channel`` and say which request they answer: the newest
        request of that channel failed, so they no longer answer the inputs."""
        with self._lock:
            if channel == "map":
                if self.map_grid is None:
                    return
                self.map_box.add_class(render.STALE_CLASS)
                self.map_stale_note.value = render.stale_html("map", self._map_settings)
            else:
                if self.result is None:
                    return
                self._run_out.add_class(render.STALE_CLASS)
                self.run_stale_note.value = render.stale_html("results", self.result.settings)
            self.stale.add(channel)

    def _clear_stale(self, channel: str) -> None:
        box, note = (
            (self.map_box, self.map_stale_note)
            if channel == "map"
            else (self._run_out, self.run_stale_note)
        )
        box.remove_class(render.STALE_CLASS)
        note.value = ""
        self.stale.discard(channel)

    def _on_result(self, channel: str, ticket: int, result: Any) -> None:
        with self._lock:
            if channel == "map":
                self._map_settings, grid = result
                self._show_map(grid)
                self._clear_stale("map")
                self.status.value = "map done"
                return
            self.result = r = result
            self.completions.value = render.completions_html(r.completions, r.settings.prompt)
            self.strip.value = render.strip_html(r.strip, r.phase, r.settings.layer)
            self.shift.value = render.shift_html(r.shift, r.kl)
            self.lens.value = render.lens_html(r.lens)
            self.notes.value = "".join(f"<div><i>{render.visible(n)}</i></div>" for n in r.notes)
            self.progress.value = len(compute.STAGES)
            self._clear_stale("run")
            self.status.value = render.status_line(r.settings, r.vector)

    def _show_map(self, grid) -> None:
        self.map_grid = grid
        values = [float(v) for v in grid.to_numpy().ravel() if v == v]
        scale = max([abs(v) for v in values] + [1e-9])
        cols = list(grid.columns)
        cells: list[W.Widget] = [W.HTML("<b>layer \\ c</b>")]
        cells += [W.HTML(f"<b>{c:g}</b>") for c in cols]
        self._cells = {}
        for layer in grid.index:
            cells.append(W.HTML(f"<b>L{layer}</b>"))
            for c in cols:
                v = float(grid.loc[layer, c])
                b = W.Button(description=f"{v:+.2f}", tooltip=f"layer {layer}, coefficient {c:g}")
                b.style.button_color = render.diverging(v, scale)
                b.layout = W.Layout(width="72px")
                b.on_click(lambda _, L=int(layer), c=float(c): self._pick(L, c))
                self._cells[(int(layer), float(c))] = b
                cells.append(b)
        self.map_box.children = [
            W.GridBox(
                cells,
                layout=W.Layout(grid_template_columns=f"80px repeat({len(cols)}, 76px)"),
            )
        ]

    def _pick(self, layer: int, coeff: float) -> None:
        self.layer.value = layer
        self.set_coeff(coeff)


def playground(
    model: HookedTransformer | str | None = None, settings: Settings | None = None, **changes
) -> Playground:
    """The steering playground on ``model`` (a loaded model, a :func:`actadd.load_model`
    name, or ``None``: ``$ACTADD_PLAYGROUND_MODEL`` if set, else the embedded SmolLM2).
    ``settings`` / keyword ``changes`` set the starting inputs (see :class:`Settings`)."""
    if model is None or isinstance(model, str):
        model = load_model(model or os.environ.get(MODEL_ENV) or None)
    if not isinstance(model, HookedTransformer):
        raise SteeringError(f"model must be a HookedTransformer or a name, got {model!r}.")
    if changes:
        base = settings or Settings(layer=min(2, model.cfg.n_layers - 1))
        settings = base.with_(**changes)
    return Playground(model, settings)
