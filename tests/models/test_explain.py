"""TreeSHAP contributions add up; additivity check and top reasons."""

import lightgbm as lgb
import numpy as np
import pytest

from models.explain import AdditivityError, check_additivity, contributions, top_reasons


@pytest.fixture(scope="module")
def booster(training_split):
    train, _, features = training_split
    params = {"objective": "binary", "num_leaves": 7, "num_threads": 1, "verbosity": -1}
    return lgb.train(params, lgb.Dataset(train[features], train["label_churn"]), num_boost_round=20)


def test_contributions_add_up_to_raw_prediction_with_categorical_feature(booster, training_split):
    _, valid, features = training_split
    contrib = contributions(booster, valid)
    assert contrib.shape == (len(valid), len(features) + 1)
    check_additivity(contrib, booster.predict(valid[features], raw_score=True), atol=1e-6)
    region = features.index("attr_region")
    assert np.abs(contrib[:, region]).max() > 0  # the category column gets credit


def test_additivity_error_names_the_row(booster, training_split):
    _, valid, features = training_split
    contrib = contributions(booster, valid.iloc[:50])
    raw = booster.predict(valid[features].iloc[:50], raw_score=True)
    raw[7] += 0.5
    with pytest.raises(AdditivityError, match="row 7"):
        check_additivity(contrib, raw, atol=1e-6)


def test_top_reasons_orders_raising_and_lowering_features():
    contrib = np.array([
        [0.5, -0.2, 0.1, 0.0, -0.9, 3.0],  # last column: bias, ignored
        [-0.1, -0.3, 0.0, 0.0, 0.0, 3.0],
    ])
    reasons = top_reasons(contrib, ["a", "b", "c", "d", "e"], k=3)
    np.testing.assert_array_equal(reasons.raising, [[0, 2, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(reasons.lowering, [[4, 1, -1], [1, 0, -1]])


def test_top_reasons_rejects_mismatched_feature_names():
    with pytest.raises(ValueError, match="2 feature names"):
        top_reasons(np.zeros((1, 5)), ["a", "b"])
