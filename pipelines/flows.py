"""Prefect flows: train, score, and retrain-and-score (the main job).

Flows are thin: they resolve the run, call tasks that wrap the pure layers, and return a
plain summary. Parameters are plain strings and numbers so deployments can schedule them.
"""

from __future__ import annotations

import logging

from prefect import Flow

from pipelines import payment_training, prospects, publishing, tasks
from pipelines.drift import DriftRetrainNeededError
from pipelines.environment import prepare_environment, release_memory
from pipelines.faults import redacted_value
from pipelines.home_lock import home_run_lock
from pipelines.observed import finished, flow_run_name, note_resolved, observed_run
from pipelines.runs import Run, RunRequest, check_registry_knows_store, resolve_run
from pipelines.training import check_trainable

log = logging.getLogger(__name__)


class RedactedParametersFlow(Flow):
    """A flow whose parameters are stored in Prefect's database with URL passwords replaced by ***.

    The flow itself receives them unchanged; only the record (the Prefect UI, its database)
    is redacted, whoever calls the flow: the command line, a schedule or a notebook.
    """

    def serialize_parameters(self, parameters: dict) -> dict:
        return redacted_value(super().serialize_parameters(parameters))


def flow(name: str, short: str):
    """`prefect.flow` with parameters stored redacted (RedactedParametersFlow), runs named `<short> <as-of> <data>`."""
    return lambda fn: RedactedParametersFlow(fn, name=name, flow_run_name=flow_run_name(short))


def resolved(request: RunRequest) -> Run:
    """resolve_run, and the flow run renamed with the as-of date and data it resolved to."""
    run = resolve_run(request)
    note_resolved(run.as_of, run.cfg.data.source)
    return run


def one_run_per_home(wait: bool = False):
    """The home's run lock, held for the whole flow (CLI and scheduled runs alike), so training,
    the champion aliases and the score store see one run at a time; `wait` queues instead of refusing."""
    return home_run_lock(prepare_environment().root, wait=wait)


@flow(name="custscore-train", short="train")
def train_flow(data: str | None = None, as_of: str | None = None, config: str | None = None,
               churn_horizon_days: int | None = None, value_horizon_days: int | None = None,
               allow_future_as_of: bool = False, wait: bool = False) -> dict:
    """Train churn and value models on point-in-time snapshots, track them and gate the champion."""
    with observed_run("train", config) as outcome, one_run_per_home(wait):
        return finished(outcome, _train(data, as_of, config, churn_horizon_days, value_horizon_days, allow_future_as_of))


def _train(data, as_of, config, churn_horizon_days, value_horizon_days, allow_future_as_of) -> dict:
    run = resolved(RunRequest(data=data, as_of=as_of, config=config, churn_horizon_days=churn_horizon_days,
                              value_horizon_days=value_horizon_days,
                              allow_future_as_of=allow_future_as_of))
    check_registry_knows_store(run.paths.store)
    sets = tasks.training_sets(run.data, run.as_of, run.cfg)
    _check_both_trainable(sets)
    outcomes = {kind: tasks.train_kind(kind, sets[kind], run.cfg, run.data, run.as_of, run.source_label,
                                       sets.get(f"{kind}_search"))
                for kind in ("churn", "value")}
    return {"as_of": run.as_of.isoformat(), "report": run.data.report_json(), "warnings": list(run.data.warnings),
            "attributes": tasks.attributes_summary(run.data),
            "training": {k: o.as_dict() for k, o in outcomes.items()} | payment_training.train_payment_risk(run)
            | prospects.train_prospects(run.data, run.as_of, run.cfg, run.source_label)}


@flow(name="custscore-score", short="score")
def score_flow(data: str | None = None, as_of: str | None = None, config: str | None = None,
               churn_horizon_days: int | None = None, value_horizon_days: int | None = None,
               allow_future_as_of: bool = False, wait: bool = False) -> dict:
    """Score every customer with the champion models, explain, segment and publish all or nothing."""
    with observed_run("score", config) as outcome, one_run_per_home(wait):
        return finished(outcome, _score(data, as_of, config, churn_horizon_days, value_horizon_days, allow_future_as_of))


def _score(data, as_of, config, churn_horizon_days, value_horizon_days, allow_future_as_of) -> dict:
    run = resolved(RunRequest(data=data, as_of=as_of, config=config, churn_horizon_days=churn_horizon_days,
                              value_horizon_days=value_horizon_days,
                              allow_future_as_of=allow_future_as_of))
    check_registry_knows_store(run.paths.store)
    champions = tasks.load_champions()
    published = publishing.score_and_publish(run, champions)
    return {"as_of": run.as_of.isoformat(), "report": run.data.report_json(),
            "warnings": [*run.data.warnings, *published["drift"]["warnings"], *published.get("warnings", [])],
            "attributes": tasks.attributes_summary(run.data), "published": published}


@flow(name="custscore-retrain-and-score", short="run")
def retrain_and_score_flow(data: str | None = None, as_of: str | None = None, config: str | None = None,
                           churn_horizon_days: int | None = None, value_horizon_days: int | None = None,
                           retrain: bool = True, allow_future_as_of: bool = False, wait: bool = False) -> dict:
    """The main job: validate, train (always, or only when there is no champion), score, publish."""
    with observed_run("run", config) as outcome, one_run_per_home(wait):
        return finished(outcome, _retrain_and_score(data, as_of, config, churn_horizon_days, value_horizon_days,
                                                    retrain, allow_future_as_of))


def _retrain_and_score(data, as_of, config, churn_horizon_days, value_horizon_days, retrain,
                       allow_future_as_of) -> dict:
    run = resolved(RunRequest(data=data, as_of=as_of, config=config, churn_horizon_days=churn_horizon_days,
                              value_horizon_days=value_horizon_days,
                              allow_future_as_of=allow_future_as_of))
    registry = check_registry_knows_store(run.paths.store, new_lineage=retrain)
    # A retrain does not read the champions first: that is how an unreadable champion is replaced.
    champions = None if retrain else tasks.load_champions()
    training = {}
    if champions is None or any(c is None for c in champions.values()):
        training, champions = _train_both(run)
    elif payment_training.needs_payment_training(run):
        training = payment_training.train_payment_risk(run)
    try:
        published = publishing.score_and_publish(run, champions, training)
    except DriftRetrainNeededError as exc:
        log.warning("%s", exc)
        training, champions = _train_both(run)
        published = publishing.score_and_publish(run, champions, training)
        published["drift"]["warnings"].insert(0, str(exc))
    return {"as_of": run.as_of.isoformat(), "report": run.data.report_json(),
            "warnings": [*run.data.warnings, *published["drift"]["warnings"],
                         *published.get("warnings", [])],
            "attributes": tasks.attributes_summary(run.data), "training": training,
            "published": published} | ({"registry": registry} if registry else {})


def _train_both(run) -> tuple[dict, dict]:
    """Train both kinds on the run's data; what each training decided and the champions after it."""
    sets = tasks.training_sets(run.data, run.as_of, run.cfg)
    _check_both_trainable(sets)
    training = {kind: tasks.train_kind(kind, sets[kind], run.cfg, run.data, run.as_of, run.source_label,
                                       sets.get(f"{kind}_search")).as_dict()
                for kind in ("churn", "value")}
    training |= prospects.train_prospects(run.data, run.as_of, run.cfg, run.source_label)
    del sets  # scoring does not need the training frames: the run peaks at one phase, not their sum
    release_memory()
    training |= payment_training.train_payment_risk(run)  # its own snapshots, once the others' are freed
    return training, tasks.load_champions()


def _check_both_trainable(sets: dict) -> None:
    """Both kinds are checked before either trains, so a refused run registers no model at all."""
    for kind in ("churn", "value"):
        check_trainable(kind, sets[kind])
