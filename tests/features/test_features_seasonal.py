"""Season features on hand-made logs: last year's window of the coming horizon, per customer and for everyone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.build import FeatureSpec, build_features, feature_columns, feature_set_name
from features.tables import tables_from_frames

T = datetime(2024, 7, 1)
YEAR_AGO = T - timedelta(days=365)  # 2023-07-02: the 90-day window is [2023-07-02, 2023-09-30)
SPEC = FeatureSpec(windows_days=(30, 90), season_horizons_days=(90, 180))
SEASON_COLUMNS = [
    "revenue_sum_next_90d_year_ago", "order_days_next_90d_year_ago", "revenue_share_next_90d_year_ago",
    "revenue_sum_next_180d_year_ago", "order_days_next_180d_year_ago", "revenue_share_next_180d_year_ago",
    "season_share_next_90d", "season_share_next_180d",
]  # fmt: skip


def row(customer: str, order: str, ts: datetime, amount: float) -> dict:
    return {"customer_id": customer, "order_id": order, "ts": ts, "amount": amount}


def after_year_ago(days: float, hours: float = 0) -> datetime:
    return YEAR_AGO + timedelta(days=days, hours=hours)


LOG = pd.DataFrame([
    row("steady", "s1", YEAR_AGO, 100.0),                        # on the window's first instant: in both windows
    row("steady", "s2", after_year_ago(30, 10), 40.0),           # two orders on one day: one order day
    row("steady", "s3", after_year_ago(30, 15), 60.0),
    row("steady", "s2", after_year_ago(95), -10.0),              # a return dated in the 180-day window only
    row("steady", "s4", after_year_ago(90), 200.0),              # on the 90-day window's end: in 180 only
    row("steady", "s5", T - timedelta(days=366), 1000.0),        # before last year's window and the last 365 days
    row("steady", "s6", T - timedelta(days=30), 100.0),          # this year, outside the windows
    row("newcomer", "n1", T - timedelta(days=10), 50.0),
    row("refund", "x1", after_year_ago(65), -20.0),              # returns only: no order
])  # fmt: skip
FUTURE = pd.DataFrame([
    row("steady", "s7", T, 500.0), row("newcomer", "n2", T + timedelta(days=3), 70.0),
    row("late", "l1", T + timedelta(hours=1), 30.0), row("steady", "s1", T + timedelta(days=1), -100.0),
])  # fmt: skip


def features_of(con, log: pd.DataFrame, as_of: datetime = T, spec: FeatureSpec = SPEC) -> pd.DataFrame:
    _, tables = tables_from_frames({"transactions": log}, con)
    return build_features(tables, as_of, spec).set_index("customer_id")


def test_customer_season_columns_hand_computed(con):
    f = features_of(con, LOG)
    year_revenue = 100 + 40 + 60 - 10 + 200 + 100  # steady's rows in [T - 365d, T)
    assert f.loc["steady", "revenue_sum_next_90d_year_ago"] == pytest.approx(200.0)
    assert f.loc["steady", "order_days_next_90d_year_ago"] == 2
    assert f.loc["steady", "revenue_share_next_90d_year_ago"] == pytest.approx(200 / year_revenue)
    assert f.loc["steady", "revenue_sum_next_180d_year_ago"] == pytest.approx(390.0)
    assert f.loc["steady", "order_days_next_180d_year_ago"] == 3
    assert f.loc["steady", "revenue_share_next_180d_year_ago"] == pytest.approx(390 / year_revenue)
    # Not a customer a year ago: nothing in the window, a zero share of this year's spend.
    assert f.loc["newcomer", ["revenue_sum_next_90d_year_ago", "order_days_next_90d_year_ago",
                              "revenue_share_next_90d_year_ago"]].tolist() == [0.0, 0, 0.0]
    # Returns only: the return counts as revenue, no order day, no share of a negative year.
    assert f.loc["refund", "revenue_sum_next_90d_year_ago"] == pytest.approx(-20.0)
    assert f.loc["refund", "order_days_next_90d_year_ago"] == 0
    assert pd.isna(f.loc["refund", "revenue_share_next_90d_year_ago"])


def test_population_share_is_everyones_revenue_in_the_window_over_their_year(con):
    f = features_of(con, LOG)
    year_revenue = 490 + 50 - 20
    assert f["season_share_next_90d"].tolist() == pytest.approx([(200 - 20) / year_revenue] * 3)
    assert f["season_share_next_180d"].tolist() == pytest.approx([(390 - 20) / year_revenue] * 3)


def test_population_share_needs_a_year_of_history(con):
    exactly_a_year = LOG[LOG["order_id"] != "s5"]  # first row at T - 365d exactly
    assert features_of(con, exactly_a_year)["season_share_next_90d"].notna().all()
    # A log that starts later on that day covers it (a shop's first sale of the day is not at midnight).
    same_day = exactly_a_year.assign(ts=exactly_a_year["ts"].where(exactly_a_year["order_id"] != "s1", YEAR_AGO + timedelta(hours=7)))
    assert features_of(con, same_day)["season_share_next_90d"].notna().all()
    shorter = exactly_a_year[exactly_a_year["order_id"] != "s1"]  # first row 30 days later
    f = features_of(con, shorter)
    assert f["season_share_next_90d"].isna().all() and f["season_share_next_180d"].isna().all()
    # The customer's own window is still measured (zero where nothing was bought then).
    assert f.loc["steady", "revenue_sum_next_90d_year_ago"] == pytest.approx(100.0)


def test_an_order_day_on_a_window_edge_counts_when_an_order_of_it_is_inside(con):
    noon = T + timedelta(hours=12)
    start, end = noon - timedelta(days=365), noon - timedelta(days=365 - 90)
    log = pd.DataFrame([
        row("edge", "e1", start - timedelta(hours=1), 1.0), row("edge", "e2", start + timedelta(hours=1), 2.0),
        row("edge", "e3", end - timedelta(hours=1), 4.0), row("edge", "e4", end + timedelta(hours=1), 8.0),
        row("outside", "o1", start - timedelta(hours=1), 1.0), row("outside", "o2", end + timedelta(hours=1), 2.0),
    ])  # fmt: skip
    f = features_of(con, log, as_of=noon)
    assert f.loc["edge", "order_days_next_90d_year_ago"] == 2
    assert f.loc["edge", "revenue_sum_next_90d_year_ago"] == pytest.approx(6.0)
    assert f.loc["outside", "order_days_next_90d_year_ago"] == 0
    assert f.loc["outside", "revenue_sum_next_90d_year_ago"] == 0.0


def test_rows_at_or_after_t_change_no_season_column(con):
    before = features_of(con, LOG)[SEASON_COLUMNS]
    after = features_of(con, pd.concat([LOG, FUTURE], ignore_index=True))[SEASON_COLUMNS]
    pd.testing.assert_frame_equal(before.sort_index(), after.sort_index())


def test_horizons_of_a_year_or_more_give_no_season_columns():
    available = {"transactions": ["customer_id", "order_id", "ts", "amount", "margin"]}
    long_only = FeatureSpec(windows_days=(30, 90), season_horizons_days=(365, 400))
    names = feature_columns(long_only, available)
    assert not [c for c in names if "next_" in c]
    assert names == feature_columns(FeatureSpec(windows_days=(30, 90)), available)
    assert feature_set_name(long_only) == "custscore-v1"
    mixed = FeatureSpec(windows_days=(30, 90), season_horizons_days=(400, 90, 90))
    assert [c for c in feature_columns(mixed, available) if "next_" in c] == [
        "revenue_sum_next_90d_year_ago", "order_days_next_90d_year_ago", "revenue_share_next_90d_year_ago",
        "season_share_next_90d"]
    assert feature_set_name(mixed) == "custscore-v1-season-90d"
    assert feature_set_name(SPEC) == "custscore-v1-season-90d-180d"


def test_built_columns_are_the_named_columns(con):
    f = features_of(con, LOG, spec=FeatureSpec(windows_days=(30, 90), season_horizons_days=(365, 90)))
    available = {"transactions": list(LOG.columns) + ["margin"]}
    assert list(f.columns) == feature_columns(FeatureSpec(windows_days=(30, 90), season_horizons_days=(90,)), available)


def test_horizons_must_be_positive_days():
    with pytest.raises(ValueError, match="season_horizons_days"):
        FeatureSpec(season_horizons_days=(0, 90))
