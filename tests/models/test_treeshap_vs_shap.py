"""The project's table TreeSHAP equals the shap package's TreeExplainer (path-dependent, exact)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import shap

from models.treeshap import TreeExplainer
from tests.models.test_treeshap import make_frame, scoring_rows, signal, split_kinds, train

ATOL = 1e-9


def test_equals_shap_tree_explainer_on_a_booster_with_categories_and_missing_values():
    booster = train("regression", 3)
    assert {"categorical", "missing NaN", "repeated"} <= split_kinds(booster)
    rows = scoring_rows()
    explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    ours = TreeExplainer.from_booster(booster).contributions(rows)
    assert ours[:, :-1] == pytest.approx(explainer.shap_values(rows), abs=ATOL)
    assert ours[:, -1] == pytest.approx(np.full(len(rows), explainer.expected_value), abs=ATOL)


def test_equals_shap_own_tree_algorithm_on_the_same_trees():
    """shap hands a LightGBM booster back to LightGBM's pred_contrib; here shap's own C++ TreeSHAP
    runs on the trees shap parsed from the booster, an implementation independent of both."""
    frame = make_frame(3000, seed=3).drop(columns=["segment"])  # shap's own trees take numeric splits only
    params = {"objective": "regression", "max_depth": 3, "num_leaves": 7, "learning_rate": 0.2,
              "min_data_in_leaf": 20, "num_threads": 1, "deterministic": True, "verbosity": -1}
    booster = lgb.train(params, lgb.Dataset(frame, signal(make_frame(3000, seed=3), 3)), 30)
    parsed = shap.TreeExplainer(booster).model.trees
    trees = [{"children_left": t.children_left, "children_right": t.children_right,
              "children_default": t.children_default, "features": t.features, "thresholds": t.thresholds,
              "values": t.values, "node_sample_weight": t.node_sample_weight} for t in parsed]
    independent = shap.TreeExplainer({"trees": trees}, feature_perturbation="tree_path_dependent")
    rows = make_frame(500, seed=99).drop(columns=["segment"])  # NaNs and exact zeros included
    ours = TreeExplainer.from_booster(booster).contributions(rows)
    assert ours[:, :-1] == pytest.approx(independent.shap_values(rows.to_numpy(dtype=float)), abs=ATOL)
    assert ours[:, -1] == pytest.approx(np.full(len(rows), independent.expected_value[0]), abs=ATOL)
