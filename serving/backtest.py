"""Backtests of published runs: did the scores come true?

A published run holds each customer's p_churn and expected revenue as of its date. Once a score's
horizon has passed (the run's as-of plus the horizon lies on or before the end of the data), the
customers' realised outcomes are the labels training uses (features/labels.py), computed as of the
run's date with the horizons the run was scored with: churned = no new order in [as_of, as_of +
churn horizon), revenue = net amount in [as_of, as_of + value horizon). Nothing after a window's
end counts. A score whose horizon has not passed is "pending", never a number.

The backtest is one tidy long table (`BACKTEST_COLUMNS`), one row per score, metric, grouping and
group:

- group_by "all": churn roc_auc, brier, ece, capture_top_decile and churn_rate; value
  normalized_gini, top10_capture, top20_capture, aggregate_bias_pct and revenue_per_customer
  (the metrics of models/metrics.py, as training's out-of-time validation computes them);
- group_by "decile": equal-count groups of the score's own prediction, "01" lowest to "10"
  highest, the calibration by decile (churn_rate or revenue_per_customer, predicted vs realised);
- group_by "segment" and "value_tier": the same per group of the published run (did `at_risk`
  leave more, did `most_valuable` bring the value predicted?).

`value` is the metric (for churn_rate and revenue_per_customer: the realised one), `predicted` and
`realised` the two sides where a metric has them, `validation` the figure the model was promoted on
(filled by `with_validation`), and a drop beyond the tolerances of `BacktestConfig` is a warning
(`tolerance_warnings`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import ibis.expr.types as ir
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.labels import build_labels
from models.metrics import churn_metrics, value_metrics

MEASURED, PENDING = "measured", "pending"
SCORES = ("churn", "value")
# What each score predicted (score table column) and what then happened (label column).
PREDICTION = {"churn": "p_churn", "value": "expected_revenue"}
OUTCOME = {"churn": "label_churn", "value": "label_revenue"}
# The metric of a group's predicted vs realised level: share churned, revenue per customer.
LEVEL_METRIC = {"churn": "churn_rate", "value": "revenue_per_customer"}
# The whole-population metrics, named as models/metrics.py names them.
HEADLINE_METRICS = {
    "churn": ("roc_auc", "brier", "ece", "capture_top_decile"),
    "value": ("normalized_gini", "top10_capture", "top20_capture", "aggregate_bias_pct"),
}
GROUPINGS = ("segment", "value_tier")
SCORE_COLUMNS_READ = ("customer_id", "p_churn", "expected_revenue", "segment", "value_tier")
N_DECILES = 10
# Fewer than this share of a run's scored customers found in the data: it is not the run's data.
MIN_MATCHED_SHARE = 0.5

BACKTEST_COLUMNS = ("score", "metric", "group_by", "group", "status", "customers", "predicted", "realised", "value",
                    "validation", "horizon_days", "window_end", "data_end")


class BacktestConfig(BaseModel):
    """The `monitoring.backtest` section: when runs are backtested and which drop is a warning."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The score flows backtest the runs that became due after publishing; `custscore backtest` always can.
    auto: bool = True
    # Runs backtested per flow run, newest first: each reads its scores and labels, so a home left idle
    # for months catches up over a few runs instead of one long one.
    max_runs: Annotated[int, Field(ge=0)] = 3
    # Headline drops from the validation figure the model was promoted on that are warnings (null: off).
    # CDNOW's paired bootstrap intervals span about 0.01 of ROC-AUC and 0.02 of Gini: 0.05 is no noise.
    roc_auc_drop: Annotated[float, Field(ge=0)] | None = 0.05
    gini_drop: Annotated[float, Field(ge=0)] | None = 0.05
    # Total predicted revenue off the realised total by more than this % is a warning (null: off). An honest
    # model missed Online Retail's best season by 13.9% (benchmarks/README.md): 25 is more than a season.
    bias_pct: Annotated[float, Field(ge=0)] | None = 25.0


class BacktestDataError(ValueError):
    """The data does not hold the customers a published run scored (another source, or too early)."""


@dataclass(frozen=True)
class BacktestWindow:
    """A published run's date and horizons, and where the data's observed outcomes end (exclusive)."""

    as_of: dt.date
    churn_horizon_days: int
    value_horizon_days: int
    data_end: dt.datetime  # outcomes are observed before this moment: the day after the last transaction

    def horizon_days(self, score: str) -> int:
        return self.churn_horizon_days if score == "churn" else self.value_horizon_days

    def window_end(self, score: str) -> dt.datetime:
        """The end (exclusive) of the score's outcome window: as_of + horizon."""
        return _midnight(self.as_of) + dt.timedelta(days=self.horizon_days(score))

    def passed(self, score: str) -> bool:
        """Whether the score's whole outcome window lies within the data (features.labels' rule)."""
        return self.window_end(score) <= self.data_end

    def passed_scores(self) -> tuple[str, ...]:
        return tuple(score for score in SCORES if self.passed(score))


def realised_outcomes(tables: Mapping[str, ir.Table], window: BacktestWindow) -> pd.DataFrame:
    """customer_id and, for each score whose horizon passed, its label as training defines it, as of the run's date.

    Customers are those with a transaction line before the run's date (whom the run scored);
    only rows before each window's end count.
    """
    if not window.passed_scores():
        return pd.DataFrame({"customer_id": pd.Series(dtype=str)})
    labels = build_labels(tables, _midnight(window.as_of), churn_horizon_days=window.churn_horizon_days,
                          value_horizon_days=window.value_horizon_days, data_end=window.data_end)
    kept = ["customer_id", *(OUTCOME[score] for score in window.passed_scores())]
    return labels[kept]


def coverage_warnings(scores: pd.DataFrame, outcomes: pd.DataFrame, run_label: str) -> list[str]:
    """A warning when some scored customers have no outcome; an error when fewer than half have one."""
    if outcomes.columns.size == 1:  # nothing observed yet: nothing to match
        return []
    scored = set(scores.loc[scores["p_churn"].notna() | scores["expected_revenue"].notna(), "customer_id"])
    matched = len(scored & set(outcomes["customer_id"]))
    if not scored:
        return []
    share = matched / len(scored)
    if share < MIN_MATCHED_SHARE:
        raise BacktestDataError(
            f"backtest of {run_label}: the data holds history before its as-of for {matched:,} of the {len(scored):,} "
            f"customers it scored ({share:.0%}); backtest it with the data it was scored on (--data)"
        )
    if matched < len(scored):
        return [f"backtest of {run_label}: {len(scored) - matched:,} of {len(scored):,} scored customers have no "
                "history before its as-of in this data and are left out"]
    return []


def backtest_table(scores: pd.DataFrame, outcomes: pd.DataFrame, window: BacktestWindow) -> pd.DataFrame:
    """The backtest of one published run: its scores (SCORE_COLUMNS_READ) against the realised outcomes."""
    joined = scores.merge(outcomes, on="customer_id", how="inner", validate="one_to_one")
    rows: list[dict] = []
    for score in SCORES:
        if window.passed(score):
            rows += _measured_rows(score, joined.loc[joined[PREDICTION[score]].notna()])
        else:
            rows += _pending_rows(score, int(scores[PREDICTION[score]].notna().sum()))
    table = pd.DataFrame(rows)
    table["validation"] = np.nan
    table["horizon_days"] = table["score"].map(window.horizon_days).astype("int64")
    table["window_end"] = table["score"].map(lambda s: window.window_end(s).date())
    table["data_end"] = (window.data_end - dt.timedelta(days=1)).date()  # the last day with data
    table["customers"] = table["customers"].astype("int64")
    return table.loc[:, list(BACKTEST_COLUMNS)]


def _measured_rows(score: str, frame: pd.DataFrame) -> list[dict]:
    y = frame[OUTCOME[score]].to_numpy(dtype=float)
    p = frame[PREDICTION[score]].to_numpy(dtype=float)
    if y.size == 0:
        return _pending_rows(score, 0, status=MEASURED)
    metrics = churn_metrics(y, p) if score == "churn" else value_metrics(y, p)
    rows = [_row(score, metric, "all", "all", y.size, metrics[metric]) for metric in HEADLINE_METRICS[score]]
    rows.append(_level_row(score, "all", "all", y, p))
    order = np.argsort(p, kind="stable")
    for i, members in enumerate(np.array_split(order, min(N_DECILES, y.size))):
        rows.append(_level_row(score, "decile", f"{i + 1:02d}", y[members], p[members]))
    for grouping in GROUPINGS:
        keys = frame[grouping].astype("string").fillna("-").to_numpy()
        for group in sorted(set(keys)):
            members = keys == group
            rows.append(_level_row(score, grouping, group, y[members], p[members]))
    return rows


def _pending_rows(score: str, customers: int, status: str = PENDING) -> list[dict]:
    """The whole-population rows of a score not measured: its metrics without a number."""
    metrics = (*HEADLINE_METRICS[score], LEVEL_METRIC[score])
    return [_row(score, metric, "all", "all", customers, math.nan, status=status) for metric in metrics]


def _level_row(score: str, group_by: str, group: str, y: np.ndarray, p: np.ndarray) -> dict:
    """Predicted against realised level of a group: mean p_churn vs share churned, or mean revenue of each."""
    realised = float(y.mean())
    return _row(score, LEVEL_METRIC[score], group_by, group, y.size, realised, predicted=float(p.mean()), realised=realised)


def _row(score: str, metric: str, group_by: str, group: str, customers: int, value: float,
         predicted: float = math.nan, realised: float = math.nan, status: str = MEASURED) -> dict:
    return {"score": score, "metric": metric, "group_by": group_by, "group": group, "status": status,
            "customers": customers, "predicted": predicted, "realised": realised, "value": value}


def with_validation(table: pd.DataFrame, validation: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """The table with `validation` filled on the whole-population rows: {score: {metric: figure}} the model was promoted on."""
    table = table.copy()
    overall = table["group_by"] == "all"
    figures = [validation.get(score, {}).get(metric, math.nan) if is_all else math.nan
               for score, metric, is_all in zip(table["score"], table["metric"], overall, strict=True)]
    table["validation"] = np.asarray(figures, dtype=float)
    return table


# (score, metric, tolerance field, what the metric is called in a sentence)
_DROPS = (("churn", "roc_auc", "roc_auc_drop", "churn ROC-AUC"), ("value", "normalized_gini", "gini_drop", "value normalized Gini"))


def tolerance_warnings(table: pd.DataFrame, tolerances: BacktestConfig, run_label: str) -> list[str]:
    """One sentence per measured figure beyond its tolerance: a ranking that dropped from validation, a level off in total."""
    warnings = []
    for score, metric, field, name in _DROPS:
        limit = getattr(tolerances, field)
        realised, validation = _headline(table, score, metric)
        if limit is None or not (math.isfinite(realised) and math.isfinite(validation)):
            continue
        if validation - realised > limit:
            warnings.append(
                f"backtest of {run_label}: {name} {realised:.3f} realised against {validation:.3f} at validation, a drop "
                f"of {validation - realised:.3f} beyond monitoring.backtest.{field} ({limit:g}); the {score} model ranks "
                f"customers worse than when it was promoted: retrain (`custscore run --retrain`)"
            )
    bias, _ = _headline(table, "value", "aggregate_bias_pct")
    if tolerances.bias_pct is not None and math.isfinite(bias) and abs(bias) > tolerances.bias_pct:
        warnings.append(
            f"backtest of {run_label}: predicted revenue was {abs(bias):.1f}% {'above' if bias > 0 else 'below'} the realised "
            f"total, beyond monitoring.backtest.bias_pct ({tolerances.bias_pct:g}); plan with the value scores' level "
            "in mind, or retrain (`custscore run --retrain`)"
        )
    return warnings


def _headline(table: pd.DataFrame, score: str, metric: str) -> tuple[float, float]:
    """(realised, validation) of a whole-population metric; NaN where absent or pending."""
    row = table.loc[(table["score"] == score) & (table["metric"] == metric) & (table["group_by"] == "all")
                    & (table["status"] == MEASURED)]
    if row.empty:
        return math.nan, math.nan
    return float(row["value"].iloc[0]), float(row["validation"].iloc[0])


def backtest_summary(table: pd.DataFrame) -> dict:
    """Per score: status, window end, and the whole-population metrics with their validation figures (JSON-ready)."""
    summary = {}
    for score in SCORES:
        rows = table.loc[(table["score"] == score) & (table["group_by"] == "all")]
        if rows.empty:
            continue
        summary[score] = {
            "status": str(rows["status"].iloc[0]), "window_end": str(rows["window_end"].iloc[0]),
            "customers": int(rows["customers"].iloc[0]),
            "metrics": {m: _number(v) for m, v in zip(rows["metric"], rows["value"], strict=True)},
            "validation": {m: _number(v) for m, v in zip(rows["metric"], rows["validation"], strict=True)
                           if _number(v) is not None},
        }
    return summary


HEADLINE = {"churn": "roc_auc", "value": "normalized_gini"}


def headline_text(summary: Mapping[str, dict]) -> str:
    """'churn roc_auc 0.781 (validation 0.802); value pending until 2027-06-30' from `backtest_summary`."""
    parts = []
    for score, figures in summary.items():
        if figures["status"] != MEASURED:
            parts.append(f"{score} pending until {figures['window_end']}")
            continue
        metric = HEADLINE[score]
        value, validation = figures["metrics"].get(metric), figures["validation"].get(metric)
        part = f"{score} {metric} " + ("-" if value is None else f"{value:.3f}")
        parts.append(part + (f" (validation {validation:.3f})" if validation is not None else ""))
    return "; ".join(parts)


def _number(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min)
