"""Score adjustments against a buy-till-you-die reference fitted once on the scored population.

`BtydReference` is BG/NBD + Gamma-Gamma fitted once per run on the population's inputs; it
gives the BTYD feature columns a champion reads and the reference both adjustments use.
Both adjustments are optional and decided before scoring (training's level anchor, the config's
blend weights, else the design search's). They act on the run's numbers table after the models
have scored every chunk, so
the reasons keep explaining the LightGBM part of each score. Revenue, margin and the value
interval of a customer always move by one factor, and net value and CLV are recomputed, so
the published columns stay consistent with each other.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd

from models.blend import blend_churn_probabilities, blend_values
from models.btyd import BTYD_FIT_ROWS, FIRST_ORDER_AGE, BtydFeatures
from models.valuation import clv, net_value
from serving.settings import ScoringSettings

log = logging.getLogger(__name__)

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


class BtydReference:
    """BG/NBD + Gamma-Gamma fitted once on the scored population's inputs (customer_id + BTYD_INPUT_COLUMNS).

    The fit does not depend on the horizon, so one fit serves every horizon: the champions'
    BTYD columns and the churn and value horizons of the anchor and the blend.
    """

    def __init__(self, inputs: pd.DataFrame) -> None:
        self.inputs = inputs
        self._fitted = BtydFeatures(1, max_fit_rows=BTYD_FIT_ROWS).fit(inputs)

    def columns(self, frame: pd.DataFrame, horizons: list[int]) -> pd.DataFrame:
        """The BTYD columns of each horizon for the rows of `frame` (btyd_p_alive once)."""
        both = pd.concat([self._fitted.with_horizon(h).transform(frame) for h in horizons], axis=1)
        return both.loc[:, ~both.columns.duplicated()]

    def with_columns(self, chunk: pd.DataFrame, horizons: list[int]) -> pd.DataFrame:
        """The chunk with the BTYD columns of `horizons` appended."""
        return pd.concat([chunk, self.columns(chunk, horizons)], axis=1)

    def columns_only(self) -> BtydReference:
        """The same fit without the population's inputs: what a worker needs to add BTYD columns to its chunks.

        The inputs (a row per customer) stay with the caller; shipping them to every Spark task
        would copy the population once per executor for nothing.
        """
        shallow = copy.copy(self)
        shallow.inputs = self.inputs.iloc[:0]
        return shallow

    def outputs(self, customer_ids: np.ndarray, horizons: tuple[int, ...]) -> pd.DataFrame:
        """The population's BTYD columns for `horizons`, in the order of `customer_ids` (NaN for a customer without inputs)."""
        by_customer = self.columns(self.inputs, sorted(set(horizons))).set_axis(self.inputs["customer_id"].to_numpy(), axis=0)
        return by_customer.reindex(customer_ids)

    def tenure(self) -> np.ndarray:
        """Days since the first order of the population's customers (the level anchor's ageing test)."""
        return self.inputs[FIRST_ORDER_AGE].to_numpy(dtype=float)


def adjusted_by_reference(numbers: pd.DataFrame, reference: BtydReference, anchor, weights: tuple[float, float],
                          settings: ScoringSettings) -> pd.DataFrame:
    """The level anchor (when it applies), then the blend of each score with the reference at `weights` (churn, value).

    The anchor rescales value so its total matches BG/NBD's (ranks unchanged); the blend then
    mixes each score with BG/NBD's.
    """
    churn_h, value_h = settings.churn_horizon_days, settings.value_horizon_days
    outputs = reference.outputs(numbers["customer_id"].to_numpy(), (churn_h, value_h))
    expected_revenue = outputs[f"btyd_expected_revenue_{value_h}d"].to_numpy()
    if anchor is not None and anchor.uses_anchor_for(reference.tenure()):
        scored = numbers["expected_revenue"].notna().to_numpy()
        _, factor = anchor.transform(numbers.loc[scored, "expected_revenue"].to_numpy(), expected_revenue[scored],
                                     tenure_scored=reference.tenure())
        numbers = value_scaled(numbers, factor, settings)
        log.info("value level anchored to BG/NBD: factor %.4f", factor)
    churn_w, value_w = weights
    if churn_w > 0 or value_w > 0:
        numbers = blended_with_reference(numbers, outputs[f"btyd_p_no_order_{churn_h}d"].to_numpy(), expected_revenue,
                                         churn_w, value_w, settings)
        log.info("scores blended with BG/NBD: churn weight %.2f, value weight %.2f", churn_w, value_w)
    return numbers
