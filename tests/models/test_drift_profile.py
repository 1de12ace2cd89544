"""A fitted model keeps its drift reference as plain data, read back from its model file unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.churn import ChurnModel
from models.drift_profile import categorical_profile, drift_profile
from models.model_files import read_model_file, write_model_file
from models.params import ChurnParams, ValueParams
from models.value import ValueModel


def test_categories_are_shared_by_frequency_with_missing_beside_them():
    column = pd.Series(pd.Categorical(["b", "a", "b", None, "b", "a", "c", "b"], categories=["a", "b", "c", "unused"]))
    profile = categorical_profile(column)
    assert profile["categories"] == ["b", "a", "c"]  # an unused category is no category of the population
    assert profile["shares"] == pytest.approx([4 / 8, 2 / 8, 1 / 8])
    assert profile["missing"] == pytest.approx(1 / 8)


def test_a_profile_holds_every_feature_and_each_score_over_the_same_rows():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan], "flag": [0, 1, 1, 1]})
    profile = drift_profile(frame, ["x", "flag"], {"p_churn": np.array([0.1, 0.2, 0.3, 0.4])})
    assert profile["rows"] == 4 and list(profile["features"]) == ["x", "flag"] and list(profile["scores"]) == ["p_churn"]
    for column in [*profile["features"].values(), *profile["scores"].values()]:
        assert sum(column["shares"]) + column["missing"] == pytest.approx(1.0)


def test_a_churn_model_profiles_its_reason_population_and_its_probabilities(training_split):
    train, valid, features = training_split
    population = valid.iloc[:400]
    model = ChurnModel(ChurnParams(num_threads=1, n_estimators=30)).fit(
        train, train["label_churn"], valid, valid["label_churn"], features, reason_population=population)
    profile = model.drift_profile_
    assert profile["rows"] == 400 and list(profile["features"]) == features
    churn = profile["scores"]["p_churn"]
    # The edges are the deciles of the probabilities scoring gives these customers: 40 of the 400 in each bin.
    p = model.predict_proba(population[features])
    counts = np.bincount(np.searchsorted(churn["edges"], p, side="left"), minlength=len(churn["edges"]) + 1)
    assert len(churn["edges"]) == 9 and counts.tolist() == [40] * 10
    assert churn["shares"] == pytest.approx([0.1] * 10)


def test_a_model_fitted_without_a_reason_population_has_no_drift_reference(training_split):
    train, valid, features = training_split
    model = ChurnModel(ChurnParams(num_threads=1, n_estimators=20)).fit(
        train, train["label_churn"], valid, valid["label_churn"], features)
    assert model.drift_profile_ is None


def test_the_value_models_drift_reference_reads_back_from_its_model_file(training_split, tmp_path):
    train, valid, features = training_split
    model = ValueModel(ValueParams(num_threads=1, n_estimators=30)).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], features,
        margin=train["label_margin"], margin_val=valid["label_margin"], reason_population=valid.iloc[:300])
    path = tmp_path / "value.skops"

    restored = read_model_file(path, write_model_file(model, path), "custscore-value v1")

    assert restored.drift_profile_ == model.drift_profile_
    assert list(restored.drift_profile_["scores"]) == ["expected_revenue"]
