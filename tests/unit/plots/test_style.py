"""The house style context: it puts back what it changed, and nothing else."""

from __future__ import annotations

import matplotlib

from actadd.plots.style import PAPER_RC, paper_style


def test_paper_style_puts_back_only_its_own_settings():
    before = matplotlib.rcParams["font.size"]
    was = matplotlib.is_interactive()
    try:
        matplotlib.interactive(False)
        with paper_style():
            assert matplotlib.rcParams["font.size"] == PAPER_RC["font.size"]
            matplotlib.interactive(True)  # what loading Jupyter's inline backend does
        # plt.rc_context would turn it off again, and no later figure would display
        assert matplotlib.is_interactive()
        assert matplotlib.rcParams["font.size"] == before
    finally:
        matplotlib.interactive(was)
