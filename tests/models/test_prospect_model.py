"""The prospect model: first-order classifier, converters' value, the days-since-signup baseline, model files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.baselines import signup_age_baseline
from models.model_files import read_model_file, write_model_file
from models.params import ChurnParams
from models.prospect import ProspectModel, ProspectValue

NAMES = ["attr_channel", "days_since_signup", "visit_count_90d"]


def prospects(n: int, seed: int) -> pd.DataFrame:
    """Prospects whose first order comes far more often from direct sales and after visits."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(["direct_sales", "online", "marketplace"], n)
    visits = rng.poisson(1.0, n)
    days = rng.uniform(1, 400, n)
    logit = -1.5 + 2.0 * (channel == "direct_sales") - 1.0 * (channel == "marketplace") + 0.8 * visits
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"customer_id": [f"p{i}" for i in range(n)], "attr_channel": channel,
                          "days_since_signup": days, "visit_count_90d": visits, "label_first_order": y})
    frame["attr_channel"] = frame["attr_channel"].astype("category")
    return frame


def converters(n_small: int, n_large: int) -> tuple[pd.DataFrame, np.ndarray]:
    size = pd.Series(["small"] * n_small + ["large"] * n_large, dtype="category")
    return pd.DataFrame({"attr_size_band": size}), np.where(size == "small", 100.0, 1000.0)


def test_signup_age_baseline_is_the_training_rate_in_the_same_age_band():
    train_days = pd.Series([1.0, 2.0, 3.0, 4.0, np.nan])
    converted = pd.Series([1, 1, 0, 0, 1])
    # Bands of two: inner edge at the median 2.5; no sign-up date is a band of its own.
    got = signup_age_baseline(train_days, converted, pd.Series([0.0, 3.5, np.nan, 10.0]), bins=2)
    assert got.tolist() == [1.0, 0.0, 1.0, 0.0]
    # A band the training rows never had (no date) gets their overall rate.
    assert signup_age_baseline(train_days[:4], converted[:4], pd.Series([np.nan]), bins=2).tolist() == [0.5]


def test_prospect_value_is_the_mean_of_converters_with_the_same_attributes():
    X, revenue = converters(100, 100)
    value = ProspectValue(min_converters_per_leaf=50).fit(X, revenue)
    got = value.predict(pd.DataFrame({"attr_size_band": pd.Categorical(["small", "large"], categories=["large", "small"])}))
    assert got[0] == pytest.approx(100.0, rel=0.05) and got[1] == pytest.approx(1000.0, rel=0.01)


def test_prospect_value_falls_back_to_the_plain_mean_with_few_converters():
    X, revenue = converters(30, 10)  # fewer than twice the 50 a leaf needs
    value = ProspectValue(min_converters_per_leaf=50).fit(X, revenue)
    assert value.booster_ is None
    assert value.predict(X.head(2)).tolist() == [pytest.approx((30 * 100 + 10 * 1000) / 40)] * 2


def test_first_orders_are_ranked_by_channel_and_visits_and_expected_value_is_the_product():
    train, valid = prospects(3000, 1), prospects(1500, 2)
    X_conv, revenue = converters(120, 80)
    model = ProspectModel(ChurnParams(num_threads=1)).fit(
        train[NAMES], train["label_first_order"], valid[NAMES], valid["label_first_order"], NAMES, X_conv, revenue)
    probe = pd.DataFrame({"attr_channel": pd.Categorical(["direct_sales", "marketplace"],
                                                         categories=["direct_sales", "marketplace", "online"]),
                          "days_since_signup": [100.0, 100.0], "visit_count_90d": [2, 0]})
    p = model.predict(probe)
    assert p["p_first_order"].iloc[0] > 0.7 > 0.2 > p["p_first_order"].iloc[1]
    assert np.allclose(p["expected_value"], p["p_first_order"] * p["prospect_value"])
    # No attr_size_band among the prospect's columns: every prospect is worth the converters' mean.
    assert np.allclose(p["prospect_value"], revenue.mean())


def test_a_prospect_model_survives_its_model_file(tmp_path):
    train, valid = prospects(800, 3), prospects(400, 4)
    X_conv, revenue = converters(120, 80)
    X_conv["attr_channel"] = pd.Categorical(["online"] * 200)
    model = ProspectModel(ChurnParams(num_threads=1)).fit(
        train[NAMES], train["label_first_order"], valid[NAMES], valid["label_first_order"], NAMES, X_conv, revenue)
    checksum = write_model_file(model, tmp_path / "model.skops")
    again = read_model_file(tmp_path / "model.skops", checksum, "prospect")
    pd.testing.assert_frame_equal(again.predict(valid[NAMES]), model.predict(valid[NAMES]))
