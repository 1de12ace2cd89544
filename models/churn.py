"""Churn model: LightGBM probability of no order within the churn horizon, calibrated.

Two objectives (ChurnParams.objective). "binary" classifies churn: the booster's raw score is
the log-odds of churn. "poisson" models the number of order days in the horizon: the raw
score is log(expected order days) and P(no order) = exp(-expected order days), as a Poisson
count reads it. Either way calibration works on churn log-odds, and `risk_sign` turns the
booster's contributions into contributions to churn risk (a feature that raises expected
orders lowers the risk), so reasons read the same for both.
"""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from models.boosting import (
    check_feature_matrix,
    check_target,
    lightgbm_params,
    train_early_stopped,
)
from models.design import DesignChoice, with_churn_blend
from models.drift_profile import drift_profile
from models.metrics import expected_calibration_error
from models.params import ChurnParams
from models.reason_reference import reason_reference_of

logger = logging.getLogger(__name__)


def sigmoid(raw: np.ndarray) -> np.ndarray:
    """Logistic function of log-odds."""
    return 1.0 / (1.0 + np.exp(-np.asarray(raw, dtype=float)))


def churn_log_odds_from_log_rate(log_rate: np.ndarray) -> np.ndarray:
    """Log-odds of no event for a Poisson count with log expected count `log_rate`.

    P(0) = exp(-rate), so the log-odds are -rate - log(1 - exp(-rate)); expm1 keeps them exact
    for tiny rates (where they approach -log(rate)). The clip keeps them finite for the calibrators.
    """
    rate = np.exp(np.clip(np.asarray(log_rate, dtype=float), -30.0, 30.0))
    return -rate - np.log(-np.expm1(-rate))


def fit_calibrator(method: str, raw: np.ndarray, y: np.ndarray) -> Any:
    """Fit an isotonic or Platt (sigmoid) map from raw log-odds to probability."""
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
    if method == "sigmoid":
        return LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
    raise ValueError(f"calibration method '{method}' unknown; use isotonic or sigmoid")


def apply_calibrator(calibrator: Any, raw: np.ndarray) -> np.ndarray:
    """Calibrated probabilities from raw log-odds."""
    if isinstance(calibrator, IsotonicRegression):
        return np.clip(calibrator.predict(raw), 0.0, 1.0)
    return calibrator.predict_proba(raw.reshape(-1, 1))[:, 1]


def cross_fitted_calibration(
    method: str, raw: np.ndarray, y: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """Calibrated probability of each validation row from a calibrator fit on the other folds."""
    out = np.empty_like(raw, dtype=float)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_idx, held_idx in splitter.split(raw.reshape(-1, 1), y):
        calibrator = fit_calibrator(method, raw[fit_idx], y[fit_idx])
        out[held_idx] = apply_calibrator(calibrator, raw[held_idx])
    return out


class ChurnModel:
    """LightGBM churn model (binary or Poisson count) with early stopping and honest calibration.

    Calibration is decided and measured on the out-of-time validation snapshot by
    cross-fitting: each validation row gets a probability from a calibrator fitted on
    the other folds, so `calibration_report_` and `validation_proba_` are honest;
    the calibrator used for scoring is then refit on the whole validation snapshot.
    Early stopping also uses that snapshot, so validation AUC is mildly optimistic.
    """

    def __init__(self, params: ChurnParams | None = None) -> None:
        self.params = params or ChurnParams()

    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        X_val: pd.DataFrame,
        y_val: Any,
        feature_names: list[str],
        order_days: Any = None,
        order_days_val: Any = None,
        *,
        reason_population: pd.DataFrame | None = None,
        design: DesignChoice | None = None,
        blend_reference: np.ndarray | None = None,
        blend_judged_on: np.ndarray | None = None,
    ) -> ChurnModel:
        """Train on earlier snapshots, early-stop and calibrate on the out-of-time ones.

        `order_days` / `order_days_val` (label_churn_order_days) are the targets of the
        "poisson" objective and must agree with the churn labels (0 order days = churned);
        the 0/1 labels still choose and measure the calibration.

        What scoring needs besides the booster is fitted here too:
        `reason_population` (customers with history of the latest validation snapshot) gives
        `reason_reference_`, the population reasons are compared with, and `drift_profile_`, the
        reference scoring runs measure drift against (models/drift_profile.py; both None without it);
        `design` (the design search's record) is kept as `design_`, with BG/NBD's share
        `blend_weight_` chosen against `blend_reference` (BG/NBD's validation probabilities) on
        `blend_judged_on`, or on this model's own validation probabilities when not given
        (share 0 without a design or a reference).
        """
        matrix = check_feature_matrix(X, feature_names, "ChurnModel.fit X")
        matrix_val = check_feature_matrix(X_val, feature_names, "ChurnModel.fit X_val")
        target = self._binary_target(y, len(matrix), "y")
        target_val = self._binary_target(y_val, len(matrix_val), "y_val")
        self.objective_ = self.params.objective
        if self.objective_ == "poisson":
            fit_target = self._order_day_target(order_days, target, "order_days")
            fit_target_val = self._order_day_target(order_days_val, target_val, "order_days_val")
            lgb_params = lightgbm_params(self.params, "poisson", "poisson")
        else:
            fit_target, fit_target_val = target, target_val
            extra = {"is_unbalance": True} if self.params.class_weighting else {}
            lgb_params = lightgbm_params(self.params, "binary", self._early_stopping_metric(), **extra)
        self.booster_: lgb.Booster = train_early_stopped(
            lgb_params, self.params.n_estimators, self.params.early_stopping_rounds,
            matrix, fit_target, matrix_val, fit_target_val, ensemble_size=self.params.ensemble_size,
        )
        self.feature_names_ = list(feature_names)
        self.best_iteration_ = int(self.booster_.best_iteration)
        self._calibrate(self.churn_log_odds(self.predict_raw(matrix_val)), target_val)
        self.reason_reference_ = (None if reason_population is None else
                                  reason_reference_of(self.booster_, self.risk_sign, reason_population, feature_names))
        self.drift_profile_ = (None if reason_population is None else drift_profile(
            reason_population, feature_names, {"p_churn": self.predict_proba(reason_population[feature_names])}))
        if design is not None:
            judged_on = self.validation_proba_ if blend_judged_on is None else blend_judged_on
            design = with_churn_blend(design, target_val, judged_on, blend_reference)
        self.design_ = None if design is None else design.as_dict()
        self.blend_weight_ = 0.0 if design is None else design.blend_weight
        return self

    @property
    def risk_sign(self) -> float:
        """+1 when the booster's raw score rises with churn risk (binary), -1 when it falls (poisson)."""
        return -1.0 if self.objective_ == "poisson" else 1.0

    def churn_log_odds(self, raw: np.ndarray) -> np.ndarray:
        """Uncalibrated log-odds of churn from the booster's raw score."""
        raw = np.asarray(raw, dtype=float)
        return churn_log_odds_from_log_rate(raw) if self.objective_ == "poisson" else raw

    @staticmethod
    def _order_day_target(order_days: Any, churned: np.ndarray, name: str) -> np.ndarray:
        """Check order-day counts: given, non-negative whole numbers, zero exactly where churned."""
        if order_days is None:
            raise ValueError(
                f"ChurnModel.fit {name}: the poisson objective needs the order days in the horizon "
                "(label_churn_order_days); pass order_days and order_days_val or use objective binary"
            )
        counts = check_target(order_days, churned.size, f"ChurnModel.fit {name}")
        bad = np.flatnonzero((counts < 0) | (counts != np.round(counts)) | ((counts == 0) != (churned == 1)))
        if bad.size:
            raise ValueError(
                f"ChurnModel.fit {name}: {bad.size} rows whose order days are not a non-negative whole "
                f"number that is 0 exactly when the churn label is 1 (first at row {bad[0]}: "
                f"{counts[bad[0]]} order days, churn label {churned[bad[0]]:.0f})"
            )
        return counts

    def _early_stopping_metric(self) -> str:
        """Log-loss, or AUC when classes are reweighted (their log-loss stops far too early)."""
        if self.params.early_stopping_metric != "auto":
            return self.params.early_stopping_metric
        return "auc" if self.params.class_weighting else "binary_logloss"

    @staticmethod
    def _binary_target(y: Any, n_rows: int, name: str) -> np.ndarray:
        """Check a 0/1 target with both classes present."""
        arr = check_target(y, n_rows, f"ChurnModel.fit {name}")
        values = np.unique(arr)
        if not np.isin(values, [0.0, 1.0]).all() or values.size < 2:
            raise ValueError(
                f"ChurnModel.fit {name}: churn labels must be 0/1 with both classes present, "
                f"found values {values[:5].tolist()}"
            )
        return arr

    def _calibrate(self, raw_val: np.ndarray, y_val: np.ndarray) -> None:
        """Choose, measure (cross-fitted) and fit the calibration map from churn log-odds on validation data."""
        p = self.params
        raw_proba = sigmoid(raw_val)
        report: dict[str, Any] = {
            "ece_before": expected_calibration_error(y_val, raw_proba, p.ece_bins),
            "brier_before": float(brier_score_loss(y_val, raw_proba)),
            "cross_fit_folds": p.calibration_folds,
        }
        candidates = ["isotonic", "sigmoid"] if p.calibration == "auto" else [p.calibration]
        smallest_class = int(min(y_val.sum(), y_val.size - y_val.sum()))
        if smallest_class < p.calibration_folds:
            # too few rows of one class to cross-fit: an unmeasured calibration is not applied
            logger.warning(
                "churn calibration skipped: validation has %d rows of its smaller class, "
                "fewer than calibration_folds=%d", smallest_class, p.calibration_folds,
            )
            candidates = []
        fitted = {
            m: cross_fitted_calibration(m, raw_val, y_val, p.calibration_folds, p.seed)
            for m in candidates if m != "none"
        }
        for m, proba in fitted.items():
            report[f"ece_{m}"] = expected_calibration_error(y_val, proba, p.ece_bins)
            report[f"brier_{m}"] = float(brier_score_loss(y_val, proba))
        method = self._choose_method(report, list(fitted))
        self.calibration_applied_ = method != "none"
        self.calibration_method_ = method
        self.calibrator_ = (
            fit_calibrator(method, raw_val, y_val) if self.calibration_applied_ else None
        )
        self.validation_proba_ = fitted[method] if self.calibration_applied_ else raw_proba
        report.update(
            method=method,
            ece_after=expected_calibration_error(y_val, self.validation_proba_, p.ece_bins),
            brier_after=float(brier_score_loss(y_val, self.validation_proba_)),
        )
        self.calibration_report_ = report
        logger.info("churn calibration: %s", report)

    def _choose_method(self, report: dict[str, Any], fitted: list[str]) -> str:
        """auto: the lowest cross-fitted Brier, kept only if it lowers Brier and ECE enough."""
        if not fitted:
            return "none"
        if self.params.calibration != "auto":
            return self.params.calibration
        best = min(fitted, key=lambda m: report[f"brier_{m}"])
        better_brier = report[f"brier_{best}"] < report["brier_before"]
        ece_gain = report["ece_before"] - report[f"ece_{best}"]
        return best if better_brier and ece_gain >= self.params.calibration_min_ece_gain else "none"

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The booster's raw score (what contributions add up to): churn log-odds, or log expected order days."""
        matrix = check_feature_matrix(X, self.feature_names_, "ChurnModel.predict_raw")
        return np.asarray(self.booster_.predict(matrix, raw_score=True))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churn, one value per row (not an n x 2 array)."""
        return self.proba_from_raw(self.predict_raw(X))

    def proba_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probability from the raw score of `predict_raw` (scoring reuses the raw for SHAP checks)."""
        log_odds = self.churn_log_odds(raw)
        if self.calibrator_ is None:
            return sigmoid(log_odds)
        return apply_calibrator(self.calibrator_, log_odds)
