"""The one progress bar: a terminal or notebook gets tqdm's bar, a log gets plain lines at
most every LOG_INTERVAL_S seconds (none for a short loop), ``False`` hides it."""

import io
import sys

import actadd.progress as progress


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_a_log_gets_whole_lines_for_a_long_loop_and_nothing_for_a_short_one(monkeypatch):
    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    with progress.bar(4, "long loop", "step") as bar:
        for _ in range(4):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert lines and "\r" not in log.getvalue()
    assert lines[-1].startswith("long loop: 100%") and "4/4" in lines[-1]

    log2 = _Log()
    monkeypatch.setattr(sys, "stderr", log2)
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 3600.0)
    with progress.bar(4, "short loop", "step") as bar:
        bar.update(4)
    assert log2.getvalue() == ""


def test_false_hides_the_bar_and_true_shows_it_even_off_a_terminal(monkeypatch):
    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    with progress.bar(3, "hidden", "step", progress=False) as bar:
        bar.update(3)
    assert log.getvalue() == ""
    with progress.bar(3, "shown", "step", progress=True) as bar:
        bar.update(3)
    assert "shown" in log.getvalue() and "3/3" in log.getvalue()
