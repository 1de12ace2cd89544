"""Payment-risk model: LightGBM probability that an invoice the customer is issued in the next H days
is paid more than N days after its due date (or not at all), calibrated.

It is the churn model's binary classifier on another label (features/payment_labels.py): the
same early stopping on the out-of-time snapshot, the same cross-fitted calibration and the same
fitted state for reasons, so scoring explains it with exact TreeSHAP like the other scores.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from models.churn import ChurnModel
from models.drift_profile import drift_profile
from models.params import ChurnParams

PAYMENT_SCORE = "p_pay_late"


class PaymentRiskModel(ChurnModel):
    """Binary LightGBM of label_pay_late; the booster's raw score is the log-odds of paying late."""

    def __init__(self, params: ChurnParams | None = None) -> None:
        # A count objective has no meaning here: paying late is a yes or no per customer and window.
        super().__init__((params or ChurnParams()).model_copy(update={"objective": "binary"}))

    def fit(self, X: pd.DataFrame, y: Any, X_val: pd.DataFrame, y_val: Any, feature_names: list[str], *,
            reason_population: pd.DataFrame | None = None) -> PaymentRiskModel:
        """Train on earlier snapshots, early-stop and calibrate on the out-of-time ones (ChurnModel.fit, binary)."""
        super().fit(X, y, X_val, y_val, feature_names, reason_population=reason_population)
        self.drift_profile_ = (None if reason_population is None else drift_profile(
            reason_population, feature_names, {PAYMENT_SCORE: self.predict_proba(reason_population[feature_names])}))
        return self
