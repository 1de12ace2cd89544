"""Tenure-relative ratios on a hand-made log: hand-computed values, nulls, and point in time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.build import FeatureSpec, build_features, feature_columns
from features.families.tenure_ratios import TENURE_RATIO_COLUMNS
from features.tables import tables_from_frames

T = datetime(2024, 7, 1)
SPEC = FeatureSpec(windows_days=(30, 90), tenure_ratios=True)


def row(customer: str, order: str, days_before_t: float, amount: float) -> dict:
    """One transaction row `days_before_t` days before T (negative: after T)."""
    return {"customer_id": customer, "order_id": order, "ts": T - timedelta(days=days_before_t), "amount": amount}


LOG = pd.DataFrame([
    # regular: orders 300, 200 (two rows) and 100 days before T, all on distinct days
    row("regular", "r1", 300, 50.0), row("regular", "r2", 200, 30.0), row("regular", "r2", 200, 10.0),
    row("regular", "r3", 100, 60.0),
    # newcomer: one order 10 days ago: tenure counted as one month
    row("newcomer", "n1", 10, 40.0),
    # returns only: no order, so no ratio
    row("refund", "x1", 50, -20.0),
])
FUTURE = pd.DataFrame([row("regular", "r4", 0, 500.0), row("regular", "r5", -5, 500.0), row("newcomer", "n2", -1, 9.0)])


def features_of(con, log: pd.DataFrame) -> pd.DataFrame:
    """Features as of T of a log, indexed by customer."""
    _, tables = tables_from_frames({"transactions": log}, con)
    return build_features(tables, T, SPEC).set_index("customer_id")


def test_ratios_are_named_in_the_feature_list_only_when_asked():
    available = {"transactions": ["customer_id", "order_id", "ts", "amount", "margin"]}
    assert set(TENURE_RATIO_COLUMNS) <= set(feature_columns(SPEC, available))
    assert not set(TENURE_RATIO_COLUMNS) & set(feature_columns(FeatureSpec(windows_days=(30, 90), tenure_ratios=False),
                                                                available))


def test_hand_computed_ratios(con):
    f = features_of(con, LOG)
    months = 300 / 30.4375
    assert f.loc["regular", "recency_over_tenure"] == pytest.approx(100 / 300)
    assert f.loc["regular", "order_days_per_month_lifetime"] == pytest.approx(3 / months)
    assert f.loc["regular", "revenue_per_month_lifetime"] == pytest.approx(150 / months)
    assert f.loc["newcomer", "recency_over_tenure"] == pytest.approx(1.0)
    assert f.loc["newcomer", "order_days_per_month_lifetime"] == pytest.approx(1.0)  # one month at least
    assert f.loc["newcomer", "revenue_per_month_lifetime"] == pytest.approx(40.0)
    assert f.loc["refund", list(TENURE_RATIO_COLUMNS)].isna().all()


def test_rows_at_or_after_t_change_nothing(con):
    before = features_of(con, LOG)[list(TENURE_RATIO_COLUMNS)]
    after = features_of(con, pd.concat([LOG, FUTURE], ignore_index=True))[list(TENURE_RATIO_COLUMNS)]
    pd.testing.assert_frame_equal(before.sort_index(), after.sort_index())
