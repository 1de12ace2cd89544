"""Deployments with cron schedules from configs/: retrain monthly, score daily, unattended.

`register_deployments` records them in the Prefect API (visible in the Prefect UI);
`serve_deployments` runs the process that executes their scheduled runs. On Prefect's
ephemeral API nothing is ever scheduled, so serving needs `prefect server start`.
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from pipelines.flows import retrain_and_score_flow, score_flow
from pipelines.runs import RunRequest, resolve_config


def build_deployments(config: str | None = None, data: str | None = None) -> list[RunnerDeployment]:
    """The scheduled retrain-and-score and score deployments, parameters fixed at deploy time."""
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


def register_deployments(deployments: list[RunnerDeployment]) -> list:
    """Record the deployments and their schedules in the Prefect API; returns their ids."""
    return [deployment.apply() for deployment in deployments]


def serve_deployments(deployments: list[RunnerDeployment]) -> None:
    """Run the scheduler loop that executes the deployments (blocks until stopped)."""
    serve(*deployments, print_starting_message=True)
