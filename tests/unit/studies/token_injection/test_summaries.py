"""Token-injection summaries (actadd.studies.token_injection.summaries) on a table with a known
answer. (The summaries of a real comparison table are checked in test_comparison.py.)"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from actadd.studies.token_injection import (
    dose_response_summary,
)


def test_dose_response_summary_on_a_known_curve():
    scales = np.array([-1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0])
    df = pd.DataFrame(
        dict(
            condition="coeff",
            prompt_kind="mean",
            pair="p",
            layer=1,
            scale=scales,
            target_logprob_delta=2 * scales,
            kl=0.3 * scales**2,
        )
    )
    row = dose_response_summary(df, near=1.0).iloc[0]
    assert row.monotonic and math.isclose(row.spearman, 1.0)
    assert math.isclose(row.slope_near0, 2.0) and math.isclose(row.r2_near0, 1.0)
    assert math.isclose(row.odd_symmetry, 1.0) and math.isclose(row.kl_exponent, 2.0)
    assert row.peak_scale == 2.0
