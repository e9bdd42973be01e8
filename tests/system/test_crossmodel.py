"""The committed cross-model outputs (``results/crossmodel/``) are what ``actadd crossmodel``
computes from the committed tables: the rank claims claim by claim, and the layer profiles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

RESULTS = Path(__file__).resolve().parents[2] / "results"
OUT = RESULTS / "crossmodel"

pytestmark = pytest.mark.skipif(not OUT.is_dir(), reason="no committed cross-model outputs")


def test_the_committed_rank_claims_are_what_the_tables_give():
    from actadd.lab.claims import table
    from actadd.lab.crossmodel import ratio_cells, ratio_claims

    fresh = table(ratio_claims(ratio_cells(RESULTS, "gemma3-270m")))
    committed = pd.read_csv(OUT / "rank_claims.csv")
    assert list(committed.cite) == list(fresh.cite)
    assert list(committed.verdict) == list(fresh.verdict)
    for col in ("estimate", "lo", "hi", "p", "p_adj"):
        pd.testing.assert_series_equal(committed[col], fresh[col], check_names=False, rtol=1e-9)


def test_the_committed_layer_profiles_are_what_the_tables_give():
    from actadd.lab.crossmodel import layer_profiles

    fresh = layer_profiles(RESULTS, "gemma3-270m")
    committed = pd.read_csv(OUT / "layer_profiles.csv", keep_default_na=False,
                            na_values={"estimate": [""], "lo": [""], "hi": [""]})  # fmt: skip
    assert len(committed) == len(fresh)
    for col in ("estimate", "lo", "hi", "depth"):
        pd.testing.assert_series_equal(committed[col], fresh[col], check_names=False, rtol=1e-9)
