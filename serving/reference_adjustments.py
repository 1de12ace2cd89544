"""Score adjustments against a buy-till-you-die reference fitted on the scored population.

Both are optional and decided before scoring (training's level anchor, the config's blend
weights). They act on the run's numbers table after the models have scored every chunk, so
the reasons keep explaining the LightGBM part of each score. Revenue, margin and the value
interval of a customer always move by one factor, and net value and CLV are recomputed, so
the published columns stay consistent with each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.blend import blend_churn_probabilities, blend_values
from models.valuation import clv, net_value
from serving.scoring import ScoringSettings

SCALED_WITH_REVENUE = ("expected_revenue", "expected_margin", "value_p10", "value_p90")


def value_scaled(numbers: pd.DataFrame, factor: np.ndarray | float, settings: ScoringSettings) -> pd.DataFrame:
    """Revenue, margin and interval times `factor` (one per row, or one for all); net value and CLV recomputed."""
    out = numbers.copy()
    for column in SCALED_WITH_REVENUE:
        out[column] = out[column].to_numpy(dtype=float) * factor
    out["net_value"] = net_value(out["expected_margin"].to_numpy(), out["cost_to_serve"].to_numpy())
    out["clv"] = clv(out["net_value"].to_numpy(), settings.value_horizon_days, settings.annual_discount_rate)
    return out


def blended_with_reference(
    numbers: pd.DataFrame, p_no_order: np.ndarray, expected_revenue: np.ndarray,
    churn_weight: float, value_weight: float, settings: ScoringSettings,
) -> pd.DataFrame:
    """p_churn and value blended with the reference's (row-aligned with `numbers`) by the given shares.

    Where the model's revenue is not positive the customer's value is left as it is: a
    factor of blended over model revenue is undefined there.
    """
    out = numbers
    if churn_weight > 0:
        out = out.copy()
        out["p_churn"] = blend_churn_probabilities(out["p_churn"].to_numpy(dtype=float), p_no_order, churn_weight)
    if value_weight > 0:
        revenue = out["expected_revenue"].to_numpy(dtype=float)
        blended = blend_values(revenue, expected_revenue, value_weight)
        positive = np.isfinite(revenue) & (revenue > 0)
        factor = np.where(positive, blended / np.where(positive, revenue, 1.0), 1.0)
        out = value_scaled(out, factor, settings)
    return out
