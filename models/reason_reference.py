"""A model's reference population for reasons: how each feature's values and contributions spread.

Summarised when a model is fitted (from its own contributions on the customers of its latest
validation snapshot) and kept with the model, so every scoring run applies the same
thresholds; serving/unusual.py explains the rule that reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.column_kinds import is_numeric
from models.explain import contributions

# Below this rank correlation between a feature's value and its contribution, "higher is
# riskier" (or lower) does not describe the feature: its contribution's own percentile decides.
MIN_DIRECTION_CORRELATION = 0.2
PERCENTILES = np.arange(101)


@dataclass(frozen=True)
class ReasonReference:
    """How each feature's values and contributions spread over a model's reference population."""

    feature_names: tuple[str, ...]
    value_percentiles: np.ndarray  # (features, 101): whole percentiles of known values; NaN for non-numeric features
    contribution_percentiles: np.ndarray  # (features, 101): whole percentiles of contributions where the value is known
    direction: np.ndarray  # (features,): +1 higher values raise the score, -1 lower values do, 0 neither
    rows: int

    @classmethod
    def from_population(cls, contrib: np.ndarray, X: pd.DataFrame, feature_names: Sequence[str]) -> ReasonReference:
        """Summarise a population: `contrib` is n x (features + 1) contributions (bias last), as reasons use them."""
        names = tuple(feature_names)
        contrib = np.asarray(contrib, dtype=float)
        if contrib.ndim != 2 or contrib.shape != (len(X), len(names) + 1):
            raise ValueError(f"ReasonReference: contributions of shape {contrib.shape} do not match {len(X)} rows "
                             f"x {len(names)} features plus the bias column")
        values = numeric_matrix(X, names)
        known = known_matrix(X, names)
        value_pct = np.full((len(names), len(PERCENTILES)), np.nan)
        contrib_pct = np.zeros((len(names), len(PERCENTILES)))
        direction = np.zeros(len(names))
        for j in range(len(names)):
            c = contrib[known[:, j], j]
            if len(c):
                contrib_pct[j] = np.percentile(c, PERCENTILES, method="inverted_cdf")
            x = values[known[:, j], j]
            if len(x) and not np.isnan(x).all():
                value_pct[j] = np.percentile(x, PERCENTILES, method="inverted_cdf")
                direction[j] = _direction(x, c)
        return cls(names, value_pct, contrib_pct, direction, len(X))

    def aligned(self, feature_names: Sequence[str]) -> ReasonReference:
        """The reference in the order of `feature_names` (a model's columns), or an error naming what is missing."""
        names = tuple(feature_names)
        if names == self.feature_names:
            return self
        position = {name: i for i, name in enumerate(self.feature_names)}
        missing = [n for n in names if n not in position]
        if missing:
            raise ValueError(f"ReasonReference: no reference for feature(s) {missing[:5]}; retrain the model "
                             "so its reference population covers every column it scores")
        take = np.array([position[n] for n in names], dtype=int)
        return ReasonReference(names, self.value_percentiles[take], self.contribution_percentiles[take],
                               self.direction[take], self.rows)


def _direction(x: np.ndarray, c: np.ndarray) -> float:
    """+1 / -1 when the contribution rises / falls with the value, else 0.

    The correlation of the value's rank (ties averaged; infinite values rank last) with the
    contribution itself, not its rank: the few large contributions decide, not the many
    near-zero ones that a tree's interactions scatter around any value.
    """
    finite = x[np.isfinite(x)]
    if np.ptp(c) == 0 or len(finite) == 0 or np.ptp(finite) == 0:
        return 0.0
    rank_x = pd.Series(x).rank().to_numpy()
    r = np.corrcoef(rank_x, c)[0, 1]
    if not np.isfinite(r) or abs(r) < MIN_DIRECTION_CORRELATION:
        return 0.0
    return float(np.sign(r))


def numeric_matrix(X: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """n x features float matrix of the numeric features (NaN where missing and for non-numeric columns)."""
    out = np.full((len(X), len(names)), np.nan)
    for j, name in enumerate(names):
        if is_numeric(X[name]):
            out[:, j] = X[name].to_numpy(dtype=float, na_value=np.nan)
    return out


def known_matrix(X: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """n x features: True where the feature has a value (what a reason can state)."""
    return X[list(names)].notna().to_numpy()


def oriented(contrib: np.ndarray, sign: float) -> np.ndarray:
    """Contributions turned to push the score itself: a count churn model's raise expected orders, so lower churn."""
    return contrib if sign == 1.0 else contrib * sign


def actionable(contrib: np.ndarray, X: pd.DataFrame) -> np.ndarray:
    """Contributions for choosing reasons: a feature with no value is no reason a person can act on.

    Missing values do move LightGBM's score (e.g. no spend, so no discount share), and the
    stored contributions keep that; the reasons shown are the strongest among known facts.
    """
    chosen = contrib.copy()
    chosen[:, :-1][X.isna().to_numpy()] = 0.0
    return chosen


def reason_reference_of(booster: lgb.Booster, sign: float, population: pd.DataFrame,
                        feature_names: Sequence[str]) -> ReasonReference:
    """The reference of a fitted booster over `population` (customers with history, the model's columns).

    Contributions are taken exactly as scoring takes them for reasons (missing values zeroed,
    oriented to push the score), so thresholds and reasons speak of the same numbers.
    """
    X = population[list(feature_names)]
    return ReasonReference.from_population(oriented(actionable(contributions(booster, X), X), sign), X, feature_names)
