"""BTYD outputs as model features: fitted per snapshot, point in time, never from later rows."""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import pytest

from benchmarks.cdnow.data import SHIPPED_SAMPLE, read_cdnow, to_transactions
from features.build import FeatureSpec, build_features
from features.tables import tables_from_frames
from models.btyd import btyd_output_columns
from models.btyd_columns import add_btyd_features

SNAPSHOTS = (datetime(1997, 6, 1), datetime(1997, 9, 1))
HORIZON = 91


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """The first 800 customers of the shipped CDNOW sample in the transactions contract (kept small: fast)."""
    transactions = to_transactions(read_cdnow(SHIPPED_SAMPLE))
    transactions["ts"] = pd.to_datetime(transactions["ts"])
    keep = np.sort(transactions["customer_id"].unique())[:800]
    return transactions[transactions["customer_id"].isin(keep)].reset_index(drop=True)


def stacked_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """Feature rows of the sample at both snapshots, stacked like a training set (with as_of)."""
    con = ibis.duckdb.connect()
    _, tables = tables_from_frames({"transactions": transactions}, con)
    frames = []
    for as_of in SNAPSHOTS:
        frame = build_features(tables, as_of, FeatureSpec(windows_days=(30, 90)))
        frame.insert(1, "as_of", pd.Timestamp(as_of))
        frames.append(frame)
    con.disconnect()
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def stacked(sample) -> pd.DataFrame:
    """Both snapshots of the unchanged sample."""
    return stacked_features(sample)


def test_every_customer_with_an_order_gets_probabilities_and_expectations(stacked):
    out = add_btyd_features(stacked, HORIZON)
    columns = btyd_output_columns(HORIZON)
    assert set(columns) <= set(out.columns)
    with_orders = out[out["has_orders"] == 1]
    assert with_orders[columns].notna().all().all()
    assert with_orders["btyd_p_alive"].between(0, 1).all()
    assert with_orders[f"btyd_p_no_order_{HORIZON}d"].between(0, 1).all()
    assert (with_orders[f"btyd_expected_orders_{HORIZON}d"] >= 0).all()


def test_a_snapshot_is_fitted_on_its_own_rows_only(sample, stacked):
    """Rows on or after a snapshot date (here: everything after the first one) change nothing in it."""
    first = SNAPSHOTS[0]
    before = add_btyd_features(stacked, HORIZON)
    changed = sample.copy()
    later = changed["ts"] >= first
    changed.loc[later, "amount"] = changed.loc[later, "amount"] * 3.0
    extra = changed[later].head(200).assign(order_id=lambda f: f["order_id"] + "-x")
    after = add_btyd_features(stacked_features(pd.concat([changed, extra], ignore_index=True)), HORIZON)
    columns = ["customer_id", *btyd_output_columns(HORIZON)]
    at_first = [frame.loc[frame["as_of"] == pd.Timestamp(first), columns].reset_index(drop=True)
                for frame in (before, after)]
    pd.testing.assert_frame_equal(at_first[0], at_first[1])
    # and the later snapshot does see the change: the test would catch a leak the other way round
    at_second = [frame.loc[frame["as_of"] == pd.Timestamp(SNAPSHOTS[1]), f"btyd_expected_revenue_{HORIZON}d"]
                 for frame in (before, after)]
    assert not np.allclose(at_second[0].to_numpy(), at_second[1].to_numpy(), equal_nan=True)


def test_a_scoring_matrix_without_as_of_is_one_group(stacked):
    scoring = stacked[stacked["as_of"] == pd.Timestamp(SNAPSHOTS[1])].drop(columns="as_of").reset_index(drop=True)
    as_one = add_btyd_features(scoring, HORIZON)
    in_stack = add_btyd_features(stacked, HORIZON)
    in_stack = in_stack[in_stack["as_of"] == pd.Timestamp(SNAPSHOTS[1])].reset_index(drop=True)
    columns = btyd_output_columns(HORIZON)
    np.testing.assert_allclose(as_one[columns].to_numpy(), in_stack[columns].to_numpy(), rtol=1e-9)


def test_a_second_horizon_adds_its_own_columns_and_keeps_one_p_alive(stacked):
    once = add_btyd_features(stacked, HORIZON)
    twice = add_btyd_features(once, 365)
    assert not twice.columns.duplicated().any()
    assert set(btyd_output_columns(365)) <= set(twice.columns)
    # The fit does not depend on the horizon: the shared column is the one the first horizon gave.
    pd.testing.assert_series_equal(twice["btyd_p_alive"], once["btyd_p_alive"])
