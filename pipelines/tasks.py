"""Prefect tasks: thin wrappers over the pure layers. Retries only where IO can fail transiently.

Tasks pass live objects (a DuckDB connection, models) between each other in one process,
so Prefect's input-hash caching is switched off (NO_CACHE): those inputs cannot be hashed
and a cached model would be a wrong model.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from demo import generate_demo_data, generate_demo_truth, write_demo_data, write_demo_truth
from features.attributes import choose_attributes, keep_chosen_attributes
from features.build import FeatureSpec, build_features, feature_set_name
from features.training_set import build_training_sets
from features.validation import (
    QuarantineThresholdError,
    ValidatedData,
    load_and_validate,
)
from models.btyd_columns import add_btyd_features
from pipelines import tracking
from pipelines.config import CustscoreConfig
from pipelines.environment import HomePaths
from pipelines.faults import retry_only_transient, writing
from pipelines.progress import counted, staged
from pipelines.training import RunContext, TrainingOutcome, train_churn, train_value

log = logging.getLogger(__name__)

# Only transient I/O failures are retried: an input error, a full disk or a corrupt database
# would fail the same way again, repeating the work and its side effects.
IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": retry_only_transient}
TRAINING_SETS_STAGE = "training snapshots: features and labels"


def feature_spec(cfg: CustscoreConfig) -> FeatureSpec:
    """The feature set the configuration asks for: its `features:` section (season features for the label horizons when features.seasonal)."""
    return cfg.features


@task(name="ensure-demo-data", cache_policy=NO_CACHE, **IO_RETRIES)
@staged("demo data")
def ensure_demo_data(paths: HomePaths, cfg: CustscoreConfig) -> Path:
    """Generate the bundled demo data into the home folder once per (customers, seed, end)."""
    folder = paths.demo_data / cfg.demo.folder_name()
    if not (folder / "transactions.parquet").exists():
        tables = generate_demo_data(cfg.demo.customers, seed=cfg.demo.seed, end=cfg.demo.end)
        staging = folder.with_name(folder.name + ".partial")
        write_demo_data(tables, staging, "parquet")
        write_demo_truth(generate_demo_truth(cfg.demo.customers, seed=cfg.demo.seed, end=cfg.demo.end), staging)
        staging.replace(folder)
    return folder


@task(name="load-and-validate", cache_policy=NO_CACHE, **IO_RETRIES)
@staged("validate")
def load_data(source: Path, cfg: CustscoreConfig, paths: HomePaths, clock: datetime) -> ValidatedData:
    """Validate the input tables; quarantined rows go to a file under the home folder.

    The validated tables live in a work folder under the home (removed when the run's data
    is released or the process ends), not in memory.
    """
    data_end = datetime.combine(cfg.data.data_end, datetime.min.time()) if cfg.data.data_end else None
    try:
        with writing(paths.root / "work", "the validated tables in", "nothing was trained or published"):
            if cfg.engine.name == "spark":
                data = validate_on_spark(source, cfg, paths, clock, data_end)
            else:
                data = load_and_validate(
                    source, clock=clock, data_end=data_end,
                    max_quarantine_share=cfg.data.max_quarantine_share,
                    default_margin_rate=cfg.data.default_margin_rate,
                    work_dir=paths.root / "work", memory_limit=cfg.data.duckdb_memory_limit,
                    duplicate_lines=cfg.data.duplicate_lines, plausibility=cfg.data.plausibility(),
                )
    except QuarantineThresholdError as exc:
        written = write_quarantine_file(exc.result, paths, clock, announce=False)
        # The failing run's one line says where the rejected rows are; no separate warning line.
        raise QuarantineThresholdError(f"{exc} Quarantined rows: {written}", exc.result) from None
    write_quarantine_file(data, paths, clock)
    return with_chosen_attributes(data, cfg)


def validate_on_spark(source: Path | str, cfg: CustscoreConfig, paths: HomePaths, clock: datetime,
                      data_end: datetime | None) -> ValidatedData:
    """Validation on the configured Spark; the accepted tables go to engine.spark.work_path (else under the home)."""
    # Imported here: pyspark is an optional extra, loaded only when the engine is spark.
    from features.engines.spark import connect, session_from
    from features.engines.spark_validation import load_and_validate_on_spark

    work_path = cfg.engine.spark.work_path or str(paths.root / "work" / "spark")
    return load_and_validate_on_spark(
        connect(session_from(cfg.engine.spark)), str(source), clock=clock, work_path=work_path, data_end=data_end,
        max_quarantine_share=cfg.data.max_quarantine_share, default_margin_rate=cfg.data.default_margin_rate,
        plausibility=cfg.data.plausibility(),
    )


def with_chosen_attributes(data: ValidatedData, cfg: CustscoreConfig) -> ValidatedData:
    """Keep only the customers columns that may be features, once per run, for training and scoring alike.

    The excluded columns leave the customers table every feature query reads, so no later step
    (training snapshots, the champion's input example, scoring, reasons) can see them.
    """
    if "customers" not in data.tables:
        return data
    choice = choose_attributes(data.tables["customers"], cfg.features.attributes)
    data.tables["customers"] = keep_chosen_attributes(data.tables["customers"], choice)
    data.attributes = choice
    for column, reason in choice.excluded:
        log.info("customers column %r is no feature: %s", column, reason)
    return data


def attributes_summary(data: ValidatedData) -> dict | None:
    """{kept: [...], excluded: {column: reason}} of the run's customers table (None without one)."""
    return data.attributes.as_dict() if data.attributes is not None else None


def write_quarantine_file(data: ValidatedData, paths: HomePaths, clock: datetime,
                          announce: bool = True) -> Path | None:
    """Keep every rejected row with its reason; returns the file, or None if nothing was rejected."""
    if data.quarantine.empty:
        return None
    path = paths.quarantine / f"quarantine-{clock:%Y%m%dT%H%M%S}.parquet"
    with writing(path, "the quarantine file", "nothing was trained or published"):
        path.parent.mkdir(parents=True, exist_ok=True)
        data.write_quarantine(path)
    if announce:
        log.warning("%d rows quarantined; written to %s", len(data.quarantine), path)
    return path


def default_as_of(data: ValidatedData) -> date:
    """The day after the last accepted transaction: score on everything the data has."""
    return (data.data_end + timedelta(days=1)).date()


@task(name="build-training-sets", cache_policy=NO_CACHE)
@staged(TRAINING_SETS_STAGE)
def training_sets(data: ValidatedData, scoring_date: date, cfg: CustscoreConfig) -> dict[str, Any]:
    """One point-in-time training set per model kind, each with snapshots as fresh as its horizon allows."""
    sets = build_training_sets(
        data.tables, midnight(scoring_date), spec=feature_spec(cfg),
        churn_horizon_days=cfg.labels.churn_horizon_days, value_horizon_days=cfg.labels.value_horizon_days,
        n_snapshots=cfg.training.n_snapshots, step_days=cfg.training.step_days,
        n_validation_snapshots=cfg.training.n_validation_snapshots,
        min_history_days=cfg.training.min_history_days, targets=("churn", "value"), data_end=_day_after(data.data_end),
        max_customers=cfg.training.max_customers, search_sets=cfg.training.design == "search",
    )
    counted(TRAINING_SETS_STAGE, sum(len(frame) for name, frame in sets.items() if name in ("churn", "value")), "rows")
    # "churn_search" / "value_search": the design search's rows, with the BTYD columns of their kind.
    return {name: with_btyd_features(frame, training_btyd_horizons(cfg, name.removesuffix("_search")))
            for name, frame in sets.items()}


def training_btyd_horizons(cfg: CustscoreConfig, kind: str) -> list[int]:
    """Horizons of the BTYD columns a training set gets.

    The design search needs BG/NBD's outputs at the model's own horizon (a candidate feature
    set and the blend it weighs); a fixed design gets both horizons when features.btyd is on.
    """
    if cfg.training.design == "search":
        return [cfg.labels.churn_horizon_days if kind == "churn" else cfg.labels.value_horizon_days]
    return sorted({cfg.labels.churn_horizon_days, cfg.labels.value_horizon_days}) if cfg.features.btyd else []


# BG/NBD + Gamma-Gamma fits per training snapshot: a training set with the design search's rows
# holds about twenty snapshots, and four parameters settle on far fewer customers than the
# 50,000 the scored population's one fit uses.
SNAPSHOT_BTYD_FIT_ROWS = 10_000


def with_btyd_features(frame, horizons: list[int]):
    """The frame with BTYD columns for each horizon, fitted per snapshot on its own rows (a sample of them)."""
    for horizon in horizons:
        frame = add_btyd_features(frame, horizon, max_fit_rows=SNAPSHOT_BTYD_FIT_ROWS)
    return frame


def _day_after(moment: datetime) -> datetime:
    """Labels are observed up to the end of the last day with data."""
    return datetime.combine(moment.date() + timedelta(days=1), datetime.min.time())


@task(name="train-and-gate", cache_policy=NO_CACHE)
@staged(lambda kind, *args, **kwargs: f"train {kind}: fit, evaluate out of time, register, gate")
def train_kind(kind: str, frame, cfg: CustscoreConfig, data: ValidatedData, scoring_date: date,
               source: str, search=None) -> TrainingOutcome:
    """Fit one model kind, evaluate it out of time, log it to MLflow and apply the champion gate."""
    horizon = cfg.labels.churn_horizon_days if kind == "churn" else cfg.labels.value_horizon_days
    ctx = RunContext(feature_set_name(feature_spec(cfg)), data.data_hash, scoring_date.isoformat(), horizon, source,
                     model_features=cfg.features.model_features, level_anchor=cfg.training.level_anchor,
                     design=cfg.training.design, design_max_customers=cfg.training.design_max_customers,
                     requested_snapshots=(cfg.training.n_snapshots, cfg.training.n_validation_snapshots),
                     attributes=attributes_summary(data), too_good=cfg.training.too_good,
                     calibration_gate=cfg.training.calibration_gate)
    if kind == "churn":
        return train_churn(frame, cfg.models.churn, ctx, search)
    return train_value(frame, cfg.models.value, ctx, search)


@task(name="features-as-of", cache_policy=NO_CACHE)
def features_as_of(data: ValidatedData, as_of: date, cfg: CustscoreConfig, include_prospects: bool = False):
    """The feature table as of a date, one row per customer."""
    horizons = sorted({cfg.labels.churn_horizon_days, cfg.labels.value_horizon_days}) if cfg.features.btyd else []
    return with_btyd_features(
        build_features(data.tables, midnight(as_of), feature_spec(cfg), include_prospects=include_prospects), horizons)


@task(name="load-champions", cache_policy=NO_CACHE, **IO_RETRIES)
def load_champions() -> dict[str, tracking.Champion | None]:
    """The champion model of each kind from the registry (None where there is none)."""
    return {kind: tracking.load_champion(kind) for kind in tracking.MODEL_KINDS}


def midnight(day: date) -> datetime:
    """The start of a day: features as of it see everything dated before that day."""
    return datetime.combine(day, datetime.min.time())


def utc_now() -> datetime:
    """The run's clock (naive UTC, as every timestamp inside custscore)."""
    return datetime.now(UTC).replace(tzinfo=None)
