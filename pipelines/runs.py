"""Resolve what a run works on: configuration, home folder, validated data and the as-of date."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from features.validation import ValidatedData
from pipelines import tasks, tracking
from pipelines.config import CustscoreConfig, load_config
from pipelines.environment import HomePaths, prepare_environment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """What a user or a schedule asks for; None means the configured or derived default."""

    data: str | None = None
    as_of: str | None = None
    config: str | None = None
    churn_horizon_days: int | None = None
    value_horizon_days: int | None = None


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
    """Load config, prepare the home folder and tracking, validate the data, fix the as-of date."""
    cfg = resolve_config(request)
    paths = prepare_environment()
    tracking.configure_tracking(paths.tracking_uri, paths.mlflow_artifacts)
    clock = tasks.utc_now()
    if cfg.data.source is None:
        source = tasks.ensure_demo_data(paths, cfg)
        label = f"demo data ({cfg.demo.customers} customers, seed {cfg.demo.seed})"
    else:
        source, label = Path(cfg.data.source), str(cfg.data.source)
    data = tasks.load_data(source, cfg, paths, clock)
    as_of = date.fromisoformat(request.as_of) if request.as_of else tasks.default_as_of(data)
    log.info("run on %s as of %s", label, as_of)
    return Run(cfg, paths, data, as_of, clock, label)
