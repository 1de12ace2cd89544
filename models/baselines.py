"""Rule baselines that every model must beat: cadence-relative recency, trailing revenue, worst recent lateness."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

_REVENUE_WINDOW = re.compile(r"^revenue_sum_(\d+)d$")
_LATENESS_WINDOW = re.compile(r"^days_late_max_(\d+)d$")
PAYMENT_BASELINE_WINDOW_DAYS = 180
NO_HISTORY_CHURN_SCORE = 0.5


def _required_column(X: pd.DataFrame, column: str, where: str) -> pd.Series:
    """Return a column as float or raise naming the missing column."""
    if column not in X.columns:
        raise KeyError(
            f"{where}: feature column '{column}' is missing; it is needed by the rule "
            "baseline (see docs/ARCHITECTURE.md feature names)"
        )
    return X[column].astype(float)


def fallback_gap_days(gaps: pd.Series) -> float:
    """Typical cadence used for single-order customers: median observed gap, else 90 days."""
    observed = gaps[gaps > 0].dropna()
    return float(observed.median()) if not observed.empty else 90.0


def churn_baseline(X: pd.DataFrame) -> np.ndarray:
    """Churn score r / (1 + r) with r = days since last order / the customer's mean order gap.

    r = 1 (as long since the last order as the customer's usual gap) scores 0.5; the
    score rises towards 1 as the silence outgrows the cadence. A customer with one order
    has no gap: the population's median gap (from the same matrix, no labels) stands in.
    Customers with no order at all score 0.5.
    """
    recency = _required_column(X, "days_since_last_order", "churn_baseline")
    gaps = _required_column(X, "order_gap_mean_days", "churn_baseline")
    gap = gaps.where(gaps > 0, fallback_gap_days(gaps))
    ratio = (recency.clip(lower=0) / gap).to_numpy()
    score = ratio / (1.0 + ratio)
    return np.where(np.isnan(score), NO_HISTORY_CHURN_SCORE, score)


def revenue_windows(columns: pd.Index | list[str]) -> dict[int, str]:
    """Map window length in days to its `revenue_sum_{W}d` column."""
    found = (_REVENUE_WINDOW.match(str(c)) for c in columns)
    return {int(m.group(1)): m.group(0) for m in found if m}


def value_baseline(X: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Revenue of the trailing window as long as the horizon (`revenue_sum_{H}d`).

    If that window is not a feature, the nearest window is scaled by H / W (ties go to
    the longer window, which is less noisy). Missing window revenue counts as 0.
    """
    windows = revenue_windows(X.columns)
    if not windows:
        raise KeyError(
            "value_baseline: no 'revenue_sum_{W}d' column in the feature matrix; "
            "include a revenue window feature set"
        )
    window = min(windows, key=lambda w: (abs(w - horizon_days), -w))
    if window != horizon_days:
        logger.info(
            "value baseline: scaling revenue_sum_%dd to a %d-day horizon", window, horizon_days
        )
    revenue = X[windows[window]].astype(float).fillna(0.0).to_numpy()
    return revenue * (horizon_days / window)


def payment_baseline(X: pd.DataFrame, window_days: int = PAYMENT_BASELINE_WINDOW_DAYS) -> np.ndarray:
    """The customer's worst lateness in the last 180 days (`days_late_max_180d`): a credit controller's rule.

    Higher means riskier; it is compared with the model by ROC-AUC, so only its order matters.
    Without the 180-day window the nearest `days_late_max_{W}d` stands in (ties to the longer).
    A customer with no invoice due in the window scores 0, as one who never paid late.
    """
    found = {int(m.group(1)): m.group(0) for c in X.columns if (m := _LATENESS_WINDOW.match(str(c)))}
    if not found:
        raise KeyError("payment_baseline: no 'days_late_max_{W}d' column in the feature matrix; "
                       "the payment features need an invoices table with issued_at, due_at, amount and paid_at")
    window = min(found, key=lambda w: (abs(w - window_days), -w))
    return X[found[window]].astype(float).fillna(0.0).to_numpy()


SIGNUP_AGE_BINS = 10


def signup_age_baseline(train_days: pd.Series, train_converted: pd.Series, days: pd.Series,
                        bins: int = SIGNUP_AGE_BINS) -> np.ndarray:
    """Chance of a first order from days since sign-up alone: the training rows' rate in the same age band.

    Bands are the deciles of the training rows' days since sign-up; rows without a sign-up date
    form a band of their own. A band the training rows never reach gets their overall rate.
    This is the rule the prospect model must beat: how long a lead has waited.
    """
    train_days = pd.Series(train_days, dtype=float).reset_index(drop=True)
    converted = pd.Series(train_converted, dtype=float).reset_index(drop=True)
    overall = float(converted.mean()) if len(converted) else 0.0
    known = train_days.notna()
    edges = np.unique(np.quantile(train_days[known], np.linspace(0, 1, bins + 1))) if known.any() else np.array([])
    edges = edges[1:-1]  # inner edges: open-ended bands at both ends

    def band(values: pd.Series) -> np.ndarray:
        v = pd.Series(values, dtype=float).to_numpy()
        return np.where(np.isnan(v), -1, np.searchsorted(edges, np.nan_to_num(v), side="right"))

    rates = converted.groupby(band(train_days)).mean()
    return pd.Series(band(days)).map(rates).fillna(overall).to_numpy(dtype=float)
