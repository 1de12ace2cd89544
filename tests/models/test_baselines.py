"""Rule baselines: cadence-relative recency score and same-length trailing revenue."""

import numpy as np
import pandas as pd
import pytest

from models.baselines import churn_baseline, value_baseline


def test_churn_baseline_scores_recency_against_own_cadence():
    X = pd.DataFrame({
        "days_since_last_order": [30, 60, 10, np.nan],
        "order_gap_mean_days": [30, 30, np.nan, np.nan],
    })
    # r = 1, 2, 10/30 (single order: median gap 30 stands in), no orders -> 0.5
    np.testing.assert_allclose(churn_baseline(X), [0.5, 2 / 3, 0.25, 0.5])


def test_churn_baseline_is_a_probability_like_score():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({
        "days_since_last_order": rng.uniform(0, 500, 100),
        "order_gap_mean_days": rng.uniform(1, 100, 100),
    })
    score = churn_baseline(X)
    assert ((score >= 0) & (score <= 1)).all()


def test_churn_baseline_names_the_missing_column():
    with pytest.raises(KeyError, match="order_gap_mean_days"):
        churn_baseline(pd.DataFrame({"days_since_last_order": [1.0]}))


def test_value_baseline_uses_the_same_length_window_or_scales_the_nearest():
    X = pd.DataFrame({"revenue_sum_90d": [100.0, np.nan], "revenue_sum_365d": [365.0, 730.0]})
    np.testing.assert_allclose(value_baseline(X, 90), [100.0, 0.0])
    np.testing.assert_allclose(value_baseline(X, 180), [200.0, 0.0])  # 90d is nearest
    np.testing.assert_allclose(value_baseline(X, 730), [730.0, 1460.0])  # 365d x 2
