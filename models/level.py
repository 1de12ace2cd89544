"""Level anchoring of value predictions: rescale their total to an anchor's total when that helps.

A LightGBM value model learns the level of spend from training snapshots; when the customers
scored are older (or younger) than the ones it learned from, its total drifts although its
ranking holds. A buy-till-you-die model (models/btyd.py) fitted on the scored population itself
gets the level from that population. `LevelAnchor` decides on out-of-time validation data,
never on the period being scored, whether to trust the anchor's level:

Rule: on validation, bias_model = 100 (sum pred - sum y) / sum y and bias_anchored =
100 (sum anchor - sum y) / sum y (the anchored total equals the anchor's total). The anchor is
used only if |bias_anchored| <= |bias_model| - min_gain_pct, i.e. it lowers the absolute
aggregate bias by at least `min_gain_pct` percentage points (mode "auto"). Mode "always" uses the
anchor whenever both biases are measurable, for data where validation cannot show the drift: a
validation snapshot a month after the training ones is as young as they are, while the scored
population may be much older (decide it on a backtest before the as-of date, as
benchmarks/cdnow/backtest.py does); mode "never" never uses it. When used, every prediction of the
scored population is multiplied by one factor = sum anchor / sum pred over that population's rows
where both are finite; ranks are unchanged, and the same factor applies to margin and to the
interval bounds. When it is not used, the factor is 1.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

from models.metrics import aggregate_bias_pct

logger = logging.getLogger(__name__)

AnchorMode = Literal["auto", "always", "never"]
ANCHOR_MODES = ("auto", "always", "never")


def _bias_pct(actual: np.ndarray, predicted: np.ndarray) -> float:
    """aggregate_bias_pct, or NaN where it cannot be measured: no rows, or a prediction missing."""
    return aggregate_bias_pct(actual, predicted) if len(actual) and np.isfinite(predicted).all() else float("nan")


def anchor_factor(pred: np.ndarray, anchor: np.ndarray) -> float:
    """sum(anchor) / sum(pred) over rows where both are finite; NaN when either total is not positive.

    The totals are exactly rounded (math.fsum), so the factor does not depend on the order of
    the rows: scoring streams customers in no fixed order, and a rerun must give the same scores.
    """
    ok = np.isfinite(pred) & np.isfinite(anchor)
    pred_total, anchor_total = math.fsum(pred[ok]), math.fsum(anchor[ok])
    return anchor_total / pred_total if pred_total > 0 and anchor_total > 0 else float("nan")


def _as_float_array(values: object, name: str) -> np.ndarray:
    """values as a 1-d float array, or a ValueError naming the argument."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"LevelAnchor: {name} must be one-dimensional, got shape {array.shape}")
    return array


def _p90(values: object) -> float:
    """90th percentile of the finite values; NaN when there are none (or no values were given)."""
    if values is None:
        return float("nan")
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    return float(np.percentile(array, 90)) if len(array) else float("nan")


class LevelAnchor:
    """Decide on validation data whether to rescale value predictions to an anchor's total."""

    def __init__(self, min_gain_pct: float = 2.0, mode: AnchorMode = "auto") -> None:
        if min_gain_pct < 0:
            raise ValueError(f"LevelAnchor: min_gain_pct must be >= 0 percentage points, got {min_gain_pct}")
        if mode not in ANCHOR_MODES:
            raise ValueError(f"LevelAnchor: mode must be one of {ANCHOR_MODES}, got {mode!r}")
        self.min_gain_pct = min_gain_pct
        self.mode = mode

    def fit(self, y_val: object, pred_val: object, anchor_val: object, tenure_train: object = None) -> LevelAnchor:
        """Measure both aggregate biases on validation and set use_anchor_ by the module's rule.

        `tenure_train`: days since the first order of the training rows, for the ageing test of
        `uses_anchor_for` (without it only the validation rule applies).
        """
        y, pred, anchor = (_as_float_array(v, n) for v, n in
                           ((y_val, "y_val"), (pred_val, "pred_val"), (anchor_val, "anchor_val")))
        if not len(y) == len(pred) == len(anchor):
            raise ValueError(f"LevelAnchor.fit: y_val, pred_val, anchor_val have lengths "
                             f"{len(y)}, {len(pred)}, {len(anchor)}; give one value per validation customer")
        self.factor_val_ = anchor_factor(pred, anchor)
        self.bias_model_pct_ = _bias_pct(y, pred)
        anchored = pred * self.factor_val_ if np.isfinite(self.factor_val_) else np.full_like(pred, np.nan)
        self.bias_anchored_pct_ = _bias_pct(y, anchored)
        measurable = np.isfinite(self.bias_model_pct_) and np.isfinite(self.bias_anchored_pct_)
        lowers_bias = measurable and abs(self.bias_anchored_pct_) <= abs(self.bias_model_pct_) - self.min_gain_pct
        self.use_anchor_ = bool(measurable and self.mode != "never" and (self.mode == "always" or lowers_bias))
        self.tenure_train_p90_ = _p90(tenure_train)
        if not measurable:
            logger.warning("LevelAnchor.fit: aggregate bias not measurable on validation (actual total %.4g, "
                           "anchor factor %.4g); the anchor is not used", float(np.sum(y)), self.factor_val_)
        logger.info("LevelAnchor (%s): validation bias %.2f%% (model) vs %.2f%% (anchored): anchor %s", self.mode,
                    self.bias_model_pct_, self.bias_anchored_pct_, "used" if self.use_anchor_ else "not used")
        return self

    def uses_anchor_for(self, tenure_scored: object) -> bool:
        """Whether scoring these customers (days since their first order) uses the anchor."""
        if self.use_anchor_:
            return True
        p90 = getattr(self, "tenure_train_p90_", float("nan"))
        tenure = _as_float_array(tenure_scored, "tenure_scored")
        tenure = tenure[np.isfinite(tenure)]
        if self.mode != "auto" or not np.isfinite(p90) or not len(tenure):
            return False
        aged = float(np.median(tenure)) > p90
        if aged:
            logger.info("LevelAnchor: median tenure of the scored customers %.0f days > 90th percentile of the "
                        "training rows %.0f days: the population aged beyond the training snapshots; anchor used",
                        float(np.median(tenure)), p90)
        return aged

    def transform(self, pred: object, anchor: object, tenure_scored: object = None) -> tuple[np.ndarray, float]:
        """(pred x factor, factor): factor = sum(anchor) / sum(pred) when the anchor is used, else 1.

        `tenure_scored` (days since first order of the scored rows) applies the ageing test of
        `uses_anchor_for`; without it only the validation decision counts.
        """
        if not hasattr(self, "use_anchor_"):
            raise RuntimeError("LevelAnchor.transform called before fit; call fit(y_val, pred_val, anchor_val) first")
        values = _as_float_array(pred, "pred")
        used = self.use_anchor_ if tenure_scored is None else self.uses_anchor_for(tenure_scored)
        if not used:
            return values, 1.0
        anchors = _as_float_array(anchor, "anchor")
        if len(anchors) != len(values):
            raise ValueError(f"LevelAnchor.transform: pred has {len(values)} rows, anchor {len(anchors)}; "
                             "give one anchor value per scored customer")
        factor = anchor_factor(values, anchors)
        if not np.isfinite(factor):
            logger.warning("LevelAnchor.transform: anchor or prediction total is not positive; predictions "
                           "are left unscaled (factor 1)")
            return values, 1.0
        return values * factor, factor
