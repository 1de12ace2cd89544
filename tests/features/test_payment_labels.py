"""Payment-risk labels: invoices issued in [T, T + H), paid more than N days late, outcome known by the data end."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.build import FeatureSpec, build_features
from features.payment_labels import (
    PaymentLabelError,
    build_payment_labels,
    build_payment_training_set,
    has_payment_outcomes,
    payment_snapshot_rows,
)
from features.tables import tables_from_frames

T = datetime(2024, 1, 1)
DATA_END = datetime(2024, 6, 1)  # T + 152 days


def at(days: float) -> datetime:
    return T + timedelta(days=days)


NAT = pd.NaT
# customer, invoice, issued, due, paid (NaT: unpaid at the data end)
INVOICES = pd.DataFrame(
    [
        ("punctual", "p1", at(10), at(40), at(45)),  # 5 days late: not late
        ("punctual", "p0", at(-40), at(-10), at(20)),  # issued before T: no part of the label
        ("late", "l1", at(5), at(35), at(35 + 31)),  # 31 days after due: late
        ("late", "l2", at(20), at(50), at(51)),  # on time, but one late invoice makes the customer late
        ("exactly", "e1", at(5), at(35), at(35 + 30)),  # exactly 30 days: not more than 30
        ("unpaid_old", "u1", at(10), at(40), NAT),  # unpaid, 112 days past due at the data end: late
        ("unpaid_new", "n1", at(89), at(125), NAT),  # unpaid, 27 days past due at the data end: unknown
        ("paid_after_end", "a1", at(89), at(125), at(160)),  # paid after the data end: unknown as of it
        ("outside", "o1", at(90), at(120), at(121)),  # issued at T + 90: outside the 90-day window
        ("old_only", "q1", at(-60), at(-30), NAT),  # only an old unpaid invoice: no label
    ],
    columns=["customer_id", "invoice_id", "issued_at", "due_at", "paid_at"],
)
INVOICES["amount"] = 100.0
TRANSACTIONS = pd.DataFrame(
    {"customer_id": INVOICES["customer_id"].unique(), "order_id": [f"o{i}" for i in range(INVOICES["customer_id"].nunique())],
     "ts": at(-70), "amount": 100.0},
)


def tables_of(con, invoices: pd.DataFrame) -> dict:
    return tables_from_frames({"transactions": TRANSACTIONS, "invoices": invoices}, con)[1]


@pytest.fixture(scope="module")
def labels(con) -> pd.DataFrame:
    return build_payment_labels(tables_of(con, INVOICES), T, horizon_days=90, late_days=30,
                                data_end=DATA_END).set_index("customer_id")


def test_only_customers_with_a_known_outcome_in_the_window_get_a_label(labels):
    assert sorted(labels.index) == ["exactly", "late", "punctual", "unpaid_old"]


def test_late_means_more_than_n_days_after_due_or_unpaid_that_long(labels):
    assert labels["label_pay_late"].to_dict() == {"exactly": 0, "late": 1, "punctual": 0, "unpaid_old": 1}
    assert labels.loc["late", "label_pay_late_invoices"] == 2


def test_horizon_and_lateness_are_settings(con):
    tables = tables_of(con, INVOICES)
    shorter = build_payment_labels(tables, T, horizon_days=10, late_days=30, data_end=DATA_END).set_index("customer_id")
    assert sorted(shorter.index) == ["exactly", "late"]  # only invoices issued before T + 10 days
    stricter = build_payment_labels(tables, T, horizon_days=90, late_days=4, data_end=DATA_END).set_index("customer_id")
    assert stricter.loc["punctual", "label_pay_late"] == 1  # 5 days late is more than 4


def test_a_window_past_the_data_end_is_refused(con):
    with pytest.raises(PaymentLabelError, match="after the data end"):
        build_payment_labels(tables_of(con, INVOICES), at(100), horizon_days=90, late_days=30, data_end=DATA_END)


def test_data_without_invoices_says_so(con):
    tables = tables_from_frames({"transactions": TRANSACTIONS}, con)[1]
    assert has_payment_outcomes(tables) == "the data has no invoices table"
    with pytest.raises(PaymentLabelError, match="no invoices table"):
        build_payment_labels(tables, T, data_end=DATA_END)


def test_a_payment_at_or_after_t_changes_neither_features_nor_labels_at_t(con):
    """Point in time: p0 (issued before T) paid at T + 20, at T exactly, or never: the same row at T."""
    spec = FeatureSpec()
    rows = []
    for paid in (at(20), at(0), NAT):
        invoices = INVOICES.copy()
        invoices.loc[invoices["invoice_id"] == "p0", "paid_at"] = paid
        tables = tables_of(con, invoices)
        features = build_features(tables, T, spec).set_index("customer_id").loc[["punctual"]]
        label = build_payment_labels(tables, T, horizon_days=90, late_days=30, data_end=DATA_END).set_index("customer_id")
        rows.append((features, label))
    for features, label in rows[1:]:
        pd.testing.assert_frame_equal(features, rows[0][0])
        pd.testing.assert_frame_equal(label, rows[0][1])
    # and the payment before T does change them: the feature sees it
    invoices = INVOICES.copy()
    invoices.loc[invoices["invoice_id"] == "p0", "paid_at"] = at(-5)
    before = build_features(tables_of(con, invoices), T, spec).set_index("customer_id").loc[["punctual"]]
    assert before["overdue_open_amount"].iloc[0] == 0.0 and rows[0][0]["overdue_open_amount"].iloc[0] == 100.0


def test_snapshot_rows_are_customers_with_history_and_an_invoice_before_t(con):
    rows = payment_snapshot_rows(tables_of(con, INVOICES), T, spec=FeatureSpec(), horizon_days=90, late_days=30,
                                 data_end=DATA_END)
    # "late", "exactly" and "unpaid_old" have labels but no invoice before T: nothing to judge them on at T
    assert rows["customer_id"].tolist() == ["punctual"]
    assert "days_late_max_180d" in rows.columns and rows["label_pay_late"].tolist() == [0]


def test_training_set_marks_the_latest_snapshot_for_validation(con):
    import numpy as np

    rng = np.random.default_rng(3)
    n = 400
    ids = [f"c{i:03d}" for i in range(n)]
    start = datetime(2022, 1, 1)
    tx = pd.DataFrame({"customer_id": np.repeat(ids, 12), "order_id": [f"o{i}" for i in range(n * 12)],
                       "ts": [start + timedelta(days=int(d)) for d in rng.integers(0, 900, n * 12)], "amount": 50.0})
    issued = tx["ts"]
    lateness = np.repeat(rng.choice([0, 45], n, p=[0.8, 0.2]), 12)
    invoices = pd.DataFrame({"customer_id": tx["customer_id"], "invoice_id": tx["order_id"], "issued_at": issued,
                             "due_at": issued + timedelta(days=30), "amount": 50.0,
                             "paid_at": issued + pd.to_timedelta(30 + lateness, unit="D")})
    tables = tables_from_frames({"transactions": tx, "invoices": invoices}, con)[1]
    frame = build_payment_training_set(tables, start + timedelta(days=900), spec=FeatureSpec(), n_snapshots=3)
    dates = sorted(frame["as_of"].unique())
    assert len(dates) == 3
    assert frame.loc[frame["is_validation"], "as_of"].unique().tolist() == [dates[-1]]
    # the latest snapshot leaves the window (90), the lateness (30) and the terms (60) before the data end
    assert dates[-1] <= pd.Timestamp(start + timedelta(days=900 - 180))
    late_customers = set(np.array(ids)[lateness[::12] == 45])
    assert frame.loc[frame["label_pay_late"] == 1, "customer_id"].isin(late_customers).all()
