"""Service features and cost to serve on hand-made interactions: a ticket after T does not exist."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.build import FeatureSpec, build_features
from features.tables import tables_from_frames

T = datetime(2024, 7, 1)
SPEC = FeatureSpec(windows_days=(30, 90))


def ago(days: float) -> datetime:
    """A moment `days` days before T (negative: after T)."""
    return T - timedelta(days=days)


TRANSACTIONS = pd.DataFrame(
    {
        "customer_id": ["caller", "caller", "quiet"],
        "order_id": ["o1", "o1", "o2"],
        "ts": [ago(50), ago(3), ago(50)],
        "amount": [100.0, -10.0, 100.0],
        "discount": [5.0, 0.0, 0.0],
    }
)
INTERACTIONS = pd.DataFrame(
    [
        ("caller", ago(5), "Ticket", 10.0),
        ("caller", ago(20), "complaint", 5.0),
        ("caller", ago(45), "complaint", 0.0),
        ("caller", ago(80), "visit", 50.0),
        ("caller", T, "ticket", 99.0),  # opened at T: does not exist at T
        ("caller", ago(-3), "complaint", 99.0),  # after T
    ],
    columns=["customer_id", "ts", "kind", "cost"],
)


@pytest.fixture(scope="module")
def features(con) -> pd.DataFrame:
    """Features as of T with interactions, indexed by customer."""
    _, tables = tables_from_frames({"transactions": TRANSACTIONS, "interactions": INTERACTIONS}, con)
    return build_features(tables, T, SPEC).set_index("customer_id")


def test_counts_per_window_ignore_interactions_at_or_after_t(features):
    caller = features.loc["caller"]
    assert (caller["ticket_count_30d"], caller["complaint_count_30d"], caller["interaction_count_30d"]) == (1, 1, 2)
    assert (caller["ticket_count_90d"], caller["complaint_count_90d"], caller["interaction_count_90d"]) == (1, 2, 4)


def test_complaint_change_against_previous_window(features):
    caller = features.loc["caller"]
    assert caller["complaint_change_30d_vs_prev_30d"] == 0  # 1 now, 1 in the 30 days before
    assert caller["complaint_change_90d_vs_prev_90d"] == 2


def test_service_cost_and_cost_to_serve(features):
    caller = features.loc["caller"]
    assert (caller["service_cost_30d"], caller["service_cost_90d"]) == (15, 65)
    assert caller["cost_to_serve_30d"] == pytest.approx(15 + 10)  # + returned 10
    assert caller["cost_to_serve_90d"] == pytest.approx(65 + 10 + 5)  # + returned + discount


def test_customer_without_interactions_has_zero_counts(features):
    quiet = features.loc["quiet"]
    assert quiet["ticket_count_90d"] == 0 and quiet["service_cost_90d"] == 0
    assert quiet["cost_to_serve_90d"] == 0


def test_no_cost_column_means_no_service_cost(con):
    _, tables = tables_from_frames(
        {"transactions": TRANSACTIONS, "interactions": INTERACTIONS.drop(columns="cost")}, con
    )
    frame = build_features(tables, T, SPEC).set_index("customer_id")
    assert not [c for c in frame.columns if c.startswith("service_cost")]
    assert frame.loc["caller", "cost_to_serve_90d"] == pytest.approx(10 + 5)
    assert frame.loc["caller", "ticket_count_30d"] == 1
