"""Metrics against hand-computed values and oracles (perfect, random, reversed rankings)."""

import numpy as np
import pytest

from models.metrics import (
    aggregate_bias_pct,
    churn_metrics,
    decile_mape,
    expected_calibration_error,
    lift_and_capture,
    normalized_gini,
    top_share_capture,
    value_metrics,
)


def test_ece_matches_hand_computation_with_equal_frequency_bins():
    # bins {0.1, 0.3}: |0 - 0.2| = 0.2 and {0.6, 0.8}: |1 - 0.7| = 0.3, each half the rows
    ece = expected_calibration_error([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8], n_bins=2)
    assert ece == pytest.approx(0.25)


def test_ece_is_small_for_perfectly_calibrated_probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20_000)
    y = rng.uniform(size=p.size) < p
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.1


def test_lift_and_capture_of_top_decile_by_hand():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    p = np.arange(10, 0, -1) / 10.0  # row 0 ranked first
    lift, capture = lift_and_capture(y, p, 0.1)
    assert capture == pytest.approx(0.5)  # 1 of the 2 churners in the top row
    assert lift == pytest.approx(5.0)  # 50% of positives in 10% of rows


def test_churn_metrics_oracles():
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=5000) < 0.3).astype(int)
    perfect = churn_metrics(y, y * 0.9 + 0.05)
    reversed_ = churn_metrics(y, 1 - y)
    random_ = churn_metrics(y, rng.uniform(size=y.size))
    assert perfect["roc_auc"] == pytest.approx(1.0)
    assert perfect["pr_auc"] == pytest.approx(1.0)
    assert perfect["capture_top_decile"] == pytest.approx(0.1 / y.mean(), rel=1e-6)
    assert reversed_["roc_auc"] == pytest.approx(0.0)
    assert abs(random_["roc_auc"] - 0.5) < 0.03
    assert abs(random_["lift_top_decile"] - 1.0) < 0.2


def test_brier_by_hand():
    assert churn_metrics([0, 1], [0.2, 0.6])["brier"] == pytest.approx((0.04 + 0.16) / 2)


def test_normalized_gini_by_hand():
    # perfect order 3,1,0: cumulative shares 3/4, 1, 1 -> gini 2*(11/12)-1 = 5/6
    # prediction order 3,0,1: 3/4, 3/4, 1 -> gini 2*(5/6)-1 = 2/3; normalised 0.8
    assert normalized_gini([3, 1, 0], [0.9, 0.1, 0.5]) == pytest.approx(0.8)


def test_normalized_gini_averages_ties_so_row_order_does_not_matter():
    # tie between rows with 0 and 2 counts as 1 each: shares 1/4, 1/2, 1 -> 1/6; perfect 2/3
    assert normalized_gini([0, 2, 2], [1, 1, 0]) == pytest.approx(0.25)
    assert normalized_gini([2, 0, 2], [1, 1, 0]) == pytest.approx(0.25)


def test_normalized_gini_oracles():
    rng = np.random.default_rng(2)
    y = rng.lognormal(3, 1, 20_000)
    assert normalized_gini(y, y) == pytest.approx(1.0)
    assert normalized_gini(y, 2 * y + 5) == pytest.approx(1.0)  # only the order counts
    assert normalized_gini(y, -y) == pytest.approx(-1.0, abs=1e-3)
    assert abs(normalized_gini(y, rng.uniform(size=y.size))) < 0.05


def test_top_share_capture_by_hand():
    y = np.array([10.0] + [0.0] * 8 + [10.0])
    pred = np.arange(10, 0, -1, dtype=float)
    assert top_share_capture(y, pred, 0.1) == pytest.approx(0.5)
    assert top_share_capture(y, y, 0.2) == pytest.approx(1.0)


def test_decile_mape_bias_and_mae_by_hand():
    y = np.arange(1, 11, dtype=float)
    assert decile_mape(y, 1.1 * y) == pytest.approx(0.1)
    assert aggregate_bias_pct([100, 100], [90, 80]) == pytest.approx(-15.0)
    assert value_metrics([1, 2, 3], [2, 2, 5])["mae"] == pytest.approx(1.0)


def test_aggregate_bias_is_signed_percent_of_a_positive_actual_total_only():
    assert aggregate_bias_pct(np.array([50.0, 50.0]), np.array([60.0, 70.0])) == pytest.approx(30.0)
    # a total at or below zero (returns outweigh sales) has no meaningful percentage
    assert np.isnan(aggregate_bias_pct([10.0, -10.0], [5.0, 5.0]))
    assert np.isnan(aggregate_bias_pct([10.0, -30.0], [5.0, 5.0]))


def test_value_metrics_perfect_prediction():
    y = np.random.default_rng(3).lognormal(3, 1, 1000)
    m = value_metrics(y, y)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["normalized_gini"] == pytest.approx(1.0)
    assert m["aggregate_bias_pct"] == pytest.approx(0.0)
    assert m["top20_capture"] >= m["top10_capture"] > 0.1


def test_metrics_reject_missing_predictions_with_the_row():
    with pytest.raises(ValueError, match="row 1"):
        value_metrics([1.0, 2.0], [1.0, np.nan])
