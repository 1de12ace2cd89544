"""Binning once and reusing the bins: same trees as binning per booster, at a fraction of the cost."""


import numpy as np
import pytest

from models.boosting import (
    BinnedMatrices,
    added_boosters,
    average_boosters,
    dataset_params,
    lightgbm_params,
    member_params,
    train_early_stopped,
)
from models.explain import contributions
from models.model_files import read_model_file, write_model_file
from models.params import ChurnParams, ValueParams
from models.value import ValueModel


def _root_count(booster) -> int:
    """Rows the first tree was grown on (after bagging)."""
    return booster.dump_model()["tree_info"][0]["tree_structure"]["internal_count"]


def _params(**kw):
    return ValueParams(num_threads=1, n_estimators=30, **kw)


def test_reused_bins_give_the_same_booster_as_fresh_bins(training_split):
    train, valid, names = training_split
    p = _params()
    lgb_params = lightgbm_params(p, "tweedie", "tweedie", tweedie_variance_power=1.5)
    binned = BinnedMatrices(train[names], valid[names], dataset_params(p))
    y, y_val = train["label_revenue"].clip(lower=0).to_numpy(), valid["label_revenue"].clip(lower=0).to_numpy()
    # a first fit on another label must leave nothing behind in the binned matrices
    train_early_stopped(lgb_params, 30, 5, None, train["label_churn"].to_numpy(float), None,
                        valid["label_churn"].to_numpy(float), binned=binned)
    reused = train_early_stopped(lgb_params, 30, 5, None, y, None, y_val, binned=binned)
    fresh = train_early_stopped(lgb_params, 30, 5, train[names], y, valid[names], y_val)
    assert reused.model_to_string() == fresh.model_to_string()


def test_train_rows_fit_on_those_rows_only(training_split):
    train, valid, names = training_split
    p = ChurnParams(num_threads=1, n_estimators=20)
    lgb_params = lightgbm_params(p, "binary", "binary_logloss")
    y, y_val = train["label_churn"].to_numpy(float), valid["label_churn"].to_numpy(float)
    rows = np.arange(0, len(train), 2)
    on_subset = train_early_stopped(lgb_params, 20, 5, None, y, None, y_val,
                                    binned=BinnedMatrices(train[names], valid[names], dataset_params(p)),
                                    train_rows=rows)
    on_all = train_early_stopped(lgb_params, 20, 5, train[names], y, valid[names], y_val)
    assert _root_count(on_subset) == pytest.approx(_root_count(on_all) / 2, rel=0.05)


def test_quantile_row_cap_keeps_the_band_honest(training_split):
    train, valid, names = training_split
    model = ValueModel(ValueParams(num_threads=1, interval_max_rows=1500)).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
    )
    q_high = model.params.interval_quantiles[1]
    # conformalised on the full validation snapshot: the upper miss rate stays at nominal
    assert abs(model.interval_above_rate_ - (1 - q_high)) < 0.03
    assert all(_root_count(b) <= 1500 < len(train) for b in model.quantile_boosters_)


def test_ensemble_is_the_mean_of_its_members_and_explains_exactly(training_split, tmp_path):
    train, valid, names = training_split
    p = ChurnParams(num_threads=1, n_estimators=40)
    lgb_params = lightgbm_params(p, "binary", "binary_logloss")
    y, y_val = train["label_churn"].to_numpy(float), valid["label_churn"].to_numpy(float)
    binned = BinnedMatrices(train[names], valid[names], dataset_params(p))
    single = train_early_stopped(lgb_params, 40, 5, None, y, None, y_val, binned=binned)
    ensemble = train_early_stopped(lgb_params, 40, 5, None, y, None, y_val, binned=binned, ensemble_size=3)
    members = [train_early_stopped(member_params(lgb_params, i), 40, 5, None, y, None, y_val, binned=binned)
               for i in range(3)]
    assert members[0].model_to_string() == single.model_to_string()  # the first member is the single model
    assert members[1].model_to_string() != members[2].model_to_string()  # the others sample differently
    X = valid[names].iloc[:500]
    mean_raw = np.mean([m.predict(X, raw_score=True) for m in members], axis=0)
    assert ensemble.num_trees() == sum(m.num_trees() for m in members) == ensemble.best_iteration
    np.testing.assert_allclose(ensemble.predict(X, raw_score=True), mean_raw, atol=1e-12)
    contrib = contributions(ensemble, X)  # exact TreeSHAP from per-tree tables, categoricals included
    np.testing.assert_allclose(contrib.sum(axis=1), mean_raw, atol=1e-9)
    np.testing.assert_allclose(contrib, np.mean([m.predict(X, pred_contrib=True) for m in members], axis=0), atol=1e-9)
    restored = read_model_file(tmp_path / "ensemble.skops", write_model_file(ensemble, tmp_path / "ensemble.skops"), "e")
    np.testing.assert_array_equal(restored.predict(X, raw_score=True), ensemble.predict(X, raw_score=True))


def test_average_of_one_booster_is_that_booster(training_split):
    train, valid, names = training_split
    p = ChurnParams(num_threads=1, n_estimators=10)
    booster = train_early_stopped(lightgbm_params(p, "binary", "binary_logloss"), 10, 5, train[names],
                                  train["label_churn"].to_numpy(float), valid[names], valid["label_churn"].to_numpy(float))
    assert average_boosters([booster]) is booster


def test_ensemble_size_reaches_every_booster_of_both_models(training_split):
    from models.churn import ChurnModel

    train, valid, names = training_split

    def fitted(size):
        churn = ChurnModel(ChurnParams(num_threads=1, n_estimators=20, ensemble_size=size)).fit(
            train, train["label_churn"], valid, valid["label_churn"], names)
        value = ValueModel(ValueParams(num_threads=1, n_estimators=20, interval_n_estimators=20, ensemble_size=size)).fit(
            train, train["label_revenue"], valid, valid["label_revenue"], names,
            margin=train["label_margin"], margin_val=valid["label_margin"])
        return {"churn": churn.booster_, **value.boosters_}

    single, pair = fitted(1), fitted(2)
    for name, booster in pair.items():
        assert booster.num_trees() > single[name].num_trees(), name


def test_linear_trees_are_refused_rather_than_averaged_wrongly(training_split):
    import lightgbm as lgb

    train, _, _ = training_split
    X = train[["days_since_last_order", "revenue_sum_90d"]].fillna(0)
    data = lgb.Dataset(X, train["label_revenue"].clip(lower=0), params={"linear_tree": True, "verbosity": -1})
    boosters = [lgb.train({"objective": "regression", "linear_tree": True, "verbosity": -1, "seed": s}, data,
                          num_boost_round=3) for s in (1, 2)]
    with pytest.raises(ValueError, match="linear trees"):
        average_boosters(boosters)


def test_added_boosters_score_the_sum_and_explain_it_exactly(training_split, monkeypatch):
    import models.boosting

    train, valid, names = training_split
    stopped_on = []
    real_member = models.boosting._train_member

    def member(lgb_params, n_estimators, rounds, train_set, valid_set):
        stopped_on.append(valid_set.num_data())
        return real_member(lgb_params, n_estimators, rounds, train_set, valid_set)

    monkeypatch.setattr(models.boosting, "_train_member", member)
    p = _params()
    binned = BinnedMatrices(train[names], valid[names], dataset_params(p))
    counts, counts_val = train["label_churn_order_days"].to_numpy(float), valid["label_churn_order_days"].to_numpy(float)
    frequency = train_early_stopped(lightgbm_params(p, "poisson", "poisson"), 30, 5, None, counts, None, counts_val,
                                    binned=binned)
    buyers, buyers_val = np.flatnonzero(counts > 0), np.flatnonzero(counts_val > 0)
    spend = train["label_revenue"].clip(lower=1.0).to_numpy()
    severity = train_early_stopped(lightgbm_params(p, "gamma", "gamma"), 30, 5, None, spend, None,
                                   valid["label_revenue"].clip(lower=1.0).to_numpy(), binned=binned,
                                   train_rows=buyers, valid_rows=buyers_val)
    assert _root_count(severity) <= len(buyers) < len(train)  # grown on the buyers only
    assert stopped_on == [len(valid), len(buyers_val)] and len(buyers_val) < len(valid)  # and stopped on theirs
    added = added_boosters([frequency, severity])
    X = valid[names].iloc[:500]
    both = frequency.predict(X, raw_score=True) + severity.predict(X, raw_score=True)
    assert added.num_trees() == frequency.num_trees() + severity.num_trees()
    np.testing.assert_allclose(added.predict(X, raw_score=True), both, atol=1e-12)
    np.testing.assert_allclose(contributions(added, X).sum(axis=1), both, atol=1e-9)
    assert added_boosters([frequency]) is frequency


def test_boosters_on_different_columns_are_not_merged(training_split):
    train, valid, names = training_split
    p = ChurnParams(num_threads=1, n_estimators=5)
    lgb_params = lightgbm_params(p, "binary", "binary_logloss")
    y, y_val = train["label_churn"].to_numpy(float), valid["label_churn"].to_numpy(float)
    full = train_early_stopped(lgb_params, 5, 5, train[names], y, valid[names], y_val)
    fewer = train_early_stopped(lgb_params, 5, 5, train[names[:-1]], y, valid[names[:-1]], y_val)
    with pytest.raises(ValueError, match="different feature columns"):
        added_boosters([full, fewer])
