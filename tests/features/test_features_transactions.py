"""Transaction features on a hand-made log: every family and its edge cases, hand-computed."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features.build import FeatureSpec, build_features, feature_columns
from features.tables import tables_from_frames
from features.transactions import BTYD_INPUT_COLUMNS, btyd_inputs_expr

T = datetime(2024, 7, 1)
SPEC = FeatureSpec(windows_days=(30, 90))


def ago(days: float, hours: float = 0) -> datetime:
    """A moment `days` days (plus `hours`) before T."""
    return T - timedelta(days=days, hours=hours)


def line(customer: str, order: str, ts: datetime, amount: float, margin: float, category: str | None = "x", product: str | None = "p1", discount: float = 0.0) -> dict:
    """One transaction row."""
    return {"customer_id": customer, "order_id": order, "ts": ts, "amount": amount, "margin": margin,
            "category": category, "product_id": product, "discount": discount}


LOG = pd.DataFrame(
    [
        # steady: three orders (120, 60, 15 days ago), a return 10 days ago, a discount 60 days ago
        line("steady", "a1", ago(120), 100.0, 30.0, "x", "p1"),
        line("steady", "a2", ago(60), 60.0, 20.0, "x", "p1", discount=10.0),
        line("steady", "a2", ago(60), 40.0, 10.0, "y", "p2"),
        line("steady", "a3", ago(15), 80.0, 25.0, "z", "p3"),
        line("steady", "a2", ago(10), -20.0, -5.0, "y", "p2"),
        line("steady", "a4", T, 999.0, 300.0, "w", "p9"),  # at T: not visible
        line("steady", "a5", T + timedelta(days=3), 999.0, 300.0, "w", "p9"),  # after T
        # one order exactly 90 days before T (inside the 90-day window: T - 90d <= ts)
        line("one_order", "b1", ago(90), 50.0, 15.0),
        # two orders on the same day and one 30 days earlier
        line("same_day", "c1", ago(60), 10.0, 3.0),
        line("same_day", "c2", ago(30, hours=-9), 20.0, 6.0),  # 29 days 15 h before T
        line("same_day", "c3", ago(30, hours=-15), 30.0, 9.0),  # 29 days 9 h before T
        # only a return
        line("only_returns", "r1", ago(5), -30.0, -9.0),
        # orders more than a year ago, nothing since
        line("dormant", "d1", ago(400), 70.0, 21.0),
        line("dormant", "d2", ago(380), 30.0, 9.0),
        # sales and a return that cancel out 40 days ago (0.1 + 0.2 - 0.3 is 5.6e-17 in floats)
        line("cancelled", "e1", ago(40), 0.1, 0.0),
        line("cancelled", "e2", ago(40), 0.2, 0.0),
        line("cancelled", "e1", ago(39), -0.3, 0.0),
        line("cancelled", "e3", ago(5), 50.0, 10.0),
        # only rows after T: not a customer at T
        line("future", "f1", T + timedelta(days=1), 10.0, 3.0),
    ]
)


@pytest.fixture(scope="module")
def features(con) -> pd.DataFrame:
    """Features of the hand-made log as of T, indexed by customer."""
    _, tables = tables_from_frames({"transactions": LOG}, con)
    return build_features(tables, T, SPEC).set_index("customer_id")


def test_one_row_per_customer_with_history_before_t(features):
    assert sorted(features.index) == ["cancelled", "dormant", "one_order", "only_returns", "same_day", "steady"]


def test_recency_and_tenure_in_days(features):
    assert features.loc["steady", "days_since_last_order"] == 15
    assert features.loc["steady", "days_since_first_order"] == 120
    assert features.loc["same_day", "days_since_last_order"] == pytest.approx(29 + 9 / 24)
    assert features.loc["dormant", "days_since_last_order"] == 380


def test_volume_per_window_ignores_rows_at_or_after_t(features):
    steady = features.loc["steady"]
    assert (steady["order_count_30d"], steady["order_count_90d"], steady["order_count_lifetime"]) == (1, 2, 3)
    # returns reduce revenue in the window where they happen: 80 - 20 and 100 + 80 - 20
    assert steady["revenue_sum_30d"] == 60
    assert steady["revenue_sum_90d"] == 160
    assert steady["revenue_sum_lifetime"] == 260
    assert steady["revenue_mean_per_order_90d"] == 80
    assert steady["revenue_mean_per_order_lifetime"] == pytest.approx(260 / 3)
    assert (steady["margin_sum_30d"], steady["margin_sum_90d"], steady["margin_sum_lifetime"]) == (20, 50, 80)
    assert steady["margin_mean_per_order_30d"] == 20


def test_one_order_on_the_window_edge(features):
    one = features.loc["one_order"]
    assert one["order_count_90d"] == 1  # T - 90 days is inside [T - 90d, T)
    assert one["order_count_30d"] == 0 and one["revenue_sum_30d"] == 0  # true zeros
    assert math.isnan(one["revenue_mean_per_order_30d"])  # no order: no mean, not 0
    assert math.isnan(one["order_gap_mean_days"]) and math.isnan(one["recency_over_gap_mean"])
    assert one["days_since_first_order"] == one["days_since_last_order"] == 90


def test_cadence_uses_distinct_order_days(features):
    steady = features.loc["steady"]
    assert steady["order_gap_mean_days"] == 52.5  # gaps 60 and 45 days
    assert steady["order_gap_std_days"] == pytest.approx(np.std([60, 45], ddof=1))
    assert steady["recency_over_gap_mean"] == pytest.approx(15 / 52.5)
    same_day = features.loc["same_day"]
    assert same_day["order_count_30d"] == 2
    assert same_day["order_gap_mean_days"] == 30  # the two same-day orders are one order day
    assert math.isnan(same_day["order_gap_std_days"])  # one gap has no spread


def test_btyd_inputs_count_order_days_and_average_the_repeat_days(features):
    order_days = features["order_days_lifetime"].to_dict()
    assert order_days == {"steady": 3, "one_order": 1, "same_day": 2, "only_returns": 0, "dormant": 2, "cancelled": 2}
    repeat = features["repeat_revenue_mean_per_order_day_lifetime"]
    # steady: days 60 (60 + 40) and 15 (80) ago, and the return of 20 on day 10 ago is net revenue of a later day
    assert repeat["steady"] == pytest.approx((100 + 80 - 20) / 2)
    assert repeat["same_day"] == pytest.approx(20 + 30)  # two orders on one repeat day
    assert repeat["dormant"] == 30
    assert repeat["cancelled"] == pytest.approx(-0.3 + 50)  # the day-39 return follows the first day
    assert math.isnan(repeat["one_order"]) and math.isnan(repeat["only_returns"])  # no repeat day


def test_btyd_inputs_expr_equals_the_full_feature_table(con, features):
    _, tables = tables_from_frames({"transactions": LOG}, con)
    inputs = btyd_inputs_expr(tables["transactions"], T).execute().set_index("customer_id").sort_index()
    assert list(inputs.columns) == list(BTYD_INPUT_COLUMNS)
    expected = features.loc[inputs.index, list(BTYD_INPUT_COLUMNS)]
    pd.testing.assert_frame_equal(inputs.astype(float), expected.astype(float))


def test_trend_against_previous_window_and_year_ago(features):
    steady = features.loc["steady"]
    assert steady["revenue_change_pct_30d_vs_prev_30d"] == pytest.approx(-40.0)  # 60 vs 100
    assert steady["revenue_change_pct_90d_vs_prev_90d"] == pytest.approx(60.0)  # 160 vs 100
    assert math.isnan(steady["revenue_change_pct_30d_vs_year_ago"])  # nothing a year ago
    dormant = features.loc["dormant"]
    assert dormant["revenue_change_pct_30d_vs_year_ago"] == pytest.approx(-100.0)  # 0 vs 30
    assert dormant["revenue_change_pct_90d_vs_year_ago"] == pytest.approx(-100.0)  # 0 vs 100


def test_change_against_a_window_that_nets_to_zero_is_null_not_huge(features):
    assert math.isnan(features.loc["cancelled", "revenue_change_pct_30d_vs_prev_30d"])


def test_monthly_slope_is_least_squares_over_twelve_months(features):
    # months of 30.4375 days back from T; index 11 = latest: 80-20 in month 11, 100 in 10, 100 in 8
    monthly = np.zeros(12)
    monthly[11], monthly[10], monthly[8] = 60.0, 100.0, 100.0
    expected = np.polyfit(np.arange(12), monthly, 1)[0]
    assert features.loc["steady", "revenue_monthly_slope_12m"] == pytest.approx(expected)
    assert features.loc["dormant", "revenue_monthly_slope_12m"] == 0  # nothing in the last 12 months


def test_breadth_counts_purchased_and_new_categories(features):
    steady = features.loc["steady"]
    assert steady["distinct_categories_30d"] == 1  # z (the return of y is not a purchase)
    assert steady["distinct_categories_90d"] == 3
    assert steady["new_category_count_30d"] == 1  # z first bought 15 days ago
    assert steady["new_category_count_90d"] == 2  # y and z; x was first bought 120 days ago
    assert (steady["distinct_products_30d"], steady["distinct_products_90d"]) == (1, 3)
    assert features.loc["dormant", "distinct_categories_90d"] == 0


def test_returns_counts_amounts_and_share(features):
    steady = features.loc["steady"]
    assert (steady["return_count_30d"], steady["return_amount_30d"]) == (1, 20)
    assert steady["return_share_30d"] == pytest.approx(20 / 80)
    assert steady["return_share_90d"] == pytest.approx(20 / 180)
    only = features.loc["only_returns"]
    assert only["has_orders"] == 0 and only["order_count_lifetime"] == 0
    assert only["revenue_sum_30d"] == -30 and only["return_amount_30d"] == 30
    assert math.isnan(only["return_share_30d"])  # nothing sold: share undefined
    assert math.isnan(only["days_since_last_order"])


def test_discounts_amount_share_and_orders(features):
    steady = features.loc["steady"]
    assert (steady["discount_amount_30d"], steady["discount_amount_90d"]) == (0, 10)
    assert steady["discount_share_90d"] == pytest.approx(10 / (180 + 10))
    assert (steady["discounted_order_count_30d"], steady["discounted_order_count_90d"]) == (0, 1)


def test_columns_follow_feature_columns(features):
    assert list(features.columns) == feature_columns(SPEC, {"transactions": set(LOG.columns)})


def test_absent_optional_columns_mean_absent_families(con):
    minimal = LOG[["customer_id", "order_id", "ts", "amount"]]
    _, tables = tables_from_frames({"transactions": minimal}, con)
    frame = build_features(tables, T, SPEC).set_index("customer_id")
    absent = [c for c in frame.columns if c.startswith(("distinct_", "new_category", "discount"))]
    assert absent == []
    # margin defaults to 30% of amount, as validation fills it
    assert frame.loc["steady", "margin_sum_90d"] == pytest.approx(0.3 * 160)
    assert "cost_to_serve_30d" in frame.columns  # returns alone are a cost to serve


def test_sums_that_cancel_are_exactly_zero_not_a_residue_or_minus_zero(con):
    # 0.1 + 0.2 - 0.3 is 5.6e-17 in floats, and -0.3 + 0.2 + 0.1 is -2.8e-17: DuckDB's parallel sums
    # take either order, and LightGBM sends 5.6e-17 down another branch than 0.
    log = pd.DataFrame([
        line("nets_zero", "n1", ago(40), 0.1, 0.1),
        line("nets_zero", "n2", ago(40), 0.2, 0.2),
        line("nets_zero", "n1", ago(39), -0.3, -0.3),
    ])  # fmt: skip
    _, tables = tables_from_frames({"transactions": log}, con)
    row = build_features(tables, T, SPEC).set_index("customer_id").loc["nets_zero"]
    for column in ("revenue_sum_lifetime", "margin_sum_lifetime", "revenue_sum_90d", "margin_mean_per_order_lifetime"):
        assert row[column] == 0.0 and not np.signbit(row[column]), (column, row[column])


def test_round_float_noise_keeps_amounts_and_clears_residues():
    from features.build import round_float_noise

    values = np.array([5.551115123125783e-17, -2.7755575615628914e-17, -0.0, 3.11e-15, 1e-9, 0.01, -0.3000000000000001, 123456.78900000001, np.nan, np.inf])
    rounded = round_float_noise(values)
    assert rounded[:4].tolist() == [0.0, 0.0, 0.0, 0.0] and not np.signbit(rounded[:4]).any()
    assert rounded[4:8].tolist() == [1e-9, 0.01, -0.3, 123456.789]
    assert np.isnan(rounded[8]) and rounded[9] == np.inf
