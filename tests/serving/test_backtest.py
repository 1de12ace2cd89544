"""Backtests of a published run on six customers whose outcomes are known: every figure computed by hand."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import ibis
import pandas as pd
import pytest

from features.tables import tables_from_frames
from serving.backtest import (
    BacktestConfig,
    BacktestDataError,
    BacktestWindow,
    backtest_summary,
    backtest_table,
    coverage_warnings,
    realised_outcomes,
    tolerance_warnings,
    with_validation,
)

AS_OF = date(2024, 1, 1)
T = datetime(2024, 1, 1)
CHURN_DAYS, VALUE_DAYS = 90, 180
BOTH_PASSED = T + timedelta(days=213)  # outcomes observed before 2024-08-01: both windows passed
CHURN_ONLY = T + timedelta(days=100)  # the 90-day window passed, the 180-day one not


def at(days: float) -> datetime:
    return T + timedelta(days=days)


# Every customer ordered 10 days before T. Then:
#   A, B churn and buy nothing; C orders 100 on day 10; E 300 on day 30;
#   D only orders after the churn window (40 on day 120): churned, with value-window revenue;
#   F orders 150 on day 60, 50 on day 95, and 1,000 on day 200, after the value window: never counted.
TRANSACTIONS = pd.DataFrame(
    [(c, f"{c}0", at(-10), 50.0, 10.0) for c in "ABCDEF"]
    + [("C", "C1", at(10), 100.0, 20.0), ("E", "E1", at(30), 300.0, 60.0), ("D", "D1", at(120), 40.0, 8.0),
       ("F", "F1", at(60), 150.0, 30.0), ("F", "F2", at(95), 50.0, 10.0), ("F", "F3", at(200), 1000.0, 200.0)],
    columns=["customer_id", "order_id", "ts", "amount", "margin"],
)
SCORES = pd.DataFrame({
    "customer_id": list("ABCDEF"),
    "p_churn": [0.9, 0.8, 0.6, 0.3, 0.2, 0.1],
    "expected_revenue": [10.0, 20.0, 50.0, 200.0, 300.0, 100.0],
    "segment": ["at_risk", "at_risk", "regular", "most_valuable", "most_valuable", "regular"],
    "value_tier": ["C", "C", "B", "A", "A", "B"],
})


@pytest.fixture(scope="module")
def tables():
    con = ibis.duckdb.connect()
    yield tables_from_frames({"transactions": TRANSACTIONS}, con)[1]
    con.disconnect()


def window(data_end: datetime) -> BacktestWindow:
    return BacktestWindow(AS_OF, CHURN_DAYS, VALUE_DAYS, data_end)


@pytest.fixture(scope="module")
def table(tables) -> pd.DataFrame:
    w = window(BOTH_PASSED)
    return backtest_table(SCORES, realised_outcomes(tables, w), w)


def figure(table: pd.DataFrame, score: str, metric: str, group_by: str = "all", group: str = "all") -> pd.Series:
    rows = table.loc[(table["score"] == score) & (table["metric"] == metric) & (table["group_by"] == group_by)
                     & (table["group"] == group)]
    assert len(rows) == 1, f"{score} {metric} {group_by}={group}: {len(rows)} rows"
    return rows.iloc[0]


def test_realised_outcomes_count_only_orders_inside_each_window(tables):
    outcomes = realised_outcomes(tables, window(BOTH_PASSED)).set_index("customer_id")
    assert outcomes["label_churn"].to_dict() == {"A": 1, "B": 1, "C": 0, "D": 1, "E": 0, "F": 0}
    # D's order on day 120 is after the churn window but inside the value window; F's day-200 order is after both.
    assert outcomes["label_revenue"].to_dict() == {"A": 0.0, "B": 0.0, "C": 100.0, "D": 40.0, "E": 300.0, "F": 200.0}


def test_churn_auc_brier_and_capture_match_the_hand_computation(table):
    # churners A .9, B .8, D .3 against stayers C .6, E .2, F .1: 8 of 9 pairs ordered right
    assert figure(table, "churn", "roc_auc")["value"] == pytest.approx(8 / 9)
    # (.1^2 + .2^2 + .6^2 + .7^2 + .2^2 + .1^2) / 6
    assert figure(table, "churn", "brier")["value"] == pytest.approx(0.95 / 6)
    # the top 10% of six customers is one (A, a churner) out of three churners
    assert figure(table, "churn", "capture_top_decile")["value"] == pytest.approx(1 / 3)
    rate = figure(table, "churn", "churn_rate")
    assert (rate["realised"], rate["predicted"], rate["customers"]) == (pytest.approx(0.5), pytest.approx(2.9 / 6), 6)


def test_value_gini_capture_and_bias_match_the_hand_computation(table):
    # by prediction E 300, D 40, F 200, C 100, B 0, A 0 of 640 realised; perfect order 300, 200, 100, 40
    assert figure(table, "value", "normalized_gini")["value"] == pytest.approx(59 / 70)
    assert figure(table, "value", "top10_capture")["value"] == pytest.approx(300 / 640)
    assert figure(table, "value", "top20_capture")["value"] == pytest.approx(340 / 640)
    assert figure(table, "value", "aggregate_bias_pct")["value"] == pytest.approx(100 * (680 - 640) / 640)


def test_each_segment_and_tier_shows_realised_against_predicted(table):
    at_risk = figure(table, "churn", "churn_rate", "segment", "at_risk")
    assert (at_risk["realised"], at_risk["predicted"], at_risk["customers"]) == (1.0, pytest.approx(0.85), 2)
    assert figure(table, "churn", "churn_rate", "segment", "regular")["realised"] == 0.0
    valuable = figure(table, "value", "revenue_per_customer", "segment", "most_valuable")
    assert (valuable["realised"], valuable["predicted"]) == (170.0, 250.0)
    tier_b = figure(table, "value", "revenue_per_customer", "value_tier", "B")
    assert (tier_b["realised"], tier_b["predicted"]) == (150.0, 75.0)


def test_calibration_by_decile_orders_groups_by_the_prediction(table):
    deciles = table.loc[(table["score"] == "churn") & (table["group_by"] == "decile")]
    # six customers: six groups of one, lowest prediction first (F .1 stayed, A .9 left)
    assert deciles["group"].tolist() == ["01", "02", "03", "04", "05", "06"]
    assert deciles["predicted"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.6, 0.8, 0.9])
    assert deciles["realised"].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 1.0]


def test_a_horizon_not_passed_is_pending_not_a_number(tables):
    w = window(CHURN_ONLY)
    table = backtest_table(SCORES, realised_outcomes(tables, w), w)
    value = table.loc[table["score"] == "value"]
    assert set(value["status"]) == {"pending"} and value["value"].isna().all()
    assert set(value["group_by"]) == {"all"}  # no group rows without outcomes
    assert value["window_end"].iloc[0] == date(2024, 6, 29)
    assert figure(table, "churn", "roc_auc")["value"] == pytest.approx(8 / 9)
    summary = backtest_summary(table)
    assert summary["value"]["status"] == "pending" and summary["value"]["metrics"]["normalized_gini"] is None
    assert summary["churn"]["status"] == "measured"


def test_no_window_passed_reads_no_outcome(tables):
    w = window(T + timedelta(days=50))
    assert w.passed_scores() == ()
    assert list(realised_outcomes(tables, w).columns) == ["customer_id"]
    assert set(backtest_table(SCORES, realised_outcomes(tables, w), w)["status"]) == {"pending"}


def test_a_window_ending_exactly_at_the_data_end_has_passed():
    assert window(T + timedelta(days=90)).passed_scores() == ("churn",)
    assert window(T + timedelta(days=89, hours=23)).passed_scores() == ()


def test_drops_beyond_the_tolerances_are_warnings(table):
    judged = with_validation(table, {"churn": {"roc_auc": 0.95, "brier": 0.1}, "value": {"normalized_gini": 0.85}})
    assert figure(judged, "churn", "roc_auc")["validation"] == 0.95
    assert math.isnan(figure(judged, "churn", "churn_rate", "segment", "at_risk")["validation"])
    warnings = tolerance_warnings(judged, BacktestConfig(), "run r1 (as of 2024-01-01)")
    # churn: 0.95 - 0.889 = 0.061 > 0.05; value: 0.85 - 0.843 within 0.05; bias 6.25% within 25
    assert len(warnings) == 1
    assert "churn ROC-AUC 0.889 realised against 0.950" in warnings[0] and "roc_auc_drop" in warnings[0]
    strict = BacktestConfig(bias_pct=5, gini_drop=0.001)
    assert [w.split(": ")[1].split(" ")[0] for w in tolerance_warnings(judged, strict, "r1")] == ["churn", "value", "predicted"]
    assert "6.2% above the realised total" in tolerance_warnings(judged, strict, "r1")[2]
    off = BacktestConfig(roc_auc_drop=None, gini_drop=None, bias_pct=None)
    assert tolerance_warnings(judged, off, "r1") == []


def test_no_validation_figure_no_drop_warning(table):
    assert tolerance_warnings(table, BacktestConfig(roc_auc_drop=0.0, gini_drop=0.0), "r1") == []


def test_customers_missing_from_the_data_are_named_and_most_missing_is_an_error(tables):
    outcomes = realised_outcomes(tables, window(BOTH_PASSED))
    ghost = pd.concat([SCORES, SCORES.head(1).assign(customer_id="ghost")], ignore_index=True)
    assert coverage_warnings(ghost, outcomes, "r1") == [
        "backtest of r1: 1 of 7 scored customers have no history before its as-of in this data and are left out"]
    strangers = SCORES.assign(customer_id=[f"X{i}" for i in range(6)])
    with pytest.raises(BacktestDataError, match=r"for 0 of the 6 customers it scored \(0%\)"):
        coverage_warnings(strangers, outcomes, "r1")
