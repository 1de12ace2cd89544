"""Deployments with cron schedules from configs/: retrain monthly, score daily, unattended.

`register_deployments` records them in the Prefect API (visible in the Prefect UI);
`serve_deployments` runs the process that executes their scheduled runs. On Prefect's
ephemeral API nothing is ever scheduled, so serving needs `prefect server start`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from pipelines.flows import retrain_and_score_flow, score_flow
from pipelines.runs import RunRequest, resolve_config


def build_deployments(config: str | None = None, data: str | None = None) -> list[RunnerDeployment]:
    """The scheduled retrain-and-score and score deployments, parameters fixed at deploy time.

    Paths are stored absolute: a scheduled run starts in the serving process's folder, not
    in the one `custscore deploy` ran in.
    """
    data, config = _absolute(data), _absolute(config)
    cfg = resolve_config(RunRequest(config=config, data=data))
    # A scheduled run queues behind a run in progress (the retrain and the score can fall on one day).
    params = {"data": data, "config": config, "wait": True}
    timezone = cfg.schedules.timezone
    retrain = retrain_and_score_flow.to_deployment(
        name="custscore-monthly-retrain", parameters={**params, "retrain": True},
        schedules=[Cron(cfg.schedules.retrain_cron, timezone=timezone)],
        description="Retrain churn and value models (champion gate), then score and publish.",
        tags=["custscore", "retrain"],
    )
    score = score_flow.to_deployment(
        name="custscore-daily-score", parameters=params,
        schedules=[Cron(cfg.schedules.score_cron, timezone=timezone)],
        description="Score every customer with the champion models and publish the tables.",
        tags=["custscore", "score"],
    )
    return [retrain, score]


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def scheduled_source(config: str | None = None, data: str | None = None) -> str:
    """What the scheduled runs will read, in words: the user's tables or the generated demo data."""
    cfg = resolve_config(RunRequest(config=_absolute(config), data=_absolute(data)))
    if cfg.data.source is not None:
        return f"scheduled runs read {cfg.data.source}"
    return (f"no --data and no data.source in the config: scheduled runs score the demo data "
            f"({cfg.demo.customers:,} generated customers, seed {cfg.demo.seed}); "
            f"pass --data DIR to schedule runs on your own tables")


def register_deployments(deployments: list[RunnerDeployment]) -> list:
    """Record the deployments and their schedules in the Prefect API; returns their ids."""
    return [deployment.apply() for deployment in deployments]


def serve_deployments(deployments: list[RunnerDeployment]) -> None:
    """Run the scheduler loop that executes the deployments (blocks until stopped)."""
    serve(*deployments, print_starting_message=True)
