"""BTYD features: the feature-matrix path fits the same BG/NBD + Gamma-Gamma as the CDNOW reference."""

from __future__ import annotations

import logging
from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import pytest

from benchmarks.cdnow.btyd import rfm_summary
from benchmarks.cdnow.data import SHIPPED_SAMPLE, read_cdnow, to_transactions
from benchmarks.cdnow.scorers import BgNbdGammaGammaScorer, ScoringTask
from features.build import FeatureSpec, build_features
from features.tables import tables_from_frames
from models.btyd import BetaGeoModel, BtydFeatures, GammaGammaModel, btyd_output_columns, rfm_from_features

CALIBRATION_END = datetime(1997, 10, 1)  # FHL 2005's 39-week calibration period of the sample


@pytest.fixture(scope="module")
def cdnow_sample() -> pd.DataFrame:
    """The shipped 2,357-customer CDNOW sample in the transactions contract."""
    transactions = to_transactions(read_cdnow(SHIPPED_SAMPLE))
    transactions["ts"] = pd.to_datetime(transactions["ts"])
    return transactions


@pytest.fixture(scope="module")
def sample_features(cdnow_sample) -> pd.DataFrame:
    """custscore's feature matrix of the sample as of the end of the calibration period."""
    con = ibis.duckdb.connect()
    _, tables = tables_from_frames({"transactions": cdnow_sample}, con)
    features = build_features(tables, CALIBRATION_END, FeatureSpec(windows_days=(90,)))
    con.disconnect()
    return features.set_index("customer_id")


@pytest.fixture(scope="module")
def fitted(sample_features) -> BtydFeatures:
    """BtydFeatures fitted on the sample's feature matrix."""
    return BtydFeatures(horizon_days=182).fit(sample_features)


def test_feature_matrix_path_fits_the_same_parameters_as_the_rfm_reference(cdnow_sample, fitted):
    # custscore's order needs a positive amount; the sample has 8 zero-dollar rows that
    # rfm_summary would count as purchase days, so the reference gets the same rows.
    summary = rfm_summary(cdnow_sample[cdnow_sample["amount"] > 0], pd.Timestamp(CALIBRATION_END))
    reference = BetaGeoModel().fit(summary["frequency"], summary["recency"], summary["T"]).params_
    reference |= GammaGammaModel().fit(summary["frequency"], summary["monetary_value"]).params_
    assert fitted.params_.keys() == reference.keys()
    for name, value in reference.items():
        assert fitted.params_[name] == pytest.approx(value, abs=1e-3), name


def test_inputs_follow_the_reference_day_convention(sample_features, cdnow_sample):
    summary = rfm_summary(cdnow_sample[cdnow_sample["amount"] > 0], pd.Timestamp(CALIBRATION_END))
    rfm = rfm_from_features(sample_features).loc[summary.index]
    for column in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(rfm[column], summary[column], atol=1e-9, err_msg=column)


def test_transform_gives_probabilities_and_consistent_expectations(fitted, sample_features):
    out = fitted.transform(sample_features)
    assert list(out.columns) == btyd_output_columns(182) == fitted.output_columns
    assert out.index.equals(sample_features.index)
    has_order = sample_features["order_days_lifetime"] >= 1
    assert out[has_order].notna().all().all()
    assert out[~has_order].isna().all().all()  # zero-dollar-only customers have no order
    scored = out[has_order]
    assert scored["btyd_p_alive"].between(0, 1).all()
    assert scored["btyd_p_no_order_182d"].between(0, 1).all()
    # P(no order) >= 1 - P(alive): a dead customer never orders again
    assert (scored["btyd_p_no_order_182d"] >= 1 - scored["btyd_p_alive"] - 1e-12).all()
    assert (scored["btyd_expected_orders_182d"] >= 0).all() and (scored["btyd_expected_revenue_182d"] >= 0).all()


def test_scores_equal_the_benchmark_reference_scorer(fitted, sample_features, cdnow_sample, tmp_path):
    task = ScoringTask(cdnow_sample[cdnow_sample["amount"] > 0], tmp_path, pd.Timestamp(CALIBRATION_END), 182, 182)
    reference = BgNbdGammaGammaScorer().score(task).set_index("customer_id")
    out = fitted.transform(sample_features).loc[reference.index]
    np.testing.assert_allclose(out["btyd_p_no_order_182d"], reference["p_churn"], rtol=1e-3)
    np.testing.assert_allclose(out["btyd_expected_revenue_182d"], reference["expected_revenue"], rtol=1e-3)


def test_fit_sample_is_capped_and_seeded(sample_features):
    first = BtydFeatures(horizon_days=90, max_fit_rows=800, seed=3).fit(sample_features)
    again = BtydFeatures(horizon_days=90, max_fit_rows=800, seed=3).fit(sample_features)
    assert first.fit_rows_ == 800
    assert first.params_ == again.params_


@pytest.mark.parametrize("customer_id_as", ["index", "column"])
def test_fit_does_not_depend_on_the_order_of_the_rows(sample_features, customer_id_as):
    """DuckDB returns grouped rows in no fixed order; a rerun must fit the same parameters (capped sample and all)."""
    features = sample_features if customer_id_as == "index" else sample_features.reset_index()
    shuffled = features.sample(frac=1.0, random_state=11)
    for cap in (800, 200_000):
        first = BtydFeatures(horizon_days=90, max_fit_rows=cap).fit(features)
        again = BtydFeatures(horizon_days=90, max_fit_rows=cap).fit(shuffled)
        assert first.params_ and first.params_ == again.params_


def test_missing_inputs_give_nan_columns_and_a_warning(sample_features, caplog):
    without = sample_features.drop(columns=["order_days_lifetime"])
    with caplog.at_level(logging.WARNING, logger="models.btyd"):
        out = BtydFeatures(horizon_days=30).fit_transform(without)
    assert list(out.columns) == btyd_output_columns(30)
    assert out.isna().all().all()
    assert "order_days_lifetime" in caplog.text


def test_too_few_repeat_buyers_leaves_only_revenue_nan(sample_features, caplog):
    # 40 customers, few with repeat spend: Gamma-Gamma cannot fit, BG/NBD still can
    one_timers = sample_features[sample_features["order_days_lifetime"] == 1].head(35)
    repeaters = sample_features[sample_features["order_days_lifetime"] > 1].head(5)
    small = pd.concat([one_timers, repeaters])
    with caplog.at_level(logging.WARNING, logger="models.btyd"):
        out = BtydFeatures(horizon_days=30).fit_transform(small)
    assert out["btyd_expected_revenue_30d"].isna().all()
    assert out["btyd_p_alive"].notna().all()
    assert "Gamma-Gamma" in caplog.text


def test_nullable_integer_inputs_are_read_as_missing_not_an_error():
    X = pd.DataFrame({
        "days_since_first_order": [30.0, None], "days_since_last_order": [2.0, None],
        "order_days_lifetime": pd.array([3, None], dtype="Int64"),
        "repeat_revenue_mean_per_order_day_lifetime": [12.5, None],
    })
    rfm = rfm_from_features(X)
    assert rfm["valid"].tolist() == [True, False]
    # first order on day 30 before as_of: 29 days to the last observed day, last order 28 days after it
    assert rfm.loc[0, ["frequency", "recency", "T"]].tolist() == pytest.approx([2.0, 28 / 7, 29 / 7])


def test_transform_before_fit_says_what_to_do(sample_features):
    with pytest.raises(RuntimeError, match="call fit"):
        BtydFeatures(horizon_days=30).transform(sample_features)



def test_with_horizon_shares_the_fit_and_equals_a_fit_for_that_horizon(sample_features):
    short = BtydFeatures(horizon_days=30).fit(sample_features)
    long_fit = BtydFeatures(horizon_days=120).fit(sample_features)
    pd.testing.assert_frame_equal(short.with_horizon(120).transform(sample_features), long_fit.transform(sample_features))
    assert short.horizon_days == 30 and list(short.transform(sample_features).columns) == btyd_output_columns(30)
