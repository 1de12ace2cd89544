"""Level anchor and BG/NBD blend applied to a run's numbers (serving/reference_adjustments.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.valuation import clv, net_value
from serving.reference_adjustments import blended_with_reference, value_scaled
from serving.settings import ScoringSettings

SETTINGS = ScoringSettings(value_horizon_days=182, annual_discount_rate=0.1)


def numbers() -> pd.DataFrame:
    margin, cost = np.array([40.0, 5.0, np.nan, 12.0]), np.array([10.0, 8.0, np.nan, 2.0])
    return pd.DataFrame({
        "customer_id": ["a", "b", "new", "d"], "p_churn": [0.2, 0.9, np.nan, 0.5],
        "expected_revenue": [100.0, 20.0, np.nan, 0.0], "expected_margin": margin, "cost_to_serve": cost,
        "value_p10": [50.0, 5.0, np.nan, 0.0], "value_p90": [150.0, 40.0, np.nan, 3.0],
        "net_value": net_value(margin, cost), "clv": clv(net_value(margin, cost), 182, 0.1),
    })


def assert_consistent(out: pd.DataFrame) -> None:
    """Net value and CLV follow from the published margin and cost, as every run publishes them."""
    expected_net = net_value(out["expected_margin"].to_numpy(), out["cost_to_serve"].to_numpy())
    np.testing.assert_allclose(out["net_value"], expected_net)
    np.testing.assert_allclose(out["clv"], clv(expected_net, 182, 0.1))


def test_value_scaled_moves_revenue_margin_and_interval_together_and_keeps_cost():
    before = numbers()
    out = value_scaled(before, 1.5, SETTINGS)
    for column in ("expected_revenue", "expected_margin", "value_p10", "value_p90"):
        np.testing.assert_allclose(out[column], before[column] * 1.5)
    np.testing.assert_allclose(out["cost_to_serve"], before["cost_to_serve"])
    assert_consistent(out)
    assert before["expected_revenue"].iloc[0] == 100.0  # the input is not modified


def test_the_churn_blend_changes_only_p_churn_and_keeps_new_customers_unscored():
    before = numbers()
    p_reference = np.array([0.6, 0.3, np.nan, 0.5])
    out = blended_with_reference(before, p_reference, np.full(4, 50.0), churn_weight=0.25, value_weight=0.0,
                                 settings=SETTINGS)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    expected = 1 / (1 + np.exp(-(0.75 * logit(np.array([0.2, 0.9])) + 0.25 * logit(np.array([0.6, 0.3])))))
    np.testing.assert_allclose(out["p_churn"].iloc[:2], expected)
    assert np.isnan(out["p_churn"].iloc[2]) and out["p_churn"].iloc[3] == 0.5
    pd.testing.assert_frame_equal(out.drop(columns="p_churn"), before.drop(columns="p_churn"))


def test_the_value_blend_moves_each_customer_by_its_own_factor_and_leaves_zero_revenue_alone():
    before = numbers()
    reference = np.array([60.0, 40.0, np.nan, 9.0])
    out = blended_with_reference(before, np.full(4, 0.5), reference, churn_weight=0.0, value_weight=0.25,
                                 settings=SETTINGS)
    np.testing.assert_allclose(out["expected_revenue"].iloc[:2], [0.75 * 100 + 0.25 * 60, 0.75 * 20 + 0.25 * 40])
    np.testing.assert_allclose(out["value_p90"].iloc[:2], before["value_p90"].iloc[:2] * [0.9, 1.25])
    np.testing.assert_allclose(out["expected_margin"].iloc[:2], before["expected_margin"].iloc[:2] * [0.9, 1.25])
    assert out["expected_revenue"].iloc[3] == 0.0 and out["value_p90"].iloc[3] == 3.0
    assert np.isnan(out["expected_revenue"].iloc[2])
    np.testing.assert_allclose(out["p_churn"], before["p_churn"])
    assert_consistent(out)
