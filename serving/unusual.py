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
  contribution itself must lie beyond the percentile of that feature's contributions;
- a number with one value for every reference customer (a property of the date, such as last
  year's season share of all customers) is never a reason: nobody stands out on it.

The reference population is the model's own: the customers of its latest validation snapshot,
summarised when the model is fitted (models/reason_reference.py) and kept with it, so
every chunk and every run scored by a model applies the same thresholds, whatever the order
in which customers are scored, and scoring spends nothing on a pass over the population.
Percentiles are kept for every whole percent, so the configured percentile can change
without retraining. Contributions themselves are never altered: the rule only chooses which
of them become sentences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.column_kinds import is_numeric
from models.reason_reference import ReasonReference


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
    if reference.value_percentiles[j, 0] == reference.value_percentiles[j, 100]:
        # One value for every reference customer (last year's season share of all customers): it describes
        # the date, not the customer, so no customer stands out on it.
        nowhere = np.zeros(len(c), dtype=bool)
        return nowhere, nowhere
    direction = reference.direction[j]
    if direction == 0 or np.isnan(high) or not is_numeric(column):
        return c > reference.contribution_percentiles[j, percentile], c < reference.contribution_percentiles[j, 100 - percentile]
    x = column.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        above, below = x > high, x < low
    return (above, below) if direction > 0 else (below, above)
