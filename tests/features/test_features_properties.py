"""Invariants of the features (Hypothesis): the future and the row order never change them."""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import FeatureSpec, build_features, build_features_expr, to_feature_frame
from features.tables import tables_from_frames

T = datetime(2024, 7, 1)
# Two windows keep each query quick; their edges (30, 60, 90, 180 days, a year ago) are all exercised,
# and those of last year's 90-day season (275 and 365 days before T).
SPEC = FeatureSpec(windows_days=(30, 90), season_horizons_days=(90,))
TABLE_NAMES = {"transactions": "prop_transactions", "invoices": "prop_invoices", "interactions": "prop_interactions"}
EDGES_S = [0, 1, 30 * 86400, 60 * 86400, 90 * 86400, 275 * 86400, 365 * 86400, 395 * 86400]
HYPOTHESIS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def moment(seconds_before_t: int) -> datetime:
    """T minus a number of seconds (negative: after T)."""
    return T - timedelta(seconds=seconds_before_t)


past = st.one_of(st.sampled_from(EDGES_S[1:]), st.integers(1, 800 * 86400)).map(moment)
future = st.one_of(st.just(0), st.integers(-200 * 86400, 0)).map(moment)
# Features are per customer, so each example holds several independent customers.
customers = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])


def transaction_rows(when: st.SearchStrategy[datetime]) -> st.SearchStrategy[dict]:
    """Transaction rows with the given kind of timestamp: returns, discounts, shared order ids."""
    return st.fixed_dictionaries(
        {
            "customer_id": customers,
            "order_id": st.sampled_from([f"o{k}" for k in range(12)]),
            "ts": when,
            "amount": st.integers(-50, 200).filter(lambda a: a != 0).map(float),
            "margin": st.integers(-20, 60).map(float),
            "category": st.sampled_from(["x", "y", "z"]),
            "product_id": st.sampled_from(["p1", "p2", "p3", "p4"]),
            "discount": st.sampled_from([0.0, 0.0, 5.0]),
        }
    )


def invoice_rows(issued: st.SearchStrategy[datetime]) -> st.SearchStrategy[dict]:
    """Invoices issued at the given kind of moment, due 30 days later, paid any time or never."""
    return st.builds(
        lambda c, i, paid, amount: {
            "customer_id": c, "invoice_id": "i", "issued_at": i, "due_at": i + timedelta(days=30),
            "paid_at": None if paid is None else i + timedelta(seconds=paid), "amount": amount, "paid_amount": None,
        },
        customers, issued, st.one_of(st.none(), st.integers(0, 120 * 86400)), st.integers(1, 300).map(float),
    )


def interaction_rows(when: st.SearchStrategy[datetime]) -> st.SearchStrategy[dict]:
    """Interactions at the given kind of moment."""
    return st.fixed_dictionaries(
        {"customer_id": customers, "ts": when, "kind": st.sampled_from(["ticket", "complaint", "visit"]),
         "cost": st.integers(0, 50).map(float)}
    )


COLUMNS = {
    "transactions": ["customer_id", "order_id", "ts", "amount", "margin", "category", "product_id", "discount"],
    "invoices": ["customer_id", "invoice_id", "issued_at", "due_at", "paid_at", "amount", "paid_amount"],
    "interactions": ["customer_id", "ts", "kind", "cost"],
}


def frames_of(transactions: list[dict], invoices: list[dict], interactions: list[dict]) -> dict[str, pd.DataFrame]:
    """pandas frames with fixed columns from generated rows."""
    frames = {"transactions": transactions, "invoices": invoices, "interactions": interactions}
    return {name: pd.DataFrame(rows, columns=COLUMNS[name]) for name, rows in frames.items()}


@pytest.fixture(scope="module")
def features_of(con):
    """Features as of T of given frames; the SQL of build_features_expr is compiled once per module."""
    seed = frames_of(
        [{"customer_id": "a", "order_id": "o", "ts": moment(86400), "amount": 1.0, "margin": 0.0, "category": "x",
          "product_id": "p", "discount": 0.0}],
        [{"customer_id": "a", "invoice_id": "i", "issued_at": moment(86400), "due_at": moment(0), "paid_at": None,
          "amount": 1.0, "paid_amount": None}],
        [{"customer_id": "a", "ts": moment(86400), "kind": "ticket", "cost": 1.0}],
    )
    _, tables = tables_from_frames(seed, con, table_names=TABLE_NAMES)
    sql = ibis.to_sql(build_features_expr(tables, T, SPEC))

    def run(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
        tables_from_frames(frames, con, table_names=TABLE_NAMES)
        return to_feature_frame(con.con.sql(sql).to_df()).reset_index(drop=True)

    # The cached SQL is exactly what build_features runs.
    pd.testing.assert_frame_equal(run(seed), build_features(tables, T, SPEC))
    return run


def renumber_invoices(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Give every invoice its own id."""
    frames["invoices"]["invoice_id"] = [f"i{k}" for k in range(len(frames["invoices"]))]
    return frames


@HYPOTHESIS
@given(
    tx=st.lists(transaction_rows(past), min_size=1, max_size=40),
    tx_later=st.lists(transaction_rows(future), min_size=1, max_size=15),
    inv=st.lists(invoice_rows(past), max_size=15),
    inv_later=st.lists(invoice_rows(future), max_size=6),
    talks=st.lists(interaction_rows(past), max_size=15),
    talks_later=st.lists(interaction_rows(future), max_size=6),
    repay=st.integers(0, 30 * 86400),
)
def test_rows_at_or_after_t_never_change_features_at_t(features_of, tx, tx_later, inv, inv_later, talks, talks_later, repay):
    before = features_of(renumber_invoices(frames_of(tx, inv, talks)))
    # Add rows dated at or after T, and move every payment made at or after T to another such date.
    later = renumber_invoices(frames_of(tx + tx_later, inv + inv_later, talks + talks_later))
    paid_late = later["invoices"]["paid_at"].notna() & (pd.to_datetime(later["invoices"]["paid_at"]) >= T)
    later["invoices"].loc[paid_late, "paid_at"] = T + timedelta(seconds=repay)
    after = features_of(later)
    pd.testing.assert_frame_equal(before, after, rtol=1e-9)


@HYPOTHESIS
@given(
    tx=st.lists(transaction_rows(st.one_of(past, future)), min_size=1, max_size=50),
    inv=st.lists(invoice_rows(past), max_size=15),
    talks=st.lists(interaction_rows(past), max_size=15),
    seed=st.integers(0, 2**16),
)
def test_row_order_never_changes_features(features_of, tx, inv, talks, seed):
    frames = renumber_invoices(frames_of(tx, inv, talks))
    shuffled = {name: frame.sample(frac=1.0, random_state=seed) for name, frame in frames.items()}
    pd.testing.assert_frame_equal(features_of(frames), features_of(shuffled), rtol=1e-9)
