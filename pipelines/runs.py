"""Resolve what a run works on: configuration, home folder, validated data and the as-of date."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from features.validation import ValidatedData
from pipelines import tasks, tracking
from pipelines.arguments import check_as_of_within_data, check_horizon_days, check_local_source, parse_day
from pipelines.config import CustscoreConfig, load_config
from pipelines.environment import HomePaths, prepare_environment
from pipelines.faults import redacted
from serving.sink import open_sink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """What a user or a schedule asks for; None means the configured or derived default."""

    data: str | None = None
    as_of: str | None = None
    config: str | None = None
    churn_horizon_days: int | None = None
    value_horizon_days: int | None = None
    allow_future_as_of: bool = False  # score after the day after the data ends (days without data count as no orders)

    def __post_init__(self) -> None:
        # A schedule or a direct flow call fails here, before config, tracking and data are touched.
        check_local_source(self.data)
        parse_day(self.as_of, "as_of")
        check_horizon_days(self.churn_horizon_days, "churn_horizon_days")
        check_horizon_days(self.value_horizon_days, "value_horizon_days")


@dataclass(frozen=True)
class Run:
    """A resolved run: everything the tasks of a flow need."""

    cfg: CustscoreConfig
    paths: HomePaths
    data: ValidatedData
    as_of: date
    clock: datetime
    source_label: str


def resolve_config(request: RunRequest) -> CustscoreConfig:
    """Load the config file and apply the request's overrides."""
    cfg = load_config(Path(request.config) if request.config else None)
    return cfg.with_overrides(
        labels={"churn_horizon_days": request.churn_horizon_days, "value_horizon_days": request.value_horizon_days},
        data={"source": request.data},
    )


def resolve_run(request: RunRequest) -> Run:
    """Load config, prepare the home folder, validate the data, fix and check the as-of date, set up tracking.

    The as-of date is checked against the validated data before anything is trained or
    scored, so a date outside the data never reaches the registry or the store.
    """
    cfg = resolve_config(request)
    paths = prepare_environment()
    clock = tasks.utc_now()
    if cfg.engine.name == "spark" and cfg.engine.spark.source is not None:
        # An object-storage folder (s3a://, abfss://, gs://) only Spark can read.
        source, label = cfg.engine.spark.source, redacted(cfg.engine.spark.source)
    elif cfg.data.source is None:
        source = tasks.ensure_demo_data(paths, cfg)
        label = f"demo data ({cfg.demo.customers} customers, seed {cfg.demo.seed})"
    else:
        source, label = Path(cfg.data.source), redacted(str(cfg.data.source))
    data = tasks.load_data(source, cfg, paths, clock)
    as_of = resolve_as_of(request, data)
    tracking.configure_tracking(paths.tracking_uri, paths.mlflow_artifacts)
    log.info("run on %s as of %s", label, as_of)
    return Run(cfg, paths, data, as_of, clock, label)


def resolve_as_of(request: RunRequest, data: ValidatedData) -> date:
    """The requested as-of date (default: the day after the last transaction), checked against the data."""
    requested = parse_day(request.as_of, "as_of")
    as_of = requested or (tasks.default_as_of(data) if data.data_end is not None else tasks.utc_now().date())
    check_as_of_within_data(as_of, data.data_start, data.data_end, allow_future=request.allow_future_as_of)
    return as_of


class LostRegistryError(RuntimeError):
    """The store's last published run names model versions the registry no longer knows."""


def check_registry_knows_store(store_root: Path, new_lineage: bool = False) -> str | None:
    """Refuse to train or score when the registry lost the models of the store's last published run.

    Without this a deleted or replaced mlflow.db silently starts over: v1 registered again and
    published runs whose model versions point at models that no longer exist (or at other ones).
    The last published run decides, so after a deliberate new lineage the older runs stay history.
    Returns None when the registry knows them (or the store is empty); with `new_lineage`, a note
    for the summary instead of the error.
    """
    runs = open_sink(store_root).list_runs()
    if runs.empty:
        return None
    last = runs.sort_values("published_at", kind="stable").iloc[-1]  # ties (same second): the later as-of
    missing = [m for kind in tracking.MODEL_KINDS
               if (m := tracking.registry_mismatch(kind, _text(last[f"{kind}_model_version"]),
                                                   _text(last[f"{kind}_mlflow_run_id"])))]
    if not missing:
        return None
    problem = (f"store {store_root}: its last published run {last['run_id']} was scored with {'; '.join(missing)} "
               f"(registry {redacted(tracking.registry_location())})")
    if not new_lineage:
        raise LostRegistryError(f"{problem}; the registry was lost or replaced: restore it, or `custscore run --retrain` "
                                f"starts a new lineage on purpose; nothing trained or published")
    return f"new: {problem}; a new lineage starts here"


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and value != value) else str(value)
