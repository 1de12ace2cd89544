"""Customer attributes, days since signup, prospects, and feature-set naming."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from features.build import FeatureSpec, build_features, feature_columns, feature_set_name, iter_feature_batches
from features.tables import tables_from_frames

T = datetime(2024, 7, 1)
SPEC = FeatureSpec(windows_days=(30,))

TRANSACTIONS = pd.DataFrame(
    {"customer_id": ["0042", "0007"], "order_id": ["o1", "o2"], "ts": [T - timedelta(days=10)] * 2, "amount": [10.0, 20.0]}
)
CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["0042", "0007", "prospect", "not_yet"],
        "industry": ["retail", "wholesale", "retail", "retail"],
        "employees": [12, 250, 3, 5],
        "signup_date": [T - timedelta(days=400), T - timedelta(days=20), T - timedelta(days=10), T + timedelta(days=5)],
    }
)


@pytest.fixture(scope="module")
def tables(con):
    """Transactions and customers on the module's DuckDB."""
    return tables_from_frames({"transactions": TRANSACTIONS, "customers": CUSTOMERS}, con)[1]


def test_attributes_as_category_and_float_with_days_since_signup(tables):
    frame = build_features(tables, T, SPEC).set_index("customer_id")
    assert isinstance(frame["attr_industry"].dtype, pd.CategoricalDtype)
    assert frame.loc["0007", "attr_industry"] == "wholesale"
    assert frame.loc["0042", "attr_employees"] == 12.0
    assert frame.loc["0042", "days_since_signup"] == 400
    assert sorted(frame.index) == ["0007", "0042"]  # leading zeros kept; no prospects by default


def test_prospects_are_marked_new_and_customers_signing_up_after_t_are_left_out(tables):
    frame = build_features(tables, T, SPEC, include_prospects=True).set_index("customer_id")
    assert sorted(frame.index) == ["0007", "0042", "prospect"]
    prospect = frame.loc["prospect"]
    assert prospect["has_orders"] == 0
    assert math.isnan(prospect["order_count_30d"]) and math.isnan(prospect["days_since_last_order"])
    assert prospect["days_since_signup"] == 10


def test_feature_batches_stream_the_same_rows_as_one_table(tables):
    whole = build_features(tables, T, SPEC, include_prospects=True)
    batches = list(iter_feature_batches(tables, T, SPEC, include_prospects=True, batch_rows=2))
    assert len(batches) >= 2 and all(len(b) == 2 for b in batches[:-1]) and 1 <= len(batches[-1]) <= 2
    # The stream comes in no fixed order of customers; each customer's row is the same.
    streamed = pd.concat(batches, ignore_index=True).sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(streamed.drop(columns="attr_industry"), whole.drop(columns="attr_industry"))


def test_feature_set_name_and_columns_depend_on_present_tables():
    spec = FeatureSpec(name="custscore", version=3, windows_days=(90, 30, 30))
    assert feature_set_name(spec) == "custscore-v3"
    assert spec.windows_days == (30, 90)
    only_tx = feature_columns(spec, {"transactions": {"customer_id", "order_id", "ts", "amount"}})
    with_all = feature_columns(
        spec,
        {
            "transactions": {"customer_id", "order_id", "ts", "amount"},
            "invoices": {"customer_id", "invoice_id", "issued_at", "due_at", "amount", "paid_at"},
            "interactions": {"customer_id", "ts", "kind"},
            "customers": {"customer_id", "region"},
        },
    )
    assert "invoice_on_time_rate_30d" not in only_tx and "invoice_on_time_rate_30d" in with_all
    assert "ticket_count_90d" in with_all and "attr_region" in with_all
    assert "service_cost_30d" not in with_all  # no cost column


def test_feature_spec_rejects_unknown_keys_and_bad_windows():
    with pytest.raises(ValidationError, match="windows_days"):
        FeatureSpec(windows_days=(0, 30))
    with pytest.raises(ValidationError, match="extra"):
        FeatureSpec(window=30)
