"""Tables written before the one pair-label rule name an unlabelled pair ``'Love'-'Hate'``;
their confirmatory cells must still be found (the committed methods run is such a table)."""

from __future__ import annotations

import pandas as pd

from actadd.studies.sweep.kind import _cell_pair


def test_confirmatory_cell_finds_the_pair_under_its_old_table_name():
    config = {"pairs": [["Love", "Hate"]]}
    cell = {"layer": 3, "coeff": 24.0}
    new = pd.DataFrame({"pair": ["Love − Hate"]})
    old = pd.DataFrame({"pair": ["'Love'-'Hate'"]})
    assert _cell_pair(config, cell) == "Love − Hate"
    assert _cell_pair(config, cell, new) == "Love − Hate"
    assert _cell_pair(config, cell, old) == "'Love'-'Hate'"
    # a labelled pair is its label, whatever the table holds
    labelled = {"pairs": [{"positive": "Love", "negative": "Hate", "label": "LH"}]}
    assert _cell_pair(labelled, cell, old) == "LH"
