"""The prospect model: chance of a first order within the horizon, and what a prospect is worth if it buys.

`ProspectModel` holds two fitted parts:

- `classifier_`: a `ChurnModel` (binary objective) fitted on label_first_order instead of
  label_churn: the same LightGBM training, early stopping and out-of-time calibration, so
  `predict_proba` is P(first order in [T, T + horizon)) and its booster is explained by exact
  TreeSHAP like the churn model's.
- `value_`: `ProspectValue`, the mean revenue over the value horizon of recent converters
  with similar attributes: a small L2 LightGBM regression on the converters' attributes with
  at least `min_converters_per_leaf` converters in every leaf, so each prediction is an
  average over that many real first years. L2 because an expected value is a mean (heavy
  first years included); with fewer than twice that many converters, or no attribute, it is
  the converters' plain mean.

`predict` gives p_first_order, prospect_value and expected_value = their product.
"""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.boosting import check_feature_matrix
from models.churn import ChurnModel
from models.params import ChurnParams

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("p_first_order", "prospect_value", "expected_value")


class ProspectValue:
    """Mean revenue over the value horizon of converters with similar attributes (see the module doc)."""

    def __init__(self, min_converters_per_leaf: int = 50, seed: int = 42) -> None:
        self.min_converters_per_leaf = min_converters_per_leaf
        self.seed = seed

    def fit(self, converters: pd.DataFrame, revenue: Any) -> ProspectValue:
        """`converters`: one row per recent converter, its attr_* columns; `revenue`: its first-horizon revenue."""
        y = np.asarray(revenue, dtype=float)
        if len(y) == 0:
            raise ValueError("ProspectValue.fit: no recent converter to learn a first year's value from; "
                             "the data needs customers whose first order is at least a value horizon old")
        self.mean_ = float(y.mean())
        self.feature_names_ = [c for c in converters.columns if c.startswith("attr_")]
        self.converters_ = len(y)
        self.booster_: lgb.Booster | None = None
        if self.feature_names_ and len(y) >= 2 * self.min_converters_per_leaf:
            matrix = check_feature_matrix(converters[self.feature_names_], self.feature_names_, "ProspectValue.fit")
            params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 8, "max_depth": 4,
                      "min_data_in_leaf": self.min_converters_per_leaf, "min_data_per_group": self.min_converters_per_leaf,
                      "cat_smooth": float(self.min_converters_per_leaf), "verbose": -1, "seed": self.seed,
                      "num_threads": 1, "deterministic": True}
            fitted = lgb.train(params, lgb.Dataset(matrix, y), num_boost_round=100)
            # From its text: a booster as trained carries evaluation dicts a model file does not trust.
            self.booster_ = lgb.Booster(model_str=fitted.model_to_string())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected first-horizon revenue of each row if it buys."""
        if self.booster_ is None:
            return np.full(len(X), self.mean_)
        matrix = check_feature_matrix(X[self.feature_names_], self.feature_names_, "ProspectValue.predict")
        return np.maximum(np.asarray(self.booster_.predict(matrix)), 0.0)


class ProspectModel:
    """p_first_order (a calibrated LightGBM classifier) and prospect_value (converters' first-horizon revenue)."""

    def __init__(self, params: ChurnParams | None = None, min_converters_per_leaf: int = 50) -> None:
        self.params = params or ChurnParams()
        self.min_converters_per_leaf = min_converters_per_leaf

    def fit(self, X: pd.DataFrame, y: Any, X_val: pd.DataFrame, y_val: Any, feature_names: list[str],
            converters: pd.DataFrame, converter_revenue: Any, *,
            reason_population: pd.DataFrame | None = None) -> ProspectModel:
        """Fit the classifier on the training snapshots (calibrated out of time on X_val) and the value on converters."""
        self.classifier_ = ChurnModel(self.params).fit(X, y, X_val, y_val, feature_names,
                                                       reason_population=reason_population)
        # Only attributes the classifier reads too: scoring passes the prospects' own columns.
        shared = [c for c in converters.columns if c in set(feature_names)]
        self.value_ = ProspectValue(self.min_converters_per_leaf, self.params.seed).fit(converters[shared],
                                                                                       converter_revenue)
        return self

    @property
    def feature_names_(self) -> list[str]:
        return self.classifier_.feature_names_

    @property
    def booster_(self) -> lgb.Booster:
        return self.classifier_.booster_

    @property
    def validation_proba_(self) -> np.ndarray:
        return self.classifier_.validation_proba_

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The classifier's raw score (log-odds of a first order), what its contributions add up to."""
        return self.classifier_.predict_raw(X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of a first order within the horizon."""
        return self.classifier_.predict_proba(X)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """p_first_order, prospect_value and expected_value (their product) per row."""
        p = self.predict_proba(X)
        value = self.value_.predict(X)
        return pd.DataFrame({"p_first_order": p, "prospect_value": value, "expected_value": p * value}, index=X.index)
