"""The table TreeSHAP equals LightGBM's pred_contrib on every kind of split custscore models use."""

from __future__ import annotations

import logging
from datetime import date, datetime

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.explain import check_additivity, contributions, lightgbm_contributions
from models.treeshap import TreeExplainer, explainer_for, leaf_table

ATOL = 1e-9
CATEGORIES = ["a", "b", "c", "d", "e", "f"]


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """Features with NaNs, exact zeros, a count, a float32 and an int column and a category."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "wave": rng.normal(size=n),  # sin(3 x) makes trees split on it repeatedly along a path
        "gapped": rng.normal(size=n),
        "zeros": np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n)),
        "count": rng.poisson(2, n).astype(np.int64),
        "small": rng.normal(size=n).astype(np.float32),
        "noise": rng.normal(size=n),
        "segment": pd.Categorical(rng.choice(CATEGORIES, n), categories=CATEGORIES),
    })
    frame.loc[rng.random(n) < 0.15, "gapped"] = np.nan
    frame.loc[rng.random(n) < 0.05, "zeros"] = np.nan
    frame.loc[rng.random(n) < 0.05, "segment"] = np.nan
    return frame


def signal(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A target that every feature, missingness and the category move."""
    rng = np.random.default_rng(seed)
    return (np.sin(3 * frame["wave"]) + frame["gapped"].fillna(1.5) + 0.8 * (frame["zeros"] == 0)
            + 0.3 * frame["count"] + 0.5 * frame["small"]
            + frame["segment"].isin(["b", "e"]).to_numpy() - 0.7 * frame["segment"].isna().to_numpy()
            + rng.normal(0, 0.3, len(frame))).to_numpy()


def labels(objective: str, y: np.ndarray) -> np.ndarray:
    """The label each objective expects."""
    if objective == "binary":
        return (y > np.median(y)).astype(int)
    if objective == "tweedie":
        return np.where(y > 1, np.exp(y / 2), 0.0)
    return y


def train(objective: str, depth: int, rounds: int = 30, **extra) -> lgb.Booster:
    """A small booster as custscore trains them (single thread, categorical from pandas)."""
    frame = make_frame(3000, seed=depth)
    params = {"objective": objective, "max_depth": depth, "num_leaves": min(7, 2**depth),
              "learning_rate": 0.2, "min_data_in_leaf": 20, "min_data_per_group": 20, "cat_smooth": 1,
              "num_threads": 1, "deterministic": True, "verbosity": -1, **extra}
    return lgb.train(params, lgb.Dataset(frame, labels(objective, signal(frame, depth))), rounds)


def scoring_rows(seed: int = 99) -> pd.DataFrame:
    """Fresh rows plus edge values: exact zeros, tiny values, NaN, unseen and missing categories."""
    frame = make_frame(1500, seed)
    frame.loc[:40, "zeros"] = 0.0
    frame.loc[41:60, "zeros"] = 1e-36
    frame.loc[61:80, "wave"] = np.nan
    frame.loc[81:100, "count"] = 0
    # categories in another order plus one never seen in training: LightGBM recodes by name
    segment = frame["segment"].astype(object)
    segment[101:130] = "z"
    frame["segment"] = pd.Categorical(segment, categories=["z", *reversed(CATEGORIES)])
    return frame


def split_kinds(booster: lgb.Booster) -> set[str]:
    """Kinds of splits in the model: missing types, categorical, repeated feature on a path."""
    kinds: set[str] = set()

    def walk(node: dict, path: tuple[int, ...]) -> None:
        if "leaf_index" in node:
            return
        kinds.add("categorical" if node["decision_type"] == "==" else f"missing {node['missing_type']}")
        if node["split_feature"] in path:
            kinds.add("repeated")
        for child in (node["left_child"], node["right_child"]):
            walk(child, (*path, node["split_feature"]))

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"], ())
    return kinds


def assert_equals_lightgbm(booster: lgb.Booster, X: pd.DataFrame) -> np.ndarray:
    """Fast values equal pred_contrib to ATOL in every cell, bias column included."""
    reference = lightgbm_contributions(booster, X, num_threads=1)
    fast = TreeExplainer.from_booster(booster).contributions(X, num_threads=2)
    assert fast.shape == reference.shape
    np.testing.assert_allclose(fast[:, -1], reference[:, -1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(fast, reference, rtol=0, atol=ATOL)
    return fast


@pytest.mark.parametrize("objective", ["binary", "tweedie", "regression"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_fast_contributions_equal_pred_contrib(objective, depth):
    booster = train(objective, depth)
    fast = assert_equals_lightgbm(booster, scoring_rows())
    check_additivity(fast, booster.predict(scoring_rows(), raw_score=True), atol=1e-9)


def test_models_cover_every_split_kind():
    """The equality above is only meaningful if the models use every kind of split."""
    kinds = set().union(*(split_kinds(train(o, d)) for o in ("binary", "tweedie") for d in (3, 4)))
    assert {"categorical", "missing NaN", "missing None", "repeated"} <= kinds


@pytest.mark.parametrize("extra", [
    {"zero_as_missing": True},  # missing type Zero: NaN and |x| <= 1e-35 go the default way
    {"use_missing": False},  # missing type None everywhere: NaN read as 0
    {"boost_from_average": False},
])
def test_missing_value_modes_equal_pred_contrib(extra):
    booster = train("regression", 4, **extra)
    if extra.get("zero_as_missing"):
        assert "missing Zero" in split_kinds(booster)
    assert_equals_lightgbm(booster, scoring_rows())


def test_single_leaf_tree_adds_its_value_to_the_bias():
    frame = make_frame(400, seed=5)
    y = signal(frame, 5)
    params = {"objective": "regression", "num_leaves": 7, "max_depth": 4, "num_threads": 1, "verbosity": -1}
    # every row in one leaf: no split is possible, the first tree is a single leaf (the average)
    stump = lgb.train({**params, "min_data_in_leaf": 400}, lgb.Dataset(frame, y), 1)
    booster = lgb.train({**params, "min_data_in_leaf": 20}, lgb.Dataset(frame, y), 10, init_model=stump)
    first = booster.dump_model()["tree_info"][0]
    assert first["num_leaves"] == 1
    assert_equals_lightgbm(booster, scoring_rows())
    assert len(TreeExplainer.from_booster(booster).trees) == booster.num_trees() - 1  # no table for it


def test_integer_coded_categorical_column_follows_lightgbm_casts():
    """A numeric column declared categorical: fractions truncate, negatives/NaN/unseen go right."""
    rng = np.random.default_rng(12)
    frame = make_frame(3000, seed=12).drop(columns="segment")
    frame["code"] = rng.integers(0, 8, len(frame)).astype(float)
    y = signal(make_frame(3000, seed=12), 12) + np.isin(frame["code"], [1, 4, 6])
    booster = lgb.train({"objective": "regression", "num_leaves": 7, "max_depth": 4, "min_data_per_group": 20,
                         "cat_smooth": 1, "num_threads": 1, "verbosity": -1},
                        lgb.Dataset(frame, y, categorical_feature=["code"]), 20)
    assert "categorical" in split_kinds(booster)
    X = frame.iloc[:400].copy()
    X.loc[X.index[:60], "code"] = [-0.5, -1.0, -3.0, 0.7, 1.9, 4.2, np.nan, 9.0, 1e12, 2.0**31] * 6
    assert_equals_lightgbm(booster, X)


def test_init_score_in_training_is_not_part_of_the_explanation_as_in_lightgbm():
    frame = make_frame(2000, seed=8)
    y = signal(frame, 8)
    data = lgb.Dataset(frame, y, init_score=np.full(len(frame), 3.0))
    booster = lgb.train({"objective": "regression", "num_leaves": 7, "max_depth": 4, "num_threads": 1,
                         "verbosity": -1}, data, 20)
    assert_equals_lightgbm(booster, scoring_rows())


def test_leaf_table_is_the_shapley_value_of_the_product_game():
    """Brute force over coalitions for one 3-feature leaf, every pattern of satisfied splits."""
    from itertools import combinations
    from math import factorial

    zero, value = np.array([0.3, 0.55, 0.8]), 2.5
    table = leaf_table(value, zero)
    for pattern in range(8):
        ones = [(pattern >> p) & 1 for p in range(3)]

        def game(members: set[int], ones: list[int] = ones) -> float:
            return value * np.prod([ones[i] if i in members else zero[i] for i in range(3)])

        for j in range(3):
            others = [i for i in range(3) if i != j]
            phi = sum(factorial(len(s)) * factorial(3 - len(s) - 1) / factorial(3)
                      * (game(set(s) | {j}) - game(set(s)))
                      for r in range(3) for s in combinations(others, r))
            assert table[pattern, j] == pytest.approx(phi, abs=1e-12)


def test_contributions_use_the_fast_path_once_per_booster(monkeypatch):
    booster = train("binary", 4)
    X = scoring_rows()
    first = explainer_for(booster)
    assert isinstance(first, TreeExplainer)
    assert explainer_for(booster) is first  # tables built once, reused for every chunk

    def refuse(*args, **kwargs):
        raise AssertionError("pred_contrib called for a supported booster")

    monkeypatch.setattr(booster, "predict", refuse)
    contrib = contributions(booster, X)
    assert contrib.shape == (len(X), booster.num_feature() + 1)


def fallback_booster(**extra) -> tuple[lgb.Booster, pd.DataFrame]:
    """A regression booster with non-default settings, and rows to explain."""
    frame = make_frame(2000, seed=3).drop(columns="segment")  # linear trees take no categories
    y = signal(make_frame(2000, seed=3), 3)
    params = {"objective": "regression", "num_leaves": 7, "max_depth": 4, "min_data_in_leaf": 10,
              "num_threads": 1, "verbosity": -1, **extra}
    return lgb.train(params, lgb.Dataset(frame, y), 10), frame.iloc[:300]


def test_trees_above_the_size_limit_fall_back_to_pred_contrib_and_say_why(caplog):
    booster, X = fallback_booster(num_leaves=15, max_depth=5)
    with caplog.at_level(logging.WARNING, logger="models.treeshap"):
        contrib = contributions(booster, X)
    assert "MAX_SPLITS_PER_TREE" in caplog.text
    np.testing.assert_array_equal(contrib, lightgbm_contributions(booster, X))


def test_linear_trees_are_never_explained_by_tables(caplog):
    """Their leaves are linear models: the tables would be wrong, so LightGBM decides (it refuses)."""
    booster, X = fallback_booster(linear_tree=True)
    with (caplog.at_level(logging.WARNING, logger="models.treeshap"),
          pytest.raises(lgb.basic.LightGBMError, match="linear trees")):
        contributions(booster, X)
    assert "a linear tree" in caplog.text


def test_multiclass_falls_back_with_lightgbm_layout(caplog):
    frame = make_frame(1500, seed=4)
    y = np.digitize(signal(frame, 4), [0.5, 2.0])
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "num_leaves": 4, "num_threads": 1,
                         "verbosity": -1}, lgb.Dataset(frame, y), 5)
    with caplog.at_level(logging.WARNING, logger="models.treeshap"):
        contrib = contributions(booster, frame.iloc[:100])
    assert "classes" in caplog.text
    assert contrib.shape == (100, 3 * (frame.shape[1] + 1))


@pytest.mark.slow
def test_custscore_models_on_demo_data_equal_pred_contrib(tmp_path):
    """Churn and revenue models trained as the project trains them, on generated customers."""
    from demo import generate_demo_data, write_demo_data
    from features.build import FeatureSpec
    from features.training_set import build_training_set
    from features.validation import load_and_validate
    from models.churn import ChurnModel
    from models.params import ChurnParams, ValueParams
    from models.splits import split_by_flag
    from models.value import PointRegressor

    write_demo_data(generate_demo_data(900, seed=3, end=date(2026, 6, 30)), tmp_path / "data")
    data = load_and_validate(tmp_path / "data", clock=datetime(2026, 7, 2), database=tmp_path / "db.duckdb")
    frame = build_training_set(data.tables, datetime(2026, 7, 1), spec=FeatureSpec(), n_snapshots=3,
                               data_end=datetime(2026, 7, 1), min_history_days=90)
    names = [c for c in frame.columns
             if c not in ("customer_id", "as_of", "is_validation") and not c.startswith("label_")]
    train_rows, valid_rows = split_by_flag(frame)
    small = {"min_child_samples": 10, "num_threads": 1}
    churn = ChurnModel(ChurnParams(**small, calibration="none")).fit(
        train_rows[names], train_rows["label_churn"], valid_rows[names], valid_rows["label_churn"], names)
    revenue = PointRegressor(ValueParams(**small), "revenue").fit(
        train_rows[names], train_rows["label_revenue"].to_numpy(), valid_rows[names],
        valid_rows["label_revenue"].to_numpy())
    for booster in (churn.booster_, revenue.booster_):
        assert booster.num_trees() > 5
        X = frame[booster.feature_name()]
        assert_equals_lightgbm(booster, X)
        check_additivity(contributions(booster, X), booster.predict(X, raw_score=True), atol=1e-9)
