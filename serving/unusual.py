"""Reasons that single a customer out: a feature is a reason only where the customer is unusual.

A SHAP contribution says how far a feature moved this customer's score from the average
prediction; it does not say that the customer differs from others. A model that leans on
payment behaviour gives most customers a small positive contribution for "paid 2 days late
on average", so ranked by contribution alone, late payment became a reason raising churn
risk for nearly every churner, whatever made them leave. The rule here keeps a feature as a
reason raising (lowering) a score only when the customer's own value lies beyond the
`percentile`-th percentile of a reference population in the direction in which the feature
raises (lowers) that score:

- numeric features whose contributions rise or fall with their value (correlation of the
  value's rank with the contribution at least MIN_DIRECTION_CORRELATION in size over the
  population):
  the direction is that sign. "Pays later than 80% of customers" is a reason raising churn
  risk; "pays 2 days late", the population's usual, is none, however large its contribution.
- other features (categories such as industry, numbers with no monotone effect): their
  contribution itself must lie beyond the percentile of that feature's contributions.

The reference population is the model's own: the customers of the latest training snapshot,
summarised at training time (`ReasonReference.from_population`) and kept with the model, so
every chunk and every run scored by a model applies the same thresholds, whatever the order
in which customers are scored, and scoring spends nothing on a pass over the population.
Percentiles are kept for every whole percent, so the configured percentile can change
without retraining. Contributions themselves are never altered: the rule only chooses which
of them become sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

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
        if _is_numeric(X[name]):
            out[:, j] = X[name].to_numpy(dtype=float, na_value=np.nan)
    return out


def known_matrix(X: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """n x features: True where the feature has a value (what a reason can state)."""
    return X[list(names)].notna().to_numpy()


def unusual_only(contrib: np.ndarray, X: pd.DataFrame, reference: ReasonReference, percentile: int) -> np.ndarray:
    """Feature contributions (n x features, no bias) with those of usual values set to 0.

    A positive contribution stays where the customer's value lies beyond the `percentile`-th
    percentile in the feature's raising direction (value > P[percentile] when higher values
    raise the score, value < P[100 - percentile] when lower ones do); a negative one where it
    lies beyond it in the lowering direction. Features without a direction compare the
    contribution with the same percentiles of their own contributions. Strict inequalities:
    a value shared by more than the other side's share of the population (most customers have
    no complaint) is never unusual.
    """
    if not 50 <= percentile <= 100:
        raise ValueError(f"unusual reasons: percentile={percentile} must be a whole number from 50 to 100")
    names = reference.feature_names
    contrib = np.asarray(contrib, dtype=float)
    if contrib.shape[1] != len(names):
        raise ValueError(f"unusual reasons: {contrib.shape[1]} contribution columns but the reference has {len(names)} features")
    # Feature by feature on one features x rows copy, zeroed in place: a column of values at a
    # time costs ~4x less than the whole numeric matrix, and each new full-size array costs
    # more in page faults here than the comparisons themselves. Returned as its transpose (a view).
    by_feature = np.ascontiguousarray(contrib.T)
    for j, name in enumerate(names):
        c = by_feature[j]
        if not c.any():
            continue
        raising, lowering = _unusual_sides(X[name], c, reference, j, percentile)
        c[~(((c > 0) & raising) | ((c < 0) & lowering))] = 0.0
    return by_feature.T


def _unusual_sides(column: pd.Series, c: np.ndarray, reference: ReasonReference, j: int,
                   percentile: int) -> tuple[np.ndarray, np.ndarray]:
    """Where feature j would be unusual enough to raise, and to lower, the score."""
    high, low = reference.value_percentiles[j, percentile], reference.value_percentiles[j, 100 - percentile]
    direction = reference.direction[j]
    if direction == 0 or np.isnan(high) or not _is_numeric(column):
        return c > reference.contribution_percentiles[j, percentile], c < reference.contribution_percentiles[j, 100 - percentile]
    x = column.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        above, below = x > high, x < low
    return (above, below) if direction > 0 else (below, above)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not isinstance(column.dtype, pd.CategoricalDtype)
