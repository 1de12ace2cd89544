"""Churn model on synthetic data with real signal: beats its baseline out of time, calibrated."""


import numpy as np
import pandas as pd
import pytest

from models.baselines import churn_baseline
from models.churn import ChurnModel, churn_log_odds_from_log_rate, sigmoid
from models.design import DesignChoice
from models.explain import check_additivity, contributions
from models.metrics import churn_metrics, expected_calibration_error
from models.model_files import read_model_file, write_model_file
from models.params import ChurnParams

ECE_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def churn_model(training_split):
    train, valid, features = training_split
    return ChurnModel(ChurnParams(num_threads=1)).fit(
        train, train["label_churn"], valid, valid["label_churn"], features
    )


def test_model_beats_recency_cadence_baseline_out_of_time(churn_model, training_split):
    _, valid, _ = training_split
    model = churn_metrics(valid["label_churn"], churn_model.validation_proba_)
    baseline = churn_metrics(valid["label_churn"], churn_baseline(valid))
    assert model["roc_auc"] >= baseline["roc_auc"] + 0.03
    assert model["brier"] < baseline["brier"]


def test_probabilities_are_calibrated_within_tolerance(churn_model, training_split):
    _, valid, _ = training_split
    report = churn_model.calibration_report_
    assert report["ece_after"] <= ECE_TOLERANCE  # cross-fitted: honest
    assert report["ece_after"] <= report["ece_before"]
    p = churn_model.predict_proba(valid)
    assert p.shape == (len(valid),) and ((p >= 0) & (p <= 1)).all()


def test_class_weighting_miscalibrates_and_calibration_repairs_it(training_split):
    train, valid, features = training_split
    model = ChurnModel(ChurnParams(num_threads=1, class_weighting=True))
    # keep a fifth of the churners: with rare churn, is_unbalance reweights strongly
    y, y_val = train["label_churn"].to_numpy(), valid["label_churn"].to_numpy()
    keep = (y == 0) | (np.arange(y.size) % 5 == 0)
    keep_val = (y_val == 0) | (np.arange(y_val.size) % 5 == 0)
    model.fit(train[keep], y[keep], valid[keep_val], y_val[keep_val], features)
    report = model.calibration_report_
    assert report["ece_before"] > 0.05
    assert model.calibration_applied_
    assert report["ece_after"] < report["ece_before"] / 2
    honest = model.validation_proba_
    assert expected_calibration_error(y_val[keep_val], honest) == pytest.approx(report["ece_after"])


def test_contributions_add_up_to_raw_log_odds(churn_model, training_split):
    _, valid, _ = training_split
    rows = valid.iloc[:1000]
    contrib = contributions(churn_model.booster_, rows)
    check_additivity(contrib, churn_model.predict_raw(rows), atol=1e-6)


def test_model_is_cut_at_best_iteration(churn_model):
    assert churn_model.booster_.num_trees() == churn_model.best_iteration_
    assert churn_model.best_iteration_ <= ChurnParams().n_estimators


def test_text_column_is_refused_with_advice(training_split):
    train, valid, features = training_split
    bad = train.assign(attr_region=train["attr_region"].astype(str))
    with pytest.raises(TypeError, match="category"):
        ChurnModel().fit(bad, bad["label_churn"], valid, valid["label_churn"], features)


def test_scoring_frame_with_other_category_order_scores_the_same(churn_model, training_split):
    _, valid, _ = training_split
    shuffled = valid.assign(
        attr_region=valid["attr_region"].cat.reorder_categories(["west", "east", "south", "north"])
    )
    np.testing.assert_array_equal(churn_model.predict_proba(shuffled), churn_model.predict_proba(valid))


def test_a_model_read_back_from_its_model_file_predicts_the_same(churn_model, training_split, tmp_path):
    _, valid, _ = training_split
    path = tmp_path / "churn.skops"
    restored = read_model_file(path, write_model_file(churn_model, path), "churn")
    np.testing.assert_array_equal(restored.predict_proba(valid), churn_model.predict_proba(valid))


def test_calibration_is_skipped_not_crashed_when_validation_has_one_churner(training_split):
    train, valid, features = training_split
    churner = valid[valid["label_churn"] == 1].iloc[:1]
    small = pd.concat([valid[valid["label_churn"] == 0].iloc[:200], churner])
    model = ChurnModel(ChurnParams(num_threads=1, n_estimators=20)).fit(
        train, train["label_churn"], small, small["label_churn"], features
    )
    assert not model.calibration_applied_
    assert model.calibration_report_["method"] == "none"


def test_probability_from_a_shared_raw_score_equals_predict_proba(churn_model, training_split):
    _, valid, _ = training_split
    rows = valid.iloc[:2000]
    np.testing.assert_array_equal(churn_model.proba_from_raw(churn_model.predict_raw(rows)),
                                  churn_model.predict_proba(rows))


@pytest.fixture(scope="module")
def count_model(training_split):
    train, valid, features = training_split
    return ChurnModel(ChurnParams(num_threads=1, objective="poisson")).fit(
        train, train["label_churn"], valid, valid["label_churn"], features,
        order_days=train["label_churn_order_days"], order_days_val=valid["label_churn_order_days"],
    )


def test_log_odds_of_no_event_match_the_poisson_probability():
    log_rate = np.array([-12.0, -2.0, 0.0, 1.5, 3.0])
    p_none = np.exp(-np.exp(log_rate))
    np.testing.assert_allclose(sigmoid(churn_log_odds_from_log_rate(log_rate)), p_none, rtol=1e-9)


def test_count_model_beats_the_baseline_and_stays_calibrated(count_model, training_split):
    _, valid, _ = training_split
    model = churn_metrics(valid["label_churn"], count_model.validation_proba_)
    baseline = churn_metrics(valid["label_churn"], churn_baseline(valid))
    assert model["roc_auc"] >= baseline["roc_auc"] + 0.03
    assert count_model.calibration_report_["ece_after"] <= ECE_TOLERANCE
    p = count_model.predict_proba(valid)
    assert ((p >= 0) & (p <= 1)).all()


def test_count_model_churn_falls_as_its_expected_order_days_rise(count_model, training_split):
    _, valid, _ = training_split
    raw = count_model.predict_raw(valid)
    order = np.argsort(raw)
    assert count_model.risk_sign == -1.0
    assert (np.diff(count_model.proba_from_raw(raw[order])) <= 1e-12).all()
    assert np.corrcoef(raw, count_model.predict_proba(valid))[0, 1] < -0.5


def test_count_model_contributions_add_up_to_log_expected_order_days(count_model, training_split):
    _, valid, _ = training_split
    rows = valid.iloc[:1000]
    contrib = contributions(count_model.booster_, rows)
    check_additivity(contrib, count_model.predict_raw(rows), atol=1e-6)
    expected_days = count_model.booster_.predict(rows[count_model.feature_names_])
    np.testing.assert_allclose(np.exp(contrib.sum(axis=1)), expected_days, rtol=1e-6)


def test_count_model_refuses_missing_or_inconsistent_order_days(training_split):
    train, valid, features = training_split
    params = ChurnParams(num_threads=1, objective="poisson", n_estimators=5)
    with pytest.raises(ValueError, match="label_churn_order_days"):
        ChurnModel(params).fit(train, train["label_churn"], valid, valid["label_churn"], features)
    days = train["label_churn_order_days"].to_numpy().copy()
    first_churner = int(np.flatnonzero(train["label_churn"].to_numpy() == 1)[0])
    days[first_churner] = 2
    with pytest.raises(ValueError, match=rf"first at row {first_churner}: 2.0 order days, churn label 1"):
        ChurnModel(params).fit(train, train["label_churn"], valid, valid["label_churn"], features,
                               order_days=days, order_days_val=valid["label_churn_order_days"])


def test_classifier_only_settings_are_refused_with_the_count_objective():
    with pytest.raises(ValueError, match="objective binary only"):
        ChurnParams(objective="poisson", class_weighting=True)
    with pytest.raises(ValueError, match="objective binary only"):
        ChurnParams(objective="poisson", early_stopping_metric="auc")


def _design() -> DesignChoice:
    return DesignChoice("churn", [{"name": "all_binary", "roc_auc": 0.8}], "all_binary", [], 0.0, "rule")


def test_fit_keeps_no_reference_and_no_blend_unless_asked(churn_model):
    assert churn_model.reason_reference_ is None
    assert (churn_model.design_, churn_model.blend_weight_) == (None, 0.0)


def test_fit_summarises_the_reason_population_it_is_given(training_split):
    train, valid, features = training_split
    population = valid.iloc[:300]
    model = ChurnModel(ChurnParams(num_threads=1, n_estimators=30)).fit(
        train, train["label_churn"], valid, valid["label_churn"], features, reason_population=population)
    assert model.reason_reference_.feature_names == tuple(features)
    assert model.reason_reference_.rows == 300


def test_fit_gives_bgnbd_a_share_only_when_its_probabilities_rank_churners_better(training_split):
    train, valid, features = training_split
    churned = valid["label_churn"].to_numpy(dtype=float)
    knows = np.where(churned == 1, 0.9, 0.1)  # a reference that separates churners perfectly
    params = ChurnParams(num_threads=1, n_estimators=30)
    fitted = {name: ChurnModel(params).fit(train, train["label_churn"], valid, valid["label_churn"], features,
                                           design=_design(), blend_reference=reference)
              for name, reference in (("knows", knows), ("backwards", 1.0 - knows))}
    assert fitted["knows"].blend_weight_ > 0.0
    assert fitted["backwards"].blend_weight_ == 0.0
    design = fitted["knows"].design_
    assert [row["weight"] for row in design["blend_weights"]] == [0.0, 0.25, 0.5]
    assert design["blend_weight"] == fitted["knows"].blend_weight_ and design["chosen"] == "all_binary"
