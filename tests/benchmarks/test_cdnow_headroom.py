"""The in-period reference of benchmarks/cdnow/headroom.py: its inputs see nothing at or after the as-of date."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.cdnow import backtest as bt
from benchmarks.cdnow import headroom
from benchmarks.cdnow.data import convert_cdnow, load_transactions
from benchmarks.cdnow.headroom import order_days_in_window, period_headroom, raw_facts
from features.build import FeatureSpec, build_features

SAMPLE = Path(__file__).resolve().parents[2] / "benchmarks" / "cdnow" / "data" / "CDNOW_sample.txt"
AS_OF = pd.Timestamp("1997-03-01")


def _rows(*rows: tuple[str, str, float, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "amount", "quantity"])
    frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601")
    return frame


def test_raw_facts_of_hand_made_orders():
    rows = _rows(("a", "1997-01-01 10:00", 10.0, 1), ("a", "1997-01-01 15:00", 20.0, 2),
                 ("a", "1997-01-11", 5.0, 1), ("a", "1997-02-20", 40.0, 4), ("b", "1997-02-01", 12.0, 1))
    facts = raw_facts(rows, AS_OF)
    a, b = facts.loc["a"], facts.loc["b"]
    # Two rows on 1997-01-01 make one record day of $30 and 3 CDs.
    assert a["amount_first_record_day"] == 30.0 and a["amount_last_record_day"] == 40.0
    assert a["cds_total"] == 8 and a["cds_last_record_day"] == 4 and a["cds_per_record_day"] == pytest.approx(8 / 3)
    assert a["gap_first_days"] == 10 and a["gap_last_days"] == 40
    assert a["record_days_first_30d_of_life"] == 2 and a["record_days_first_60d_of_life"] == 3
    assert a["weekday_first_record_day"] == 2  # 1997-01-01 was a Wednesday
    assert a["amount_last_over_mean"] == pytest.approx(40.0 / 25.0)
    assert np.isnan(b["gap_first_days"]) and b["record_days_first_90d_of_life"] == 1


def test_raw_facts_ignore_rows_at_and_after_the_as_of_date():
    before = _rows(("a", "1997-01-01", 10.0, 1), ("a", "1997-02-27", 20.0, 2), ("b", "1997-02-01", 12.0, 1))
    later = _rows(("a", "1997-03-01 00:00", 999.0, 9), ("b", "1997-03-05", 500.0, 5), ("c", "1997-04-01", 1.0, 1))
    pd.testing.assert_frame_equal(raw_facts(before, AS_OF), raw_facts(pd.concat([before, later]), AS_OF))


def test_order_days_in_window_counts_days_with_an_order_inside_the_window_only():
    rows = _rows(("a", "1997-02-28", 10.0, 1),                                   # before the window
                 ("a", "1997-03-01", 10.0, 1), ("a", "1997-03-01 18:00", 5.0, 1),  # one day, two orders
                 ("a", "1997-03-05", -10.0, -1),                                  # a return is no order
                 ("a", "1997-03-10", 8.0, 1), ("a", "1997-03-31", 9.0, 1),        # the window's end is excluded
                 ("b", "1997-03-02", 3.0, 1))
    period = bt.Fold(AS_OF, 30)
    counts = order_days_in_window(rows, period, np.array(["a", "b", "c"]))
    np.testing.assert_array_equal(counts, [2.0, 1.0, 0.0])


@pytest.mark.slow
def test_reference_on_the_sample_ranks_better_than_chance(tmp_path, monkeypatch):
    # One seed and smaller single-threaded forests: 2,357 customers need no more, and the suite's time is shared.
    monkeypatch.setattr(headroom, "SEEDS", (0,))
    monkeypatch.setattr(headroom, "REFERENCE_TREES", {**headroom.REFERENCE_TREES, "n_estimators": 100,
                                                      "learning_rate": 0.1, "num_threads": 1})
    convert_cdnow(SAMPLE, tmp_path / "data")
    transactions = load_transactions(tmp_path / "data" / "transactions.csv")
    period = bt.Fold(pd.Timestamp("1997-10-01"), 91)
    result = period_headroom(transactions, period, bt.DESIGNS["count25_ens5"], tmp_path)
    assert set(result) == {"features", "features+btyd", "features+btyd+raw"}
    for metrics in result.values():
        assert 0.65 < metrics["roc_auc"] < 0.95
        assert 0.4 < metrics["normalized_gini"] < 0.95


def test_grid_reports_the_range_over_every_setting_and_model(monkeypatch):
    monkeypatch.setattr(headroom, "GRID", [{"num_leaves": 3, "n_estimators": 20}, {"num_leaves": 7, "n_estimators": 20}])
    monkeypatch.setattr(headroom, "GRID_SEEDS", (0,))
    monkeypatch.setattr(headroom, "REFERENCE_TREES", {**headroom.REFERENCE_TREES, "num_threads": 1})
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    rate = np.exp(X[:, 0])  # the first column drives both orders and spend
    order_days = rng.poisson(rate).astype(float)
    outcomes = headroom.Outcomes(churned=(order_days == 0).astype(int), order_days=order_days,
                                 revenue=order_days * 20.0 * np.exp(0.3 * rng.normal(size=600)))
    result = headroom.grid_metrics(X, outcomes)
    assert result["models"] == 6  # two settings x (Poisson churn, classifier churn, Tweedie value)
    for metric in ("roc_auc", "normalized_gini"):
        assert 0.6 < result[metric]["min"] <= result[metric]["max"] < 1.0
    # The reported best is the maximum: refitting its setting gives the reported figure.
    objective, settings = result["roc_auc"]["best"]
    refit = headroom.churn_roc(X, outcomes, objective, {**headroom.REFERENCE_TREES, **settings}, (0,))
    assert refit == pytest.approx(result["roc_auc"]["max"])
    assert result["roc_auc"]["max"] > result["roc_auc"]["min"]


@pytest.mark.slow
def test_input_sets_ignore_later_rows_and_follow_the_feature_rows(tmp_path):
    convert_cdnow(SAMPLE, tmp_path / "data")
    transactions = load_transactions(tmp_path / "data" / "transactions.csv")
    period = bt.Fold(pd.Timestamp("1997-10-01"), 91)
    design = bt.DESIGNS["count25_ens5"]
    data = bt.validated_before(transactions, period.as_of, tmp_path / "v")
    features = build_features(data.tables, period.as_of.to_pydatetime(),
                              FeatureSpec(windows_days=design.windows_days, tenure_ratios=design.ratio_features))
    before = transactions[transactions["ts"] < period.as_of]
    full, cut = headroom.input_sets(transactions, features, period), headroom.input_sets(before, features, period)
    for name in full:
        np.testing.assert_array_equal(full[name], cut[name])
    # Shuffled feature rows give the same matrices, shuffled the same way (facts joined by customer id).
    order = np.random.default_rng(0).permutation(len(features))
    shuffled = headroom.input_sets(transactions, features.iloc[order].reset_index(drop=True), period)
    np.testing.assert_allclose(shuffled["features+btyd+raw"], full["features+btyd+raw"][order], rtol=1e-9)
