"""Value model: expected revenue, margin and cost to serve in the horizon, with a P10-P90 band."""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from models.boosting import (
    BinnedMatrices,
    added_boosters,
    check_feature_matrix,
    check_target,
    dataset_params,
    lightgbm_params,
    train_early_stopped,
)
from models.design import DesignChoice, with_value_blend
from models.drift_profile import drift_profile
from models.level import LevelAnchor
from models.metrics import interval_coverage
from models.params import ValueParams
from models.reason_reference import reason_reference_of

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = [
    "expected_revenue", "expected_margin", "cost_to_serve", "value_p10", "value_p90"
]


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Finite-sample conformal quantile: the ceil((n + 1) level) / n empirical quantile."""
    n = scores.size
    return float(np.quantile(scores, min(1.0, np.ceil((n + 1) * level) / n), method="higher"))


def conformal_adjustments(
    y: np.ndarray, low: np.ndarray, high: np.ndarray, quantiles: tuple[float, float]
) -> tuple[float, float]:
    """Asymmetric CQR shifts (a, b): P(y < low - a) <= q_low and P(y > high + b) <= 1 - q_high.

    Each end is conformalised on its own (Romano et al. 2019, asymmetric variant):
    spend is skewed, so a symmetric shift would fix one tail by breaking the other.
    """
    q_low, q_high = quantiles
    return conformal_quantile(low - y, 1.0 - q_low), conformal_quantile(y - high, q_high)


class PointRegressor:
    """One LightGBM regressor of a non-negative-mean target, with the chosen loss.

    tweedie / log_l2 need y >= 0, so the target is clipped at 0 (returns can make revenue
    or margin negative) and predictions are multiplied by `scale_` = sum(y) / sum(clip(y, 0))
    of the training labels, which restores the negative mass on aggregate. log_l2 fits
    log1p(y) with L2 and maps back with expm1 times Duan's smearing factor.
    """

    def __init__(self, params: ValueParams, name: str) -> None:
        self.params = params
        self.name = name

    def fit(
        self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray,
        binned: BinnedMatrices | None = None,
    ) -> PointRegressor:
        """Fit with early stopping on the validation snapshot (on `binned` X / X_val when given)."""
        p = self.params
        clip = p.objective in ("tweedie", "log_l2")
        y_fit, y_val_fit = (np.clip(y, 0, None), np.clip(y_val, 0, None)) if clip else (y, y_val)
        positive_total = y_fit.sum()
        self.scale_ = float(y.sum() / positive_total) if clip and positive_total > 0 else 1.0
        self.clipped_rows_ = int((y < 0).sum()) if clip else 0
        if p.objective == "tweedie":
            lgb_params = lightgbm_params(
                p, "tweedie", "tweedie", tweedie_variance_power=p.tweedie_variance_power
            )
        else:
            lgb_params = lightgbm_params(p, "regression", "l2")
        if p.objective == "log_l2":
            y_fit, y_val_fit = np.log1p(y_fit), np.log1p(y_val_fit)
        self.booster_ = train_early_stopped(
            lgb_params, p.n_estimators, p.early_stopping_rounds, X, y_fit, X_val, y_val_fit,
            binned=binned, ensemble_size=p.ensemble_size,
        )
        self.smearing_ = 1.0
        if p.objective == "log_l2":
            residuals = y_fit - self.booster_.predict(X, raw_score=True)
            self.smearing_ = float(np.mean(np.exp(residuals)))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected target on the original money scale."""
        return self.predict_from_raw(self.booster_.predict(X, raw_score=True))

    def predict_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Expected target from the booster's raw score (log scale for tweedie and log_l2)."""
        raw = np.asarray(raw, dtype=float)
        if self.params.objective == "log_l2":
            return np.expm1(raw) * self.smearing_ * self.scale_
        if self.params.objective == "tweedie":
            return np.exp(raw) * self.scale_
        return raw * self.scale_


class FrequencySeverityRegressor:
    """Horizon revenue as order days x revenue per order day, in one booster on the log scale.

    A Poisson booster of the order days in the value horizon (every customer) and a Gamma
    booster of revenue per order day (customers who bought and spent > 0), both log link,
    are added tree by tree (`added_boosters`): the raw score is log(expected order days) +
    log(expected revenue per order day), so exact TreeSHAP of that one booster explains
    log expected revenue and adds up, as the direct Tweedie booster's does.

    `scale_` sets the predicted total on the training rows to their net revenue: the product
    of the two fitted means is not the mean of the product (how often and how much a customer
    buys are not independent given the features), and revenue also comes from rows no new
    order day carries (lines of orders begun before the snapshot, returns). One factor
    restores the total, as the direct model's scale restores the negative mass.
    """

    def __init__(self, params: ValueParams) -> None:
        self.params = params

    def fit(
        self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray,
        order_days: np.ndarray, order_days_val: np.ndarray, binned: BinnedMatrices | None = None,
    ) -> FrequencySeverityRegressor:
        """Fit both halves with early stopping on the validation snapshot (severity on its buyers)."""
        p = self.params
        binned = binned or BinnedMatrices(X, X_val, dataset_params(p))
        buyers, buyers_val = (order_days > 0) & (y > 0), (order_days_val > 0) & (y_val > 0)
        if not buyers.any() or not buyers_val.any():
            raise ValueError(
                "ValueModel.fit: revenue_model frequency_severity needs customers who bought (order days > 0, "
                f"revenue > 0) in the value horizon, in training ({int(buyers.sum())}) and validation "
                f"({int(buyers_val.sum())}); use revenue_model: direct"
            )
        frequency = train_early_stopped(
            lightgbm_params(p, "poisson", "poisson"), p.n_estimators, p.early_stopping_rounds,
            None, order_days, None, order_days_val, binned=binned, ensemble_size=p.ensemble_size,
        )
        severity = train_early_stopped(
            lightgbm_params(p, "gamma", "gamma"), p.n_estimators, p.early_stopping_rounds,
            None, _per_order_day(y, order_days), None, _per_order_day(y_val, order_days_val),
            binned=binned, train_rows=np.flatnonzero(buyers), valid_rows=np.flatnonzero(buyers_val),
            ensemble_size=p.ensemble_size,
        )
        self.booster_ = added_boosters([frequency, severity])
        self.frequency_trees_, self.severity_trees_ = frequency.num_trees(), severity.num_trees()
        fitted_total, net_total = float(np.exp(self.booster_.predict(X, raw_score=True)).sum()), float(y.sum())
        if not (np.isfinite(fitted_total) and net_total > 0):
            raise ValueError(
                f"ValueModel.fit: revenue_model frequency_severity cannot set its level: the training rows' net "
                f"revenue is {net_total:.6g} and the fitted total {fitted_total:.6g} (both must be finite and > 0); "
                "use revenue_model: direct"
            )
        self.scale_ = net_total / fitted_total
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected revenue in the horizon."""
        return self.predict_from_raw(self.booster_.predict(X, raw_score=True))

    def predict_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Expected revenue from the added booster's raw score (log scale)."""
        return np.exp(np.asarray(raw, dtype=float)) * self.scale_


def _per_order_day(revenue: np.ndarray, order_days: np.ndarray) -> np.ndarray:
    """Revenue per order day where a customer bought; 1.0 elsewhere (rows the severity booster never reads)."""
    return np.where(order_days > 0, revenue / np.maximum(order_days, 1), 1.0).clip(min=1e-9)


class ValueModel:
    """Revenue, margin and (optional) cost-to-serve regressors plus a revenue P10-P90 band.

    Point models use a Tweedie loss by default (zero-inflated, heavy-tailed spend).
    Negative labels (returns) are clipped at 0 for the Tweedie fit and the aggregate is
    rescaled (see PointRegressor), so expected_margin is >= 0 per customer; negative net
    value arises from cost_to_serve. The band comes from small LightGBM quantile models,
    conformalised (asymmetric CQR) on the validation snapshot; coverage and the two miss
    rates are measured by cross-fitting the conformal step, so they are honest. Where
    many customers spend exactly 0, P10 is 0 for them and covers that point mass:
    coverage then exceeds nominal and the share above P90 is the sharper check.
    """

    def __init__(self, params: ValueParams | None = None) -> None:
        self.params = params or ValueParams()

    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        X_val: pd.DataFrame,
        y_val: Any,
        feature_names: list[str],
        *,
        margin: Any,
        margin_val: Any,
        cost_to_serve: Any = None,
        cost_to_serve_val: Any = None,
        order_days: Any = None,
        order_days_val: Any = None,
        reason_population: pd.DataFrame | None = None,
        level_reference: np.ndarray | None = None,
        level_anchor: str = "auto",
        tenure: np.ndarray | None = None,
        design: DesignChoice | None = None,
        blend_reference: np.ndarray | None = None,
        blend_judged_on: np.ndarray | None = None,
    ) -> ValueModel:
        """Fit every target: y is horizon revenue; cost models are fit only when given.

        `order_days` / `order_days_val` (label_value_order_days) are needed by, and only read
        with, revenue_model frequency_severity.

        What scoring needs besides the boosters is fitted here too:
        `reason_population` gives `reason_reference_` and `drift_profile_` (as ChurnModel.fit; the
        score profiled is the expected revenue before any level anchor or blend, as scoring predicts it);
        `level_reference` (BG/NBD + Gamma-Gamma expected revenue of each X_val row) gives
        `level_anchor_`, the decision whether scoring rescales the total to BG/NBD's
        (models/level.py, mode `level_anchor`, ageing judged on the training rows' `tenure`;
        None without a reference); `design` is kept as `design_`, with BG/NBD's share
        `blend_weight_` chosen against `blend_reference` on `blend_judged_on`, or on this
        model's own validation revenue, anchored as scoring anchors it, when not given.
        """
        matrix = check_feature_matrix(X, feature_names, "ValueModel.fit X")
        matrix_val = check_feature_matrix(X_val, feature_names, "ValueModel.fit X_val")
        targets = {"revenue": (y, y_val), "margin": (margin, margin_val)}
        if (cost_to_serve is None) != (cost_to_serve_val is None):
            raise ValueError(
                "ValueModel.fit: give both cost_to_serve and cost_to_serve_val, or neither"
            )
        if cost_to_serve is not None:
            targets["cost_to_serve"] = (cost_to_serve, cost_to_serve_val)
        if self.params.revenue_model == "frequency_severity" and (order_days is None or order_days_val is None):
            raise ValueError(
                "ValueModel.fit: revenue_model frequency_severity needs order_days and order_days_val "
                "(label_value_order_days of the training set)"
            )
        self.feature_names_ = list(feature_names)
        # Several boosters on the same rows: bin the matrices once.
        binned = BinnedMatrices(matrix, matrix_val, dataset_params(self.params))
        revenue = check_target(y, len(matrix), "ValueModel.fit y")
        revenue_val = check_target(y_val, len(matrix_val), "ValueModel.fit y_val")
        self.regressors_: dict[str, PointRegressor | FrequencySeverityRegressor] = {}
        if self.params.revenue_model == "frequency_severity":
            # first, so that unusable order days stop the fit before anything is trained
            self.regressors_["revenue"] = FrequencySeverityRegressor(self.params).fit(
                matrix, revenue, matrix_val, revenue_val,
                check_target(order_days, len(matrix), "ValueModel.fit order_days"),
                check_target(order_days_val, len(matrix_val), "ValueModel.fit order_days_val"), binned,
            )
        for name, (train_y, val_y) in targets.items():
            if name in self.regressors_:
                continue
            train_arr = check_target(train_y, len(matrix), f"ValueModel.fit {name}")
            val_arr = check_target(val_y, len(matrix_val), f"ValueModel.fit {name}_val")
            self.regressors_[name] = PointRegressor(self.params, name).fit(
                matrix, train_arr, matrix_val, val_arr, binned
            )
        self._fit_interval(matrix, revenue, matrix_val, revenue_val, binned)
        self.boosters_: dict[str, lgb.Booster] = {
            **{name: reg.booster_ for name, reg in self.regressors_.items()},
            "value_p10": self.quantile_boosters_[0],
            "value_p90": self.quantile_boosters_[1],
        }
        self.reason_reference_ = (None if reason_population is None else reason_reference_of(
            self.boosters_["revenue"], 1.0, reason_population, feature_names))
        self.drift_profile_ = None if reason_population is None else drift_profile(
            reason_population, feature_names,
            {"expected_revenue": self.predict(reason_population[feature_names])["expected_revenue"].to_numpy()})
        pred_val = self.predict(X_val)["expected_revenue"].to_numpy()
        self.level_anchor_ = None if level_reference is None else LevelAnchor(mode=level_anchor).fit(
            revenue_val, pred_val, level_reference, tenure_train=tenure)
        self._fit_design(design, revenue_val, pred_val, blend_reference, blend_judged_on)
        return self

    def _fit_design(self, design: DesignChoice | None, y_val: np.ndarray, pred_val: np.ndarray,
                    reference: np.ndarray | None, judged_on: np.ndarray | None) -> None:
        """Keep the design search's record, BG/NBD's share chosen on the validation revenue (see fit)."""
        if design is not None and reference is not None:
            if judged_on is None:
                judged_on = pred_val if self.level_anchor_ is None else self.level_anchor_.transform(pred_val, reference)[0]
            design = with_value_blend(design, y_val, judged_on, reference)
        self.design_ = None if design is None else design.as_dict()
        self.blend_weight_ = 0.0 if design is None else design.blend_weight

    def _fit_interval(
        self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray,
        binned: BinnedMatrices | None = None,
    ) -> None:
        """Quantile models for the band, then conformal adjustment with cross-fitted coverage."""
        p = self.params
        small = p.model_copy(
            update={"num_leaves": p.interval_num_leaves, "n_estimators": p.interval_n_estimators}
        )
        binned = binned or BinnedMatrices(X, X_val, dataset_params(p))
        rows = self._interval_rows(len(X))
        self.quantile_boosters_ = [
            train_early_stopped(
                lightgbm_params(small, "quantile", "quantile", alpha=q),
                small.n_estimators, small.early_stopping_rounds, None, y, None, y_val,
                binned=binned, train_rows=rows, ensemble_size=small.ensemble_size,
            )
            for q in p.interval_quantiles
        ]
        low, high = self._raw_band(X_val)
        nominal = p.interval_quantiles[1] - p.interval_quantiles[0]
        self.interval_nominal_ = nominal
        self.interval_coverage_raw_ = interval_coverage(y_val, low, high)
        self.interval_adjustment_ = (0.0, 0.0)
        below, above = y_val < low, y_val > high
        if p.conformalize_interval:
            below, above = self._cross_fitted_misses(y_val, low, high)
            self.interval_adjustment_ = conformal_adjustments(
                y_val, low, high, p.interval_quantiles
            )
        self.interval_coverage_ = float(1.0 - below.mean() - above.mean())
        self.interval_below_rate_ = float(below.mean())
        self.interval_above_rate_ = float(above.mean())
        logger.info(
            "value band: nominal %.2f, raw coverage %.3f, reported coverage %.3f "
            "(below %.3f, above %.3f, shifts %s)", nominal, self.interval_coverage_raw_,
            self.interval_coverage_, self.interval_below_rate_, self.interval_above_rate_,
            self.interval_adjustment_,
        )

    def _interval_rows(self, n_rows: int) -> np.ndarray | None:
        """A seeded sample of training rows for the quantile models (None: all rows).

        A quantile booster re-sorts the residuals of every leaf at every round, so it costs
        several times a Tweedie booster per row; the band is conformalised on the full
        validation snapshot afterwards, so a sample moves its width, not its honesty.
        """
        cap = self.params.interval_max_rows
        if cap is None or n_rows <= cap:
            return None
        return np.random.default_rng(self.params.seed).choice(n_rows, size=cap, replace=False)

    def _raw_band(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Quantile-model bounds, ordered so low <= high."""
        low, high = (np.asarray(b.predict(X)) for b in self.quantile_boosters_)
        return np.minimum(low, high), np.maximum(low, high)

    def _cross_fitted_misses(
        self, y: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows below / above the band, each fold shifted by adjustments fit on the other folds."""
        below = np.zeros(y.size, dtype=bool)
        above = np.zeros(y.size, dtype=bool)
        splitter = KFold(
            n_splits=self.params.interval_folds, shuffle=True, random_state=self.params.seed
        )
        for fit_idx, held_idx in splitter.split(y):
            a, b = conformal_adjustments(
                y[fit_idx], low[fit_idx], high[fit_idx], self.params.interval_quantiles
            )
            below[held_idx] = y[held_idx] < low[held_idx] - a
            above[held_idx] = y[held_idx] > high[held_idx] + b
        return below, above

    def predict_raw(self, X: pd.DataFrame, target: str = "revenue") -> np.ndarray:
        """Raw score of one booster (log scale for tweedie/log_l2): what contributions add up to."""
        if target not in self.boosters_:
            raise KeyError(
                f"ValueModel.predict_raw: target '{target}' unknown; use {sorted(self.boosters_)}"
            )
        matrix = check_feature_matrix(X, self.feature_names_, "ValueModel.predict_raw")
        return np.asarray(self.boosters_[target].predict(matrix, raw_score=True))

    def predict(self, X: pd.DataFrame, revenue_raw: np.ndarray | None = None) -> pd.DataFrame:
        """Frame of PREDICTION_COLUMNS; cost_to_serve is 0 when it was not modelled.

        `revenue_raw`: the revenue booster's raw score of these rows (`predict_raw`), when the
        caller already has it, so it is not computed twice.
        """
        matrix = check_feature_matrix(X, self.feature_names_, "ValueModel.predict")
        out = pd.DataFrame(index=X.index)
        revenue = self.regressors_["revenue"]
        out["expected_revenue"] = (revenue.predict(matrix) if revenue_raw is None
                                   else revenue.predict_from_raw(revenue_raw))
        out["expected_margin"] = self.regressors_["margin"].predict(matrix)
        cost = self.regressors_.get("cost_to_serve")
        out["cost_to_serve"] = cost.predict(matrix) if cost is not None else 0.0
        low, high = self._raw_band(matrix)
        # a negative adjustment narrows the band; keep its ends ordered if it would cross
        a, b = self.interval_adjustment_
        lo, hi = low - a, high + b
        out["value_p10"] = np.minimum(lo, hi)
        out["value_p90"] = np.maximum(lo, hi)
        return out[PREDICTION_COLUMNS]


def revenue_validation_predictions(
    params: ValueParams, X: pd.DataFrame, y: Any, X_val: pd.DataFrame, y_val: Any, feature_names: list[str],
    order_days: Any = None, order_days_val: Any = None,
) -> np.ndarray:
    """Expected revenue of the validation rows from the revenue model alone (no margin, cost or band).

    What the design search compares: a candidate's ranking and level of horizon revenue, at a
    fraction of a full ValueModel fit.
    """
    matrix = check_feature_matrix(X, feature_names, "revenue_validation_predictions X")
    matrix_val = check_feature_matrix(X_val, feature_names, "revenue_validation_predictions X_val")
    revenue = check_target(y, len(matrix), "revenue_validation_predictions y")
    revenue_val = check_target(y_val, len(matrix_val), "revenue_validation_predictions y_val")
    if params.revenue_model == "frequency_severity":
        regressor = FrequencySeverityRegressor(params).fit(
            matrix, revenue, matrix_val, revenue_val,
            check_target(order_days, len(matrix), "order_days"), check_target(order_days_val, len(matrix_val), "order_days_val"),
        )
    else:
        regressor = PointRegressor(params, "revenue").fit(matrix, revenue, matrix_val, revenue_val)
    return regressor.predict(matrix_val)
