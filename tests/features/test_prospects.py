"""Prospects at T, their features and first-order labels, the snapshots, and the converters' first-year values.

Tiny hand-made data; every expected number is counted by hand from the rows below.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.prospects import (
    LABEL,
    VALUE_LABEL,
    build_prospect_training_set,
    converter_values,
    first_order_labels,
    prospect_feature_columns,
    prospect_features,
    prospect_snapshot_dates,
    prospects_at,
    why_no_prospect_model,
)
from features.tables import tables_from_frames

T = datetime(2024, 7, 1)
D = timedelta(days=1)
WINDOWS = (30, 90)

CUSTOMERS = pd.DataFrame({
    "customer_id": ["buyer", "lead", "quiet", "later", "undated", "returner"],
    "industry": ["retail", "retail", "education", "retail", "logistics", "retail"],
    "signup_date": [T - 400 * D, T - 50 * D, T - 200 * D, T + 5 * D, None, T - 100 * D],
})
TRANSACTIONS = pd.DataFrame({
    "customer_id": ["buyer", "lead", "lead", "returner", "later"],
    "order_id": ["o1", "o2", "o3", "r1", "o4"],
    # lead's first order comes 10 days after T (label 1 for a 90-day horizon), then one later;
    # returner has only a return before T: a transaction line, so not a prospect.
    "ts": [T - 300 * D, T + 10 * D, T + 200 * D, T - 5 * D, T + 20 * D],
    "amount": [100.0, 40.0, 60.0, -15.0, 70.0],
})
INTERACTIONS = pd.DataFrame({
    "customer_id": ["lead", "lead", "lead", "lead", "quiet"],
    "ts": [T - 10 * D, T - 40 * D, T - 1 * D, T, T - 300 * D],  # the one at T does not exist yet at T
    "kind": ["visit", "call", "call", "visit", "call"],
})


@pytest.fixture(scope="module")
def tables(con):
    frames = {"transactions": TRANSACTIONS, "customers": CUSTOMERS, "interactions": INTERACTIONS}
    return tables_from_frames(frames, con)[1]


def test_a_prospect_exists_at_t_and_has_no_transaction_line_before_it(tables):
    ids = sorted(prospects_at(tables, T).to_pyarrow().column("customer_id").to_pylist())
    # buyer ordered and returner returned before T; later signed up after T
    assert ids == ["lead", "quiet", "undated"]


def test_contacts_are_counted_by_kind_and_window_before_t_only(tables):
    frame = prospect_features(tables, T, WINDOWS).set_index("customer_id")
    assert list(frame.columns) == prospect_feature_columns(CUSTOMERS.columns, True, WINDOWS)
    lead = frame.loc["lead"]
    assert (lead["visit_count_30d"], lead["call_count_30d"], lead["interaction_count_30d"]) == (1, 1, 2)
    assert (lead["visit_count_90d"], lead["call_count_90d"], lead["interaction_count_90d"]) == (1, 2, 3)
    assert lead["days_since_last_contact"] == pytest.approx(1.0)
    assert lead["days_since_signup"] == 50 and lead["attr_industry"] == "retail"
    quiet = frame.loc["quiet"]
    assert quiet["interaction_count_90d"] == 0 and quiet["days_since_last_contact"] == pytest.approx(300.0)
    undated = frame.loc["undated"]
    assert undated["visit_count_90d"] == 0 and pd.isna(undated["days_since_last_contact"])
    assert pd.isna(undated["days_since_signup"])


def test_rows_dated_at_or_after_t_change_nothing_at_t(tables, con):
    """Point in time: a contact, an order or a sign-up on or after T leaves the features at T as they were."""
    later = {
        "transactions": pd.concat([TRANSACTIONS, pd.DataFrame({"customer_id": ["quiet"], "order_id": ["o9"],
                                                               "ts": [T], "amount": [5.0]})]),
        "customers": CUSTOMERS,
        "interactions": pd.concat([INTERACTIONS, pd.DataFrame({"customer_id": ["quiet", "undated"],
                                                               "ts": [T + D, T], "kind": ["visit", "call"]})]),
    }
    changed = tables_from_frames(later, con)[1]
    before = prospect_features(tables, T, WINDOWS)
    pd.testing.assert_frame_equal(prospect_features(changed, T, WINDOWS), before)


def test_first_order_label_counts_a_positive_line_within_the_horizon(tables):
    labels = first_order_labels(tables, T, 90).to_pyarrow().to_pandas().set_index("customer_id")[LABEL]
    assert labels.to_dict() == {"lead": 1, "quiet": 0, "undated": 0}
    # With a 10-day horizon lead's order on day 10 falls outside: [T, T + 10 days) ends before it.
    assert first_order_labels(tables, T, 10).to_pyarrow().to_pandas().set_index("customer_id")[LABEL]["lead"] == 0


def test_snapshots_keep_every_training_label_window_before_the_validation_snapshot():
    start = datetime(2023, 1, 1)
    dates = prospect_snapshot_dates(datetime(2024, 7, 1), start, horizon_days=90, n_snapshots=3, step_days=30)
    validation = datetime(2024, 4, 2)
    assert dates == [validation - timedelta(days=150), validation - timedelta(days=120), validation - timedelta(days=90),
                     validation]
    assert all(d + timedelta(days=90) <= validation for d in dates[:-1])
    # Snapshots earlier than MIN_HISTORY_DAYS after the data starts are dropped.
    short = prospect_snapshot_dates(datetime(2024, 7, 1), datetime(2023, 10, 1), horizon_days=90, n_snapshots=3,
                                    step_days=30)
    assert short == [validation - timedelta(days=90), validation]


def test_training_set_stacks_snapshots_and_marks_the_last_for_validation(tables):
    scoring = T + 90 * D + 90 * D  # validation snapshot T + 90 days, one training snapshot at T
    frame = build_prospect_training_set(tables, scoring, horizon_days=90, n_snapshots=1, step_days=30, windows=WINDOWS)
    at_t = frame.loc[frame["as_of"] == pd.Timestamp(T)].set_index("customer_id")
    assert not at_t["is_validation"].any() and at_t[LABEL].to_dict() == {"lead": 1, "quiet": 0, "undated": 0}
    valid = frame.loc[frame["is_validation"]]
    assert set(valid["as_of"]) == {pd.Timestamp(T + 90 * D)}
    # By then lead, buyer and returner have history and later has ordered: quiet and undated remain.
    assert sorted(valid["customer_id"]) == ["quiet", "undated"]


def test_converter_values_sum_the_first_value_horizon_after_the_first_order(con):
    s = datetime(2025, 1, 1)
    frames = {
        "customers": pd.DataFrame({"customer_id": ["a", "b", "c"], "size_band": ["small", "large", "small"]}),
        "transactions": pd.DataFrame({
            "customer_id": ["a", "a", "a", "a", "b", "c"],
            "order_id": ["1", "2", "3", "4", "5", "6"],
            # a: first order 200 days before s - 100; a return in its first 100 days; an order after them
            "ts": [s - 300 * D, s - 250 * D, s - 210 * D, s - 150 * D, s - 500 * D, s - 50 * D],
            "amount": [100.0, -30.0, 50.0, 999.0, 80.0, 60.0],
        }),
    }
    values = converter_values(tables_from_frames(frames, con)[1], s, value_horizon_days=100, lookback_days=365)
    # b's first order is older than the lookback, c's too recent for a whole horizon after it.
    assert values["customer_id"].tolist() == ["a"]
    assert values[VALUE_LABEL].tolist() == [120.0] and values["attr_size_band"].tolist() == ["small"]


def test_without_customers_or_anything_to_know_prospects_by_the_model_is_refused(con):
    tx = TRANSACTIONS.iloc[:1]
    assert "no customers table" in why_no_prospect_model(tables_from_frames({"transactions": tx}, con)[1])
    bare = tables_from_frames({"transactions": tx, "customers": CUSTOMERS[["customer_id", "signup_date"]]}, con)[1]
    assert "nothing is known about prospects" in why_no_prospect_model(bare)
