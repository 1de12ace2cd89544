"""Value model on zero-inflated synthetic spend: beats trailing revenue, honest coverage."""

import numpy as np
import pytest

from benchmarks.synthetic import feature_columns, make_training_set
from models.baselines import value_baseline
from models.design import DesignChoice
from models.explain import check_additivity, contributions
from models.metrics import interval_coverage, value_metrics
from models.params import ValueParams
from models.splits import out_of_time_split
from models.value import PREDICTION_COLUMNS, ValueModel

COVERAGE_TOLERANCE = 0.07


def _fit(train, valid, features, **kwargs):
    return ValueModel(ValueParams(num_threads=1)).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], features,
        margin=train["label_margin"], margin_val=valid["label_margin"], **kwargs,
    )


@pytest.fixture(scope="module")
def value_model(training_split):
    train, valid, features = training_split
    return _fit(train, valid, features, cost_to_serve=train["label_cost_to_serve"],
                cost_to_serve_val=valid["label_cost_to_serve"])


def test_model_beats_trailing_revenue_baseline_out_of_time(value_model, training_split):
    _, valid, _ = training_split
    model = value_metrics(valid["label_revenue"], value_model.predict(valid)["expected_revenue"])
    baseline = value_metrics(valid["label_revenue"], value_baseline(valid, 90))
    assert model["normalized_gini"] >= baseline["normalized_gini"] + 0.05
    assert model["spearman"] > baseline["spearman"]
    assert abs(model["aggregate_bias_pct"]) < 15


def test_prediction_columns_and_signs(value_model, training_split):
    _, valid, _ = training_split
    pred = value_model.predict(valid)
    assert list(pred.columns) == PREDICTION_COLUMNS
    assert pred.index.equals(valid.index)
    assert (pred["value_p10"] <= pred["value_p90"]).all()
    assert (pred["cost_to_serve"] > 0).all()
    total_margin = valid["label_margin"].sum()
    assert abs(pred["expected_margin"].sum() - total_margin) / total_margin < 0.15


def test_band_misses_upper_tail_at_nominal_rate_despite_zero_mass(value_model, training_split):
    # half the customers spend exactly 0: P10 = 0 covers them, so coverage exceeds 0.8;
    # the share above P90 is the sharp check
    q_low, q_high = ValueParams().interval_quantiles
    assert abs(value_model.interval_above_rate_ - (1 - q_high)) < 0.03
    assert value_model.interval_below_rate_ <= q_low + 0.03
    assert value_model.interval_coverage_ >= (q_high - q_low) - COVERAGE_TOLERANCE


def test_band_coverage_near_nominal_when_few_customers_spend_nothing():
    frame = make_training_set(3000, seed=5, churn_shift=-3.0)
    train, valid = out_of_time_split(frame)
    model = _fit(train, valid, feature_columns(frame))
    assert abs(model.interval_coverage_ - 0.8) <= COVERAGE_TOLERANCE
    pred = model.predict(valid)  # the shift fitted on all of validation: an in-sample check
    covered = interval_coverage(valid["label_revenue"], pred["value_p10"], pred["value_p90"])
    assert abs(covered - 0.8) <= COVERAGE_TOLERANCE


def test_cost_to_serve_is_zero_when_not_modelled(training_split):
    train, valid, features = training_split
    model = _fit(train.iloc[:3000], valid.iloc[:1500], features)
    assert "cost_to_serve" not in model.boosters_
    assert (model.predict(valid.iloc[:10])["cost_to_serve"] == 0).all()


def test_revenue_contributions_add_up_to_log_scale_prediction(value_model, training_split):
    _, valid, _ = training_split
    raw = value_model.predict_raw(valid.iloc[:500], "revenue")
    contrib = contributions(value_model.boosters_["revenue"], valid.iloc[:500])
    check_additivity(contrib, raw, atol=1e-6)
    expected = np.exp(raw) * value_model.regressors_["revenue"].scale_
    predicted = value_model.predict(valid.iloc[:500])["expected_revenue"]
    np.testing.assert_allclose(predicted, expected, rtol=1e-9)


def test_cost_targets_must_come_in_pairs(training_split):
    train, valid, features = training_split
    with pytest.raises(ValueError, match="cost_to_serve_val"):
        _fit(train, valid, features, cost_to_serve=train["label_cost_to_serve"])


@pytest.mark.parametrize("objective", ["tweedie", "l2", "log_l2"])
def test_revenue_from_a_shared_raw_score_equals_the_plain_prediction(objective, training_split):
    train, valid, features = training_split
    model = ValueModel(ValueParams(num_threads=1, objective=objective, n_estimators=20)).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], features,
        margin=train["label_margin"], margin_val=valid["label_margin"],
    )
    rows = valid.iloc[:2000]
    plain = model.predict(rows)
    shared = model.predict(rows, revenue_raw=model.predict_raw(rows))
    np.testing.assert_allclose(shared.to_numpy(), plain.to_numpy(), rtol=1e-12, atol=1e-9)
    assert plain["expected_revenue"].std() > 0


def test_tweedie_revenue_from_raw_matches_lightgbms_own_conversion(value_model, training_split):
    _, valid, _ = training_split
    rows = valid[value_model.feature_names_].iloc[:2000]
    revenue = value_model.regressors_["revenue"]
    np.testing.assert_allclose(revenue.predict_from_raw(revenue.booster_.predict(rows, raw_score=True)),
                               revenue.booster_.predict(rows) * revenue.scale_, rtol=1e-12)


@pytest.fixture(scope="module")
def decomposed(training_split):
    """revenue_model frequency_severity; the synthetic set's order days serve as the value window's."""
    train, valid, features = training_split
    return ValueModel(ValueParams(num_threads=1, revenue_model="frequency_severity")).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], features,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        order_days=train["label_churn_order_days"], order_days_val=valid["label_churn_order_days"],
    )


def test_frequency_severity_is_one_booster_that_explains_log_revenue_exactly(decomposed, training_split):
    _, valid, features = training_split
    revenue = decomposed.regressors_["revenue"]
    assert revenue.booster_.num_trees() == revenue.frequency_trees_ + revenue.severity_trees_
    rows = valid.iloc[:500]
    raw = decomposed.predict_raw(rows, "revenue")
    check_additivity(contributions(decomposed.boosters_["revenue"], rows[features]), raw, atol=1e-6)
    np.testing.assert_allclose(decomposed.predict(rows)["expected_revenue"], np.exp(raw) * revenue.scale_, rtol=1e-9)


def test_frequency_severity_ranks_value_as_well_as_the_direct_model(decomposed, value_model, training_split):
    _, valid, _ = training_split
    y = valid["label_revenue"]
    split = value_metrics(y, decomposed.predict(valid)["expected_revenue"])
    direct = value_metrics(y, value_model.predict(valid)["expected_revenue"])
    assert split["normalized_gini"] >= direct["normalized_gini"] - 0.02
    assert abs(split["aggregate_bias_pct"]) < 15


def test_frequency_severity_needs_the_order_days(training_split):
    train, valid, features = training_split
    with pytest.raises(ValueError, match="order_days and order_days_val.*label_value_order_days"):
        ValueModel(ValueParams(num_threads=1, revenue_model="frequency_severity")).fit(
            train, train["label_revenue"], valid, valid["label_revenue"], features,
            margin=train["label_margin"], margin_val=valid["label_margin"])


@pytest.mark.parametrize("side", ["training", "validation"])
def test_frequency_severity_without_buyers_says_so_before_fitting_anything(side, training_split, monkeypatch):
    import models.boosting

    train, valid, features = training_split
    fitted = []
    monkeypatch.setattr(models.boosting, "_train_member", lambda *a, **k: fitted.append(a) or None)
    days, days_val = train["label_churn_order_days"], valid["label_churn_order_days"]
    days, days_val = (np.zeros(len(train)), days_val) if side == "training" else (days, np.zeros(len(valid)))
    with pytest.raises(ValueError, match=f"needs customers who bought.*{side} \\(0\\)"):
        ValueModel(ValueParams(num_threads=1, revenue_model="frequency_severity", n_estimators=5)).fit(
            train, train["label_revenue"], valid, valid["label_revenue"], features,
            margin=train["label_margin"], margin_val=valid["label_margin"], order_days=days, order_days_val=days_val)
    assert fitted == []  # the margin model was not trained first


def test_frequency_severity_refuses_a_training_set_with_no_net_revenue(training_split):
    train, valid, features = training_split
    loss = train["label_revenue"] - train["label_revenue"].sum() / len(train) - 1.0  # net total -len(train)
    with pytest.raises(ValueError, match="cannot set its level.*net revenue is -"):
        ValueModel(ValueParams(num_threads=1, revenue_model="frequency_severity", n_estimators=5)).fit(
            train, loss, valid, valid["label_revenue"], features,
            margin=train["label_margin"], margin_val=valid["label_margin"],
            order_days=train["label_churn_order_days"], order_days_val=valid["label_churn_order_days"])


def test_fit_decides_the_level_anchor_on_its_own_validation_predictions(training_split):
    train, valid, features = training_split
    y_val = valid["label_revenue"].to_numpy(dtype=float)
    level = np.full(len(valid), y_val.mean())  # a reference whose total is the realised total
    model = ValueModel(ValueParams(num_threads=1, n_estimators=30)).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], features,
        margin=train["label_margin"], margin_val=valid["label_margin"], level_reference=level, level_anchor="always")
    predicted = model.predict(valid)["expected_revenue"].to_numpy()
    assert model.level_anchor_.use_anchor_
    assert model.level_anchor_.bias_model_pct_ == pytest.approx(100.0 * (predicted.sum() / y_val.sum() - 1.0))
    assert model.level_anchor_.bias_anchored_pct_ == pytest.approx(0.0, abs=1e-9)


def test_fit_without_a_level_reference_keeps_no_anchor_and_no_blend(value_model):
    assert (value_model.level_anchor_, value_model.reason_reference_) == (None, None)
    assert (value_model.design_, value_model.blend_weight_) == (None, 0.0)


def test_fit_gives_bgnbd_a_share_only_when_its_values_rank_spenders_better(training_split):
    train, valid, features = training_split
    y_val = valid["label_revenue"].to_numpy(dtype=float)
    knows = y_val + 1.0  # a reference that ranks spenders perfectly
    design = DesignChoice("value", [{"name": "all", "normalized_gini": 0.5}], "all", [], 0.0, "rule")
    fitted = {name: ValueModel(ValueParams(num_threads=1, n_estimators=30)).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], features,
        margin=train["label_margin"], margin_val=valid["label_margin"], design=design, blend_reference=reference)
        for name, reference in (("knows", knows), ("backwards", y_val.max() + 1.0 - y_val))}
    assert fitted["knows"].blend_weight_ > 0.0
    assert fitted["backwards"].blend_weight_ == 0.0
    assert [row["weight"] for row in fitted["knows"].design_["blend_weights"]] == [0.0, 0.25, 0.5]
