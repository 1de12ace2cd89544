"""A scoring run's drift: its warnings, its MLflow record, and what severe drift does (monitoring.drift.on_severe).

The drift table itself is measured while the run is scored (serving/drift.py) and travels
with it as `ScoredRun.tables["drift"]`. Here, between scoring and publishing, it is logged to
MLflow and its policy applied:

- warn: the run is published; the features beyond the thresholds are named in its summary;
- hold: nothing is published (readers keep the previous run) and the run stops with one line
  naming the severe features;
- retrain: in the retrain-and-score flow that did not train (`custscore run` with champions),
  the run is not published and the flow retrains, then scores again with whatever is champion
  then (a retrain that promotes nothing scores with the same champions and publishes with a
  warning: there is no loop). A score-only run (`score_flow`, the daily schedule) cannot
  retrain: it publishes and warns that the next retrain-and-score run will retrain.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from pipelines import tracking
from pipelines.runs import Run
from serving.drift import DRIFT_TABLE, DriftSettings, beyond, drift_warnings, not_measured_reason, severe_names
from serving.scored_run import ScoredRun
from serving.scoring import ScoringModels

log = logging.getLogger(__name__)

MONITORING_EXPERIMENT = "custscore-monitoring"
_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ ]")


class DriftHoldError(RuntimeError):
    """Severe drift with monitoring.drift.on_severe: hold: the run is not published."""


class DriftRetrainNeededError(RuntimeError):
    """Severe drift with on_severe: retrain in a flow that can still train: train, then score again."""


def check_drift(run: Run, scored: ScoredRun, models: ScoringModels, run_id: str, training: dict | None) -> dict[str, Any]:
    """Log the run's drift, apply `monitoring.drift.on_severe`, and return its part of the run summary.

    `training`: what the flow trained before scoring (None in a score-only flow, which cannot
    retrain; empty when a retrain-and-score flow found champions and did not train).
    """
    settings = run.cfg.monitoring.drift
    table = scored.tables.get(DRIFT_TABLE)
    partial = not_measured_reason(models)
    warnings = [*([partial] if partial else []), *drift_warnings(table, settings)]
    for line in warnings:
        log.warning("%s", line)
    if table is not None:
        log_drift(table, run_id, run, models)
    severe = [] if table is None else severe_names(table, settings)
    summary = {"measured": table is not None, "warnings": warnings, "severe": severe, "on_severe": settings.on_severe,
               "beyond_warn": [] if table is None else beyond(table, "warn", settings)["name"].tolist()}
    if severe:
        summary["warnings"] = [*warnings, apply_policy(settings, severe, training)]
    return summary


def apply_policy(settings: DriftSettings, severe: list[str], training: dict | None) -> str:
    """Stop the run for `hold` (and for `retrain` where the flow can still train); otherwise the line saying what happened.

    `training`: as check_drift's.
    """
    names = ", ".join(severe)
    if settings.on_severe == "hold":
        raise DriftHoldError(f"severe drift (PSI above {settings.psi_severe:g}) in {names}: monitoring.drift.on_severe is "
                             "hold, so nothing was published and readers still see the previous run; check the data, "
                             "then retrain (custscore run --retrain) or set on_severe: warn")
    if settings.on_severe == "retrain" and training is not None and not training:
        raise DriftRetrainNeededError(f"severe drift in {names}: retraining before publishing (monitoring.drift.on_severe: retrain)")
    if settings.on_severe == "retrain" and training is None:
        return (f"drift: severe in {names}; on_severe is retrain: this score-only run published with the current "
                "champions, the next retrain-and-score run (custscore run, the monthly schedule) retrains")
    if settings.on_severe == "retrain":
        return f"drift: severe in {names} against the champions after this run's training; published with them"
    return f"drift: severe in {names}; published (on_severe: warn)"


def log_drift(table, run_id: str, run: Run, models: ScoringModels) -> None:
    """The drift table as metrics of a monitoring run tagged with the scoring run and the model versions.

    Monitoring is a record, not a gate: MLflow refusing it is a warning, and the run goes on.
    """
    frame = table.to_pandas()
    try:
        experiment = tracking.ensure_experiment(MONITORING_EXPERIMENT, run.paths.mlflow_artifacts / "monitoring")
        with mlflow.start_run(experiment_id=experiment, run_name=f"drift {run.as_of.isoformat()} {run_id}"):
            mlflow.set_tags({"scoring_run_id": run_id, "as_of": run.as_of.isoformat(), "kind": "drift",
                             "churn_model_version": models.churn_version, "value_model_version": models.value_version})
            mlflow.log_metrics(drift_metrics(frame))
            tracking.log_json(frame.to_dict("records"), "drift.json")
    except MlflowException as exc:
        log.warning("drift was measured but not logged to MLflow: %s", str(exc).splitlines()[0])


def drift_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """psi.<name>, missing_now.<name> and missing_ref.<name> per row, and the number of rows at each level."""
    metrics: dict[str, float] = {}
    for row in frame.itertuples():
        name = _METRIC_UNSAFE.sub("_", str(row.name))
        for key in ("psi", "missing_now", "missing_ref"):
            value = float(getattr(row, key))
            if value == value:  # NaN is no metric
                metrics[f"{key}.{name}"] = value
    for level in ("warn", "severe"):
        metrics[f"drift_{level}_count"] = float((frame["level"] == level).sum())
    return metrics
