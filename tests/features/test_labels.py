"""Churn and value labels: windows [T, T + horizon), observed only when the data covers them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.labels import LabelWindowNotObservedError, build_labels
from features.tables import tables_from_frames

T = datetime(2024, 1, 1)
DATA_END = datetime(2025, 6, 1)


def at(days: float) -> datetime:
    """A moment `days` days after T (negative: before)."""
    return T + timedelta(days=days)


TRANSACTIONS = pd.DataFrame(
    [
        # customer, order, ts, amount, margin, discount
        ("stays", "s1", at(-30), 100.0, 30.0, 0.0),
        ("stays", "s2", at(89), 50.0, 10.0, 5.0),  # an order inside the 90-day churn window
        ("stays", "s2", at(100), -20.0, -4.0, 0.0),  # a return inside the value window
        ("leaves", "l1", at(-10), 80.0, 20.0, 0.0),
        ("leaves", "l2", at(90), 60.0, 15.0, 0.0),  # exactly T + 90 days: outside the churn window
        ("leaves", "l1", at(5), -10.0, -3.0, 0.0),  # a return is not an order
        ("spans", "x1", at(-1), 40.0, 10.0, 0.0),
        ("spans", "x1", at(2), 30.0, 8.0, 0.0),  # a line of an order begun before T is not a new order
        ("new", "n1", at(3), 70.0, 20.0, 0.0),  # no order before T: no label at T
        ("returns_only", "r1", at(-3), -5.0, -1.0, 0.0),  # a return before T is not an order, but it is history
        ("zero_only", "q1", at(-7), 0.0, 0.0, 0.0),  # a $0 line before T: history, no order
        ("zero_only", "q2", at(20), 12.0, 3.0, 0.0),  # then a first real order inside both windows
        ("busy", "b1", at(-40), 10.0, 2.0, 0.0),
        ("busy", "b2", at(1.25), 10.0, 2.0, 0.0),  # two orders begun on the same day: one order day
        ("busy", "b3", at(1.75), 10.0, 2.0, 0.0),
        ("busy", "b4", at(30), 10.0, 2.0, 0.0),
        ("busy", "b5", at(40), -10.0, -2.0, 0.0),  # a return is no order day
        ("busy", "b6", at(90), 10.0, 2.0, 0.0),  # outside the churn window
        ("late", "z0", at(-20), 10.0, 2.0, 0.0),
        # begun inside the churn window, but its first positive line comes after the churn window ends:
        # a new order of the value window only (a window sees only the rows before its end)
        ("late", "z1", at(80), 0.0, 0.0, 0.0),
        ("late", "z1", at(95), 20.0, 5.0, 0.0),
        ("slow", "w0", at(-20), 10.0, 2.0, 0.0),
        # begun at T + 50, its first positive line at T + 70: an order of a 90-day window, not of a 60-day one
        ("slow", "w1", at(50), 0.0, 0.0, 0.0),
        ("slow", "w1", at(70), 15.0, 3.0, 0.0),
    ],
    columns=["customer_id", "order_id", "ts", "amount", "margin", "discount"],
)
INTERACTIONS = pd.DataFrame(
    {"customer_id": ["stays", "stays"], "ts": [at(10), at(-5)], "kind": ["ticket", "ticket"], "cost": [25.0, 99.0]}
)


@pytest.fixture(scope="module")
def tables(con):
    """Transactions and interactions on the module's DuckDB."""
    return tables_from_frames({"transactions": TRANSACTIONS, "interactions": INTERACTIONS}, con)[1]


@pytest.fixture(scope="module")
def labels(tables) -> pd.DataFrame:
    """Both labels observed, indexed by customer."""
    return build_labels(tables, T, churn_horizon_days=90, value_horizon_days=365, data_end=DATA_END).set_index("customer_id")


def test_labels_for_every_customer_with_a_line_before_t(labels):
    # the scored population: $0 lines and returns count as history, a first line after T does not
    assert sorted(labels.index) == ["busy", "late", "leaves", "returns_only", "slow", "spans", "stays", "zero_only"]


def test_customers_without_an_order_before_t_have_labels_like_anyone(labels):
    assert labels.loc["returns_only"].to_dict() == {
        "label_churn": 1, "label_churn_order_days": 0, "label_revenue": 0.0, "label_margin": 0.0,
        "label_cost_to_serve": 0.0, "label_value_order_days": 0}
    assert labels.loc["zero_only"].to_dict() == {
        "label_churn": 0, "label_churn_order_days": 1, "label_revenue": 12.0, "label_margin": 3.0,
        "label_cost_to_serve": 0.0, "label_value_order_days": 1}


def test_churn_means_no_new_order_in_the_horizon(labels):
    assert labels.loc["stays", "label_churn"] == 0
    assert labels.loc["leaves", "label_churn"] == 1  # its next order is at T + 90 days exactly
    assert labels.loc["spans", "label_churn"] == 1


def test_order_days_count_the_days_with_a_new_order_in_the_churn_window(labels):
    assert labels["label_churn_order_days"].to_dict() == {"busy": 2, "late": 0, "leaves": 0, "returns_only": 0, "slow": 1, "spans": 0,
                                                          "stays": 1, "zero_only": 1}
    assert ((labels["label_churn_order_days"] == 0) == (labels["label_churn"] == 1)).all()


def test_value_order_days_count_new_order_days_in_the_value_window(labels):
    # busy: b2 and b3 share a day, b4, b6 at T + 90 (inside 365 days); b5 is a return only
    assert labels["label_value_order_days"].to_dict() == {"busy": 3, "late": 1, "leaves": 1, "returns_only": 0, "slow": 1, "spans": 0,
                                                          "stays": 1, "zero_only": 1}


def test_a_shorter_window_does_not_see_the_longer_windows_rows(tables):
    # value horizon 60 inside the churn horizon 90: slow's order w1 begins in both windows, but its
    # only positive line (T + 70) is after the 60-day window ends, so it is an order of the churn window only
    frame = build_labels(tables, T, churn_horizon_days=90, value_horizon_days=60, data_end=DATA_END).set_index("customer_id")
    assert frame.loc["slow", "label_value_order_days"] == 0 and frame.loc["slow", "label_churn_order_days"] == 1
    assert frame["label_value_order_days"].to_dict() == {"busy": 2, "late": 0, "leaves": 0, "returns_only": 0, "slow": 0, "spans": 0,
                                                         "stays": 0, "zero_only": 1}
    # and the other way round: a 60-day churn window inside a 90-day value window
    swapped = build_labels(tables, T, churn_horizon_days=60, value_horizon_days=90, data_end=DATA_END).set_index("customer_id")
    assert swapped.loc["slow", "label_churn"] == 1 and swapped.loc["slow", "label_value_order_days"] == 1


def test_value_labels_sum_the_value_window(labels):
    stays = labels.loc["stays"]
    assert stays["label_revenue"] == 30 and stays["label_margin"] == 6
    assert stays["label_cost_to_serve"] == pytest.approx(20 + 5 + 25)  # returns + discount + service
    leaves = labels.loc["leaves"]
    assert leaves["label_revenue"] == 50 and leaves["label_cost_to_serve"] == 10


def test_unobserved_value_window_leaves_the_value_labels_out(tables):
    frame = build_labels(tables, T, churn_horizon_days=90, value_horizon_days=365, data_end=at(200))
    assert list(frame.columns) == ["customer_id", "label_churn", "label_churn_order_days"]


def test_unobserved_churn_window_leaves_the_churn_labels_out(tables):
    frame = build_labels(tables, T, churn_horizon_days=400, value_horizon_days=365, data_end=at(380))
    assert list(frame.columns) == ["customer_id", "label_revenue", "label_margin", "label_cost_to_serve",
                                   "label_value_order_days"]


def test_window_ending_exactly_at_data_end_is_observed(tables):
    frame = build_labels(tables, T, churn_horizon_days=90, value_horizon_days=365, data_end=at(90))
    assert "label_churn" in frame.columns and "label_revenue" not in frame.columns


def test_no_observed_window_is_a_clear_error(tables):
    with pytest.raises(LabelWindowNotObservedError, match=r"data ends 2024-02-15.*on or before 2023-11-17"):
        build_labels(tables, T, churn_horizon_days=90, value_horizon_days=365, data_end=at(45))
