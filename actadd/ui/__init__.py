"""The steering playground: an ipywidgets panel over the library's own calls.

- :mod:`actadd.ui.settings` — :class:`Settings`, everything one run of the panel needs,
  validated before any compute;
- :mod:`actadd.ui.compute` — what a run computes (completions through
  :func:`actadd.compare`, the token strip from :meth:`actadd.Steering.applied`, the
  next-token shift, the logit lens) and the quick layer × coefficient map through the sweep
  engine; no widgets, so it is tested on its own;
- :mod:`actadd.ui.worker` — :class:`LatestWorker`: one background thread, a newer request
  supersedes a running one and a stale result is never delivered;
- :mod:`actadd.ui.render` — results as HTML strings;
- :mod:`actadd.ui.sliders` — sliders that widen to a value past their range, never clamp;
- :mod:`actadd.ui.panel` — the widgets: :func:`playground`;
- :mod:`actadd.ui.serve` — the page on localhost (Voila), with idle kernels culled.

Only :mod:`actadd.ui.panel` and :mod:`actadd.ui.sliders` import ipywidgets (the ``playground``
extra).
"""

__all__: list[str] = []  # the package exports nothing itself: import its modules
