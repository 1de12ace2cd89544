"""Churn and value evaluation metrics, each checkable against a hand computation or an oracle."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

ArrayLike = np.ndarray


def _as_float_pair(y: ArrayLike, p: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return both inputs as 1-D float arrays, checking length and finiteness."""
    y_arr = np.asarray(y, dtype=float).ravel()
    p_arr = np.asarray(p, dtype=float).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"{name}: actuals have {y_arr.size} rows but predictions {p_arr.size}")
    if y_arr.size == 0:
        raise ValueError(f"{name}: no rows to evaluate")
    for label, arr in (("actuals", y_arr), ("predictions", p_arr)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(
                f"{name}: {label} have {bad.size} non-finite values (first at row {bad[0]}: "
                f"{arr[bad[0]]}); drop or impute them before evaluating"
            )
    return y_arr, p_arr


def tie_averaged_sorted_actuals(y: ArrayLike, pred: ArrayLike) -> np.ndarray:
    """Actuals ordered by descending prediction, each tie group replaced by its mean.

    Averaging inside a tie group gives the expected cumulative curve over every
    order of the tied rows, so a score with many ties (a baseline of zeros) is not
    helped or hurt by the row order of the input.
    """
    y_arr, p_arr = _as_float_pair(y, pred, "tie_averaged_sorted_actuals")
    order = np.argsort(-p_arr, kind="stable")
    y_sorted, p_sorted = y_arr[order], p_arr[order]
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
    sums = np.add.reduceat(y_sorted, starts)
    counts = np.diff(np.r_[starts, y_sorted.size])
    return np.repeat(sums / counts, counts)


def expected_calibration_error(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """ECE with equal-frequency bins: sum over bins of (bin share) x |mean(y) - mean(p)|.

    Rows are sorted by predicted probability and cut into `n_bins` bins of (nearly)
    equal count; equal-frequency bins keep every bin populated when scores crowd near 0.
    """
    y_arr, p_arr = _as_float_pair(y, p, "expected_calibration_error")
    order = np.argsort(p_arr, kind="stable")
    bins = np.array_split(order, min(n_bins, y_arr.size))
    return float(
        sum(len(b) * abs(y_arr[b].mean() - p_arr[b].mean()) for b in bins) / y_arr.size
    )


def top_share_rows(n_rows: int, share: float) -> int:
    """Number of rows in the top `share` of `n_rows` (at least one)."""
    return max(1, int(math.ceil(share * n_rows - 1e-9)))


def lift_and_capture(y: ArrayLike, p: ArrayLike, share: float = 0.1) -> tuple[float, float]:
    """Lift (top-share positive rate / overall rate) and capture (share of positives there)."""
    y_arr, p_arr = _as_float_pair(y, p, "lift_and_capture")
    k = top_share_rows(y_arr.size, share)
    positives_in_top = tie_averaged_sorted_actuals(y_arr, p_arr)[:k].sum()
    total = y_arr.sum()
    if total == 0:
        return float("nan"), float("nan")
    capture = positives_in_top / total
    return float(capture / (k / y_arr.size)), float(capture)


def churn_metrics(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, ECE, top-decile lift and capture of churn probabilities."""
    y_arr, p_arr = _as_float_pair(y, p, "churn_metrics")
    labels = np.unique(y_arr)
    if not np.isin(labels, [0.0, 1.0]).all():
        raise ValueError(f"churn_metrics: labels must be 0/1, found {labels[:5].tolist()}")
    lift, capture = lift_and_capture(y_arr, p_arr, 0.1)
    both_classes = labels.size == 2
    return {
        "roc_auc": float(roc_auc_score(y_arr, p_arr)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y_arr, p_arr)) if both_classes else float("nan"),
        "brier": float(brier_score_loss(y_arr, np.clip(p_arr, 0.0, 1.0))),
        "ece": expected_calibration_error(y_arr, p_arr, n_bins),
        "lift_top_decile": lift,
        "capture_top_decile": capture,
        "base_rate": float(y_arr.mean()),
        "n_rows": float(y_arr.size),
    }


def normalized_gini(y: ArrayLike, pred: ArrayLike) -> float:
    """Normalised Gini as in google/lifetime_value: model gain-curve Gini / perfect-ordering Gini.

    Gini of a gain curve = 2 x mean(cumulative share of actual value over customers
    ordered by the score) - 1. Perfect ranking gives 1, random about 0, reversed about -1.
    """
    y_arr, p_arr = _as_float_pair(y, pred, "normalized_gini")
    total = y_arr.sum()
    if total == 0:
        return float("nan")
    model_gain = np.cumsum(tie_averaged_sorted_actuals(y_arr, p_arr)) / total
    perfect_gain = np.cumsum(np.sort(y_arr)[::-1]) / total
    perfect = 2.0 * perfect_gain.mean() - 1.0
    if perfect == 0:
        return float("nan")
    return float((2.0 * model_gain.mean() - 1.0) / perfect)


def top_share_capture(y: ArrayLike, pred: ArrayLike, share: float) -> float:
    """Share of total actual value held by the top `share` of customers ranked by prediction."""
    y_arr, p_arr = _as_float_pair(y, pred, "top_share_capture")
    total = y_arr.sum()
    if total == 0:
        return float("nan")
    k = top_share_rows(y_arr.size, share)
    return float(tie_averaged_sorted_actuals(y_arr, p_arr)[:k].sum() / total)


def decile_mape(y: ArrayLike, pred: ArrayLike, n_bins: int = 10) -> float:
    """Mean over prediction deciles of |mean prediction - mean actual| / |mean actual|.

    Deciles are equal-count groups by predicted value (as in lifetime_value's decile
    chart); deciles whose mean actual is 0 are skipped because the ratio is undefined.
    """
    y_arr, p_arr = _as_float_pair(y, pred, "decile_mape")
    order = np.argsort(p_arr, kind="stable")
    errors = [
        abs(p_arr[b].mean() - y_arr[b].mean()) / abs(y_arr[b].mean())
        for b in np.array_split(order, min(n_bins, y_arr.size))
        if y_arr[b].mean() != 0
    ]
    return float(np.mean(errors)) if errors else float("nan")


def aggregate_bias_pct(y: ArrayLike, pred: ArrayLike) -> float:
    """Total predicted minus total actual, in percent of total actual (-3.0 means 3% under).

    NaN unless the actual total is positive: returns can leave a total at or below zero, and a
    percentage of it would read with the wrong sign (a prediction above it "under").
    """
    y_arr, p_arr = _as_float_pair(y, pred, "aggregate_bias_pct")
    total = y_arr.sum()
    return float(100.0 * (p_arr.sum() - total) / total) if total > 0 else float("nan")


def value_metrics(y: ArrayLike, pred: ArrayLike) -> dict[str, float]:
    """Spearman, normalised Gini, top-10%/20% capture, decile MAPE, MAE and bias % of value."""
    y_arr, p_arr = _as_float_pair(y, pred, "value_metrics")
    constant = np.ptp(y_arr) == 0 or np.ptp(p_arr) == 0
    return {
        "spearman": float("nan") if constant else _spearman(y_arr, p_arr),
        "normalized_gini": normalized_gini(y_arr, p_arr),
        "top10_capture": top_share_capture(y_arr, p_arr, 0.1),
        "top20_capture": top_share_capture(y_arr, p_arr, 0.2),
        "decile_mape": decile_mape(y_arr, p_arr),
        "mae": float(np.mean(np.abs(y_arr - p_arr))),
        "aggregate_bias_pct": aggregate_bias_pct(y_arr, p_arr),
        "n_rows": float(y_arr.size),
    }


def interval_coverage(y: ArrayLike, low: ArrayLike, high: ArrayLike) -> float:
    """Share of actuals inside the closed interval [low, high]."""
    y_arr, low_arr = _as_float_pair(y, low, "interval_coverage")
    _, high_arr = _as_float_pair(y, high, "interval_coverage")
    return float(np.mean((y_arr >= low_arr) & (y_arr <= high_arr)))


def _spearman(y: np.ndarray, p: np.ndarray) -> float:
    """Spearman rank correlation (scipy.stats imported here: it costs ~1-2 CPU s that scoring runs never need)."""
    from scipy.stats import spearmanr

    return float(spearmanr(y, p).statistic)
