"""Ground truth, headline metrics and paired bootstrap intervals for scored customers.

The metric definitions are the project's (`models.metrics.churn_metrics`, `value_metrics`,
`interval_coverage`); this module only aligns scores with the truth and resamples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.metrics import churn_metrics, interval_coverage, value_metrics

logger = logging.getLogger(__name__)

CHURN_METRICS = ("roc_auc", "pr_auc", "brier")
VALUE_METRICS = ("spearman", "normalized_gini", "top10_capture", "top20_capture", "mae",
                 "aggregate_bias_pct")
HEADLINE_METRICS = CHURN_METRICS + VALUE_METRICS
SCORE_COLUMNS = ("customer_id", "churn_score", "p_churn", "expected_revenue", "value_p10",
                 "value_p90")


def ground_truth(transactions: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """One row per customer with history before as_of: churned (no purchase in the window), revenue.

    Population: customers with any row before as_of (CDNOW has 68 customers whose only
    records before 1998 are $0 purchases; they are scored too). A purchase in the window is
    a row with a positive amount (the project's definition of an order); the window is
    [as_of, as_of + horizon_days); revenue is the net amount in the window.
    """
    as_of = pd.Timestamp(as_of)
    end = as_of + pd.Timedelta(days=horizon_days)
    ts = transactions["ts"]
    population = np.sort(transactions.loc[ts < as_of, "customer_id"].unique())
    in_window = transactions.loc[(ts >= as_of) & (ts < end)]
    revenue = in_window.groupby("customer_id")["amount"].sum()
    buyers = set(in_window.loc[in_window["amount"] > 0, "customer_id"])
    truth = pd.DataFrame({"customer_id": population})
    truth["churned"] = (~truth["customer_id"].isin(buyers)).astype(int)
    truth["revenue"] = truth["customer_id"].map(revenue).fillna(0.0).astype(float)
    return truth


@dataclass(frozen=True)
class AlignedScores:
    """One model's scores in the truth's row order, as arrays (NaN arrays where absent)."""

    name: str
    churn_score: np.ndarray
    p_churn: np.ndarray
    expected_revenue: np.ndarray
    value_p10: np.ndarray
    value_p90: np.ndarray

    @property
    def is_probability(self) -> bool:
        """Whether the churn score is a probability (Brier is defined)."""
        return bool(np.isfinite(self.p_churn).all())

    @property
    def has_value_band(self) -> bool:
        """Whether the model gave a P10-P90 band of revenue."""
        return bool(np.isfinite(self.value_p10).all() and np.isfinite(self.value_p90).all())

    def take(self, index: np.ndarray) -> AlignedScores:
        """The same scores for the customers at `index` (with repeats, for the bootstrap)."""
        return AlignedScores(self.name, self.churn_score[index], self.p_churn[index],
                             self.expected_revenue[index], self.value_p10[index],
                             self.value_p90[index])


def align_scores(name: str, truth: pd.DataFrame, scores: pd.DataFrame) -> AlignedScores:
    """Put a scorer's output in the truth's customer order; every truth customer must be scored."""
    missing_cols = {"customer_id", "churn_score", "expected_revenue"} - set(scores.columns)
    if missing_cols:
        raise ValueError(f"scores of {name} lack columns {sorted(missing_cols)}; "
                         f"a scorer returns {list(SCORE_COLUMNS)}")
    dupes = scores["customer_id"][scores["customer_id"].duplicated()]
    if not dupes.empty:
        raise ValueError(f"scores of {name} have {len(dupes)} duplicated customer_id "
                         f"(first {dupes.iloc[0]!r}); one row per customer is expected")
    indexed = scores.set_index(scores["customer_id"].astype(str))
    missing = truth.loc[~truth["customer_id"].isin(indexed.index), "customer_id"]
    if not missing.empty:
        raise ValueError(
            f"scores of {name} miss {len(missing)} of {len(truth)} customers with history "
            f"(first {missing.iloc[:3].tolist()}); ids are compared as text, leading zeros kept"
        )
    rows = indexed.loc[truth["customer_id"]]

    def column(col: str) -> np.ndarray:
        if col not in rows.columns:
            return np.full(len(rows), np.nan)
        return rows[col].to_numpy(dtype=float)

    aligned = AlignedScores(name, column("churn_score"), column("p_churn"),
                            column("expected_revenue"), column("value_p10"), column("value_p90"))
    for col in ("churn_score", "expected_revenue"):
        bad = np.flatnonzero(~np.isfinite(getattr(aligned, col)))
        if bad.size:
            raise ValueError(f"scores of {name}: {bad.size} non-finite {col} "
                             f"(first customer {truth['customer_id'].iloc[bad[0]]!r})")
    return aligned


def headline_metrics(churned: np.ndarray, revenue: np.ndarray, scores: AlignedScores) -> dict[str, float]:
    """The benchmark's metrics for one model (Brier NaN when the churn score is not a probability)."""
    churn = churn_metrics(churned, scores.p_churn if scores.is_probability else scores.churn_score)
    value = value_metrics(revenue, scores.expected_revenue)
    result = {key: churn[key] for key in CHURN_METRICS}
    if not scores.is_probability:
        result["brier"] = float("nan")
    result.update({key: value[key] for key in VALUE_METRICS})
    result["p10_p90_coverage"] = (
        interval_coverage(revenue, scores.value_p10, scores.value_p90)
        if scores.has_value_band else float("nan"))
    result["predicted_total_revenue"] = float(scores.expected_revenue.sum())
    return result


def paired_bootstrap(churned: np.ndarray, revenue: np.ndarray, candidates: list[AlignedScores],
                     reference: AlignedScores, n_resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, pd.DataFrame]:
    """Percentile intervals of metric(candidate) - metric(reference), resampling customers.

    Every model is evaluated on the same resampled customers each time (paired), so the
    interval reflects the difference, not the models' separate noise; the reference is
    evaluated once per resample and shared by all candidates.
    Returns, per candidate name, a frame indexed by metric with columns
    observed_difference, ci_low, ci_high, n_resamples.
    """
    churned = np.asarray(churned)
    revenue = np.asarray(revenue, dtype=float)
    observed = _differences(churned, revenue, candidates, reference)
    rng = np.random.default_rng(seed)
    n = churned.size
    draws: dict[str, list[dict[str, float]]] = {c.name: [] for c in candidates}
    for _ in range(n_resamples):
        index = rng.integers(0, n, size=n)
        resampled = _differences(churned[index], revenue[index],
                                 [c.take(index) for c in candidates], reference.take(index))
        for name, diff in resampled.items():
            draws[name].append(diff)
    tail = (1.0 - confidence) / 2.0
    tables = {}
    for name, rows in draws.items():
        frame = pd.DataFrame(rows, columns=list(HEADLINE_METRICS))
        tables[name] = pd.DataFrame({
            "observed_difference": pd.Series(observed[name]),
            "ci_low": frame.quantile(tail),
            "ci_high": frame.quantile(1.0 - tail),
            "n_resamples": n_resamples,
        }).loc[list(HEADLINE_METRICS)]
    return tables


def _differences(churned: np.ndarray, revenue: np.ndarray, candidates: list[AlignedScores],
                 reference: AlignedScores) -> dict[str, dict[str, float]]:
    """metric(candidate) - metric(reference) for the headline metrics, per candidate name."""
    ref = headline_metrics(churned, revenue, reference)
    result = {}
    for candidate in candidates:
        cand = headline_metrics(churned, revenue, candidate)
        result[candidate.name] = {key: cand[key] - ref[key] for key in HEADLINE_METRICS}
    return result
