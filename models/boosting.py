"""Shared LightGBM training: input checks, parameters, early stopping, cut at the best round."""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.params import TreeParams

logger = logging.getLogger(__name__)


def check_feature_matrix(X: pd.DataFrame, feature_names: list[str], where: str) -> pd.DataFrame:
    """Return X[feature_names], raising on missing columns or non-numeric, non-category dtypes."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{where}: expected a pandas DataFrame, got {type(X).__name__}")
    missing = [c for c in feature_names if c not in X.columns]
    if missing:
        raise KeyError(
            f"{where}: feature columns {missing[:5]} are not in the matrix "
            f"({len(missing)} missing); pass the feature list the matrix was built with"
        )
    matrix = X[list(feature_names)]
    bad = [
        f"{c} ({matrix[c].dtype})"
        for c in matrix.columns
        if not (
            isinstance(matrix[c].dtype, pd.CategoricalDtype)
            or pd.api.types.is_numeric_dtype(matrix[c])
        )
    ]
    if bad:
        raise TypeError(
            f"{where}: columns {bad[:5]} are neither numeric nor pandas 'category'; convert "
            "text attributes with .astype('category')"
        )
    return matrix


def check_target(y: Any, n_rows: int, where: str) -> np.ndarray:
    """Return y as a finite float array with one value per matrix row."""
    arr = np.asarray(y, dtype=float).ravel()
    if arr.size != n_rows:
        raise ValueError(f"{where}: target has {arr.size} values but the matrix has {n_rows} rows")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{where}: target has {bad.size} missing or infinite values (first at row {bad[0]}); "
            "labels must exist only where the label window is fully observed"
        )
    return arr


def lightgbm_params(
    params: TreeParams, objective: str, metric: str, **extra: Any
) -> dict[str, Any]:
    """LightGBM parameter dict from a typed parameter object."""
    return {
        "objective": objective,
        "metric": metric,
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "max_depth": params.max_depth,
        "min_child_samples": params.min_child_samples,
        "bagging_fraction": params.subsample,
        "bagging_freq": params.subsample_freq,
        "feature_fraction": params.colsample_bytree,
        "lambda_l2": params.reg_lambda,
        "num_threads": params.num_threads,
        "seed": params.seed,
        "deterministic": True,
        "verbosity": -1,
        **extra,
    }


def train_early_stopped(
    lgb_params: dict[str, Any],
    n_estimators: int,
    early_stopping_rounds: int,
    X: pd.DataFrame,
    y: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
) -> lgb.Booster:
    """Train with early stopping on the validation set and return a booster cut at the best round.

    Cutting the model (rather than only remembering best_iteration) keeps explanation
    cost and saved models at the size that was actually chosen.
    """
    train_set = lgb.Dataset(X, label=y, categorical_feature="auto", free_raw_data=False)
    valid_set = lgb.Dataset(X_val, label=y_val, reference=train_set)
    booster = lgb.train(
        lgb_params,
        train_set,
        num_boost_round=n_estimators,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    logger.info("%s: best iteration %d of %d", lgb_params["objective"], best, n_estimators)
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    trimmed.best_iteration = best
    return trimmed
