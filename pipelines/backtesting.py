"""Backtests of published runs (serving/backtest.py): which runs are due, stored with the run, logged to MLflow.

A published run is due when one of its horizons has passed in the data (its as-of plus the
horizon it was scored with, read from its metadata, lies on or before the day after the last
transaction, as training's labels see the data) and its stored backtest does not measure that
score yet: a run is backtested once for churn when 90 days have passed and again when its value
horizon has. The backtest is attached to the run (`sink.attach_table(run_id, "backtest", ...)`),
logged to MLflow as a run in the model's experiment, tagged with the model version and the
scoring run id, beside the validation figures the model was promoted on; drops beyond
`monitoring.backtest` are warnings in the logs and the run summary.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prefect import task
from prefect.cache_policies import NO_CACHE

from features.validation import ValidatedData
from pipelines import tracking
from pipelines.config import CustscoreConfig
from pipelines.faults import redacted
from pipelines.progress import staged
from pipelines.runs import Run
from pipelines.sinks import NamedSink
from pipelines.tasks import default_as_of, midnight
from serving.backtest import (
    HEADLINE,
    MEASURED,
    SCORE_COLUMNS_READ,
    BacktestWindow,
    backtest_summary,
    backtest_table,
    coverage_warnings,
    headline_text,
    realised_outcomes,
    tolerance_warnings,
    with_validation,
)
from serving.sink import ScoreSink
from serving.store import PublishedRun

log = logging.getLogger(__name__)

TABLE = "backtest"
BACKTEST_STAGE = "backtest published runs"
# The figures a model was promoted on, as training logs them on its MLflow run (pipelines/training.py).
# Published values carry the level anchor where it applies, so their bias is compared with `level_bias_pct`.
VALIDATION_METRICS = {
    "churn": {m: f"model_{m}" for m in ("roc_auc", "brier", "ece", "capture_top_decile")},
    "value": {"normalized_gini": "model_normalized_gini", "top10_capture": "model_top10_capture",
              "top20_capture": "model_top20_capture", "aggregate_bias_pct": "model_level_bias_pct"},
}
class BacktestNotDueError(ValueError):
    """None of a published run's horizons has passed in the data."""


@dataclass
class BacktestResult:
    """One run's backtest: the stored table, its summary per score, its warnings and the MLflow runs logged."""

    run_id: str
    as_of: str
    table: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    mlflow_runs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready, for the run summary."""
        return {"run_id": self.run_id, "as_of": self.as_of, "scores": backtest_summary(self.table),
                "warnings": list(self.warnings), "mlflow_runs": dict(self.mlflow_runs)}


def observed_until(data: ValidatedData) -> datetime:
    """Outcomes are observed before this moment: the day after the last transaction (training's labels alike)."""
    return midnight(default_as_of(data))


def run_window(run: PublishedRun, data: ValidatedData, cfg: CustscoreConfig) -> BacktestWindow:
    """The run's as-of and the horizons it was scored with (its metadata; the configuration's for a run without them)."""
    labels = (run.extra.get("config") or {}).get("labels") or {}
    return BacktestWindow(run.as_of, int(labels.get("churn_horizon_days", cfg.labels.churn_horizon_days)),
                          int(labels.get("value_horizon_days", cfg.labels.value_horizon_days)), observed_until(data))


def run_label(run: PublishedRun) -> str:
    return f"run {run.run_id} (as of {run.as_of})"


def needs_backtest(sink: ScoreSink, run: PublishedRun, window: BacktestWindow) -> bool:
    """A horizon has passed that the run's stored backtest (if any) does not measure yet."""
    passed = set(window.passed_scores())
    if not passed:
        return False
    stored = sink.read_table(TABLE, run_id=run.run_id)
    measured = set() if stored is None else set(stored.loc[stored["status"] == MEASURED, "score"])
    return not passed <= measured


def due_runs(sink: ScoreSink, data: ValidatedData, cfg: CustscoreConfig, limit: int | None = None) -> list[PublishedRun]:
    """Published runs due for a backtest, newest first, at most `limit`."""
    due = []
    for run_id in reversed(sink.list_runs()["run_id"].tolist()):  # list_runs is oldest first
        run = sink.run_metadata(run_id=run_id)
        if needs_backtest(sink, run, run_window(run, data, cfg)):
            due.append(run)
        if limit is not None and len(due) >= limit:
            break
    return due


def backtest_published_run(sink: ScoreSink, run: PublishedRun, data: ValidatedData, cfg: CustscoreConfig,
                           mirrors: Sequence[NamedSink] = ()) -> BacktestResult:
    """Backtest one published run on `data`, attach the table to the run, log it to MLflow; warnings are logged too.

    `sink` is read and written first (the store); the table is then attached to the same run in each
    of `mirrors` (PostgreSQL), where a failure is a warning: the store has the backtest, and a later
    backtest of the run attaches it again.
    """
    label, window = run_label(run), run_window(run, data, cfg)
    if not window.passed_scores():
        raise BacktestNotDueError(
            f"{label}: no horizon has passed yet: its churn window ends {window.window_end('churn'):%Y-%m-%d} and its "
            f"value window {window.window_end('value'):%Y-%m-%d}, but the data ends "
            f"{window.data_end - timedelta(days=1):%Y-%m-%d}; backtest it once the data reaches the first of them"
        )
    scores = sink.read_scores(run_id=run.run_id, columns=list(SCORE_COLUMNS_READ))
    outcomes = realised_outcomes(data.tables, window)
    warnings = coverage_warnings(scores, outcomes, label)
    table = with_validation(backtest_table(scores, outcomes, window), validation_figures(run))
    warnings += tolerance_warnings(table, cfg.monitoring.backtest, label)
    sink.attach_table(run.run_id, TABLE, table)
    warnings += attach_to_mirrors(mirrors, run, table)
    result = BacktestResult(run.run_id, run.as_of.isoformat(), table, warnings, log_backtest(run, table, warnings))
    log.info("backtest of %s: %s", label, headline_text(backtest_summary(table)))
    for warning in warnings:
        log.warning(warning)
    return result


def validation_figures(run: PublishedRun, client: MlflowClient | None = None) -> dict[str, dict[str, float]]:
    """{score: {metric: figure}} the run's models were promoted on (their MLflow training runs); empty where gone."""
    client = client or MlflowClient()
    figures = {}
    for kind, names in VALIDATION_METRICS.items():
        mlflow_run_id = getattr(run, f"{kind}_mlflow_run_id")
        if mlflow_run_id is None:
            continue
        try:
            metrics = client.get_run(mlflow_run_id).data.metrics
        except MlflowException:  # a registry started anew: the backtest stands without the comparison
            continue
        figures[kind] = {metric: metrics[name] for metric, name in names.items() if name in metrics}
    return figures


def log_backtest(run: PublishedRun, table: pd.DataFrame, warnings: list[str]) -> dict[str, str]:
    """One MLflow run per measured score in its model's experiment, tagged with the model version and scoring run id."""
    logged = {}
    for kind in ("churn", "value"):
        rows = table.loc[(table["score"] == kind) & (table["group_by"] == "all") & (table["status"] == MEASURED)]
        experiment = mlflow.get_experiment_by_name(tracking.model_name(kind))
        if rows.empty or experiment is None:
            continue
        version = getattr(run, f"{kind}_model_version")
        with mlflow.start_run(experiment_id=experiment.experiment_id,
                              run_name=f"backtest of {run.run_id} ({kind} v{version})") as active:
            mlflow.set_tags({"custscore.run_kind": "backtest", "model_name": tracking.model_name(kind),
                             "model_version": str(version), "scoring_run_id": run.run_id, "as_of": str(run.as_of),
                             "window_end": str(rows["window_end"].iloc[0]), "data_end": str(rows["data_end"].iloc[0])})
            mlflow.log_metrics(_finite({"backtest_customers": rows["customers"].iloc[0],
                                        **{f"backtest_{m}": v for m, v in zip(rows["metric"], rows["value"], strict=True)},
                                        **{f"validation_{m}": v for m, v in zip(rows["metric"], rows["validation"], strict=True)}}))
            mlflow.log_text(table.loc[table["score"] == kind].to_csv(index=False), "backtest.csv")
            mine = [w for w in warnings if f": {kind} " in w or (kind == "value" and "predicted revenue" in w)]
            if mine:
                mlflow.set_tag("backtest_warnings", " | ".join(mine))
            logged[kind] = active.info.run_id
        _tag_model_version(kind, version, run, rows)
    return logged


def _tag_model_version(kind: str, version: str | None, run: PublishedRun, rows: pd.DataFrame) -> None:
    """The model version's `last_backtest` tag: where the registry's UI shows how the version did since."""
    if version is None:
        return
    headline = rows.loc[rows["metric"] == HEADLINE[kind]].iloc[0]
    text = f"run {run.run_id} as of {run.as_of}: {HEADLINE[kind]} {headline['value']:.3f}"
    if math.isfinite(headline["validation"]):
        text += f" (validation {headline['validation']:.3f})"
    try:
        MlflowClient().set_model_version_tag(tracking.model_name(kind), str(version), "last_backtest", text)
    except MlflowException:  # the version is gone from the registry: the backtest run still holds the figures
        log.info("%s v%s is not in the registry; last_backtest not tagged", tracking.model_name(kind), version)


def _finite(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def attach_to_mirrors(mirrors: Sequence[NamedSink], run: PublishedRun, table: pd.DataFrame) -> list[str]:
    """Attach a backtest to the run in the other sinks; each failure a warning naming the sink (URLs redacted)."""
    warnings = []
    for named in mirrors:
        try:
            named.sink.attach_table(run.run_id, TABLE, table)
        except Exception as exc:  # noqa: BLE001 - the store has the backtest; this sink catches up next time
            warnings.append(f"backtest of {run_label(run)} not stored in {named.label}: "
                            f"{redacted(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)}")
    return warnings


def backtest_due_runs(sink: ScoreSink, data: ValidatedData, cfg: CustscoreConfig,
                      mirrors: Sequence[NamedSink] = ()) -> dict:
    """Backtest the runs due (at most monitoring.backtest.max_runs, newest first): {"backtests": [...], "warnings": [...]}.

    The scores are published before this runs: a backtest that fails is a warning naming the run, never a failed run.
    """
    settings = cfg.monitoring.backtest
    results, warnings = [], []
    if not settings.auto or settings.max_runs == 0:
        return {"backtests": results, "warnings": warnings}
    try:
        due = due_runs(sink, data, cfg, settings.max_runs)
    except Exception as exc:  # noqa: BLE001 - as below: the published run stands
        log.exception("finding the published runs due for a backtest failed")
        return {"backtests": results, "warnings": [f"no backtest made: the published runs could not be read ({exc}); "
                                                   "`custscore backtest` tries again"]}
    for run in due:
        try:
            result = backtest_published_run(sink, run, data, cfg, mirrors)
        except Exception as exc:  # noqa: BLE001 - any failure here must not fail a run already published
            log.exception("backtest of %s failed", run_label(run))
            warnings.append(f"backtest of {run_label(run)} failed: {exc}; `custscore backtest --run-id {run.run_id}` "
                            "tries it again")
            continue
        results.append(result.as_dict())
        warnings += result.warnings
    return {"backtests": results, "warnings": warnings}


@task(name="backtest-published-runs", cache_policy=NO_CACHE)
@staged(BACKTEST_STAGE)
def backtest_after_publishing(run: Run, sinks: Sequence[NamedSink]) -> dict:
    """The score flows' last step: backtest the published runs whose horizons have passed in this run's data.

    Runs are read from the first sink (the store) and each backtest is attached in every sink.
    """
    return backtest_due_runs(sinks[0].sink, run.data, run.cfg, sinks[1:])
