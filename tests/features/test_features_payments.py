"""Payment features on hand-made invoices: visibility at T, lateness, open amounts, rates."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.build import FeatureSpec, build_features
from features.tables import tables_from_frames

T = datetime(2024, 7, 1)
SPEC = FeatureSpec(windows_days=(30, 90))
NOT_PAID = pd.NaT


def ago(days: float) -> datetime:
    """A moment `days` days before T (negative: after T)."""
    return T - timedelta(days=days)


TRANSACTIONS = pd.DataFrame(
    {
        "customer_id": ["payer", "no_invoices"],
        "order_id": ["o1", "o2"],
        "ts": [ago(300), ago(300)],
        "amount": [100.0, 100.0],
    }
)
INVOICES = pd.DataFrame(
    [
        # id, issued, due, paid, amount, paid_amount
        ("i1", ago(100), ago(70), ago(75), 100.0, None),  # paid 5 days early: on time, 0 days late
        ("i2", ago(60), ago(30), ago(20), 200.0, None),  # paid 10 days late
        ("i3", ago(40), ago(10), T, 50.0, None),  # paid exactly at T: still open at T, 10 days overdue
        ("i4", ago(20), ago(-10), NOT_PAID, 80.0, None),  # open, not yet due
        ("i5", ago(-1), ago(-31), NOT_PAID, 1000.0, None),  # issued after T: does not exist at T
        ("i6", ago(200), ago(170), ago(150), 40.0, 30.0),  # paid 20 days late, 10 left open
    ],
    columns=["invoice_id", "issued_at", "due_at", "paid_at", "amount", "paid_amount"],
).assign(customer_id="payer")


@pytest.fixture(scope="module")
def features(con) -> pd.DataFrame:
    """Features as of T with invoices, indexed by customer."""
    _, tables = tables_from_frames({"transactions": TRANSACTIONS, "invoices": INVOICES}, con)
    return build_features(tables, T, SPEC).set_index("customer_id")


def test_on_time_rate_over_invoices_due_in_window(features):
    payer = features.loc["payer"]
    assert payer["invoice_on_time_rate_30d"] == 0  # i2 late, i3 unpaid past due
    assert payer["invoice_on_time_rate_90d"] == pytest.approx(1 / 3)  # i1 on time


def test_days_late_counts_unpaid_overdue_invoices_until_t(features):
    payer = features.loc["payer"]
    assert payer["days_late_mean_30d"] == pytest.approx(10)  # i2: 10 paid late, i3: 10 open
    assert payer["days_late_max_90d"] == pytest.approx(10)
    assert payer["days_late_mean_90d"] == pytest.approx(20 / 3)  # early payment counts as 0
    assert payer["days_late_change_90d_vs_prev_90d"] == pytest.approx(20 / 3 - 20)  # i6 before


def test_invoice_paid_at_t_is_open_at_t(features):
    payer = features.loc["payer"]
    assert payer["overdue_open_amount"] == pytest.approx(50 + 10)  # i3 and what i6 left
    assert payer["open_invoice_amount"] == pytest.approx(50 + 10 + 80)  # plus i4, not yet due
    assert payer["collection_rate_30d"] == pytest.approx(200 / 250)


def test_dso_uses_invoices_issued_in_the_last_year(features):
    invoiced = 100 + 200 + 50 + 80 + 40  # i5 is issued after T
    assert features.loc["payer", "dso_days"] == pytest.approx(140 / invoiced * 365)


def test_customer_without_invoices_owes_nothing_and_has_no_rates(features):
    none = features.loc["no_invoices"]
    assert none["overdue_open_amount"] == 0 and none["open_invoice_amount"] == 0
    assert math.isnan(none["invoice_on_time_rate_90d"]) and math.isnan(none["dso_days"])


def test_no_invoices_table_means_no_payment_features(con):
    _, tables = tables_from_frames({"transactions": TRANSACTIONS}, con)
    frame = build_features(tables, T, SPEC)
    assert not [c for c in frame.columns if "invoice" in c or "days_late" in c or c == "dso_days"]


def test_old_settled_invoices_change_no_feature(con):
    # Paid in full, issued and due before every window (dso 365 days, lateness trend 180):
    # "payer" keeps its features, and "no_invoices" reads exactly as a customer without invoices.
    old = pd.DataFrame(
        [("o1", ago(900), ago(870), ago(880), 70.0, None, "payer"),
         ("o2", ago(500), ago(470), ago(400), 90.0, 90.0, "no_invoices")],
        columns=[*INVOICES.columns],
    )
    frames = {"transactions": TRANSACTIONS, "invoices": INVOICES}
    _, tables = tables_from_frames(frames, con)
    before = build_features(tables, T, SPEC)
    _, tables = tables_from_frames({**frames, "invoices": pd.concat([INVOICES, old], ignore_index=True)}, con)
    pd.testing.assert_frame_equal(build_features(tables, T, SPEC), before)


def test_an_old_invoice_still_open_counts(con):
    open_old = pd.DataFrame([("o1", ago(900), ago(870), NOT_PAID, 70.0, None, "no_invoices")], columns=[*INVOICES.columns])
    _, tables = tables_from_frames({"transactions": TRANSACTIONS, "invoices": pd.concat([INVOICES, open_old], ignore_index=True)}, con)
    owed = build_features(tables, T, SPEC).set_index("customer_id").loc["no_invoices"]
    assert owed["overdue_open_amount"] == 70.0 and owed["open_invoice_amount"] == 70.0
    assert math.isnan(owed["invoice_on_time_rate_90d"]) and math.isnan(owed["dso_days"])


def test_long_terms_invoice_counts_in_the_lateness_trend(con):
    # Issued 400 days ago (before the dso year), due 120 days ago: in the 90 days before the last 90.
    frames = {"transactions": TRANSACTIONS, "invoices": INVOICES}
    _, tables = tables_from_frames(frames, con)
    before = build_features(tables, T, SPEC).set_index("customer_id").loc["payer"]
    long_terms = pd.DataFrame([("o1", ago(400), ago(120), ago(80), 10.0, None, "payer")], columns=[*INVOICES.columns])
    _, tables = tables_from_frames({**frames, "invoices": pd.concat([INVOICES, long_terms], ignore_index=True)}, con)
    after = build_features(tables, T, SPEC).set_index("customer_id").loc["payer"]
    # Due in [T-180, T-90): i6 (20 days late) and this one (40): the earlier mean goes 20 -> 30.
    assert after["days_late_change_90d_vs_prev_90d"] == pytest.approx(before["days_late_change_90d_vs_prev_90d"] - 10)
