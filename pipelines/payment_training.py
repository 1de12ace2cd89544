"""Train, track and gate the payment-risk model (models/payment_risk.py) like the churn model.

Its training set is built from the invoices (features/payment_labels.py); the fit, the
out-of-time evaluation beside the rule baseline "worst lateness in the last 180 days"
(models.baselines.payment_baseline, compared by ROC-AUC), the MLflow run, the registry
(`custscore-payment`) and the champion gate are pipelines/training.py's. Data without invoices
(or `payment_risk.enabled: false`) skips it with one logged line; a training set too small or
of one class is a `model` warning, and the run goes on without a new payment model.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from features.build import feature_set_name
from features.payment_labels import PAYMENT_LABEL, build_payment_training_set, has_payment_outcomes
from features.training_set import InsufficientHistoryError
from models.baselines import payment_baseline
from models.metrics import churn_metrics
from models.params import ChurnParams
from models.payment_risk import PaymentRiskModel
from models.splits import split_by_flag
from pipelines import plots, tracking
from pipelines.progress import counted, staged
from pipelines.run_outcome import add_warning
from pipelines.runs import Run
from pipelines.tasks import attributes_summary, feature_spec, midnight
from pipelines.training import (
    MIN_CUSTOMERS_PER_PART,
    RunContext,
    TrainingDataError,
    TrainingOutcome,
    _track,
    champion_scores,
    feature_names_of,
    reason_population,
    snapshot_list,
)

log = logging.getLogger(__name__)

KIND = "payment"
PAYMENT_SET_STAGE = "payment snapshots: features and labels"
BASELINE_RANK_METRICS = ("roc_auc", "pr_auc", "lift_top_decile", "capture_top_decile", "base_rate", "n_rows")


def payment_risk_unavailable(run: Run) -> str | None:
    """Why this run has no payment risk (None: it has): switched off, or no usable invoices."""
    if not run.cfg.payment_risk.enabled:
        return "payment_risk.enabled is false in the configuration"
    return has_payment_outcomes(run.data.tables)


def train_payment_risk(run: Run) -> dict:
    """{"payment": the training outcome} when the run's data has invoices, else {} with the reason logged."""
    reason = payment_risk_unavailable(run)
    if reason is not None:
        log.info("payment-risk model not trained: %s", reason)
        return {}
    try:
        frame = payment_training_set(run)
        outcome = train_payment_task(frame, run)
    except (TrainingDataError, InsufficientHistoryError) as exc:
        add_warning("model", f"payment-risk model not trained: {exc}")
        return {}
    return {KIND: outcome.as_dict()}


def needs_payment_training(run: Run) -> bool:
    """A run that keeps its churn and value champions still trains payment risk when it has invoices and no champion."""
    return payment_risk_unavailable(run) is None and tracking.current_champion_version(KIND) is None


@task(name="build-payment-training-set", cache_policy=NO_CACHE)
@staged(PAYMENT_SET_STAGE)
def payment_training_set(run: Run) -> pd.DataFrame:
    """Snapshots of features and payment labels before the run's date (features/payment_labels.py)."""
    settings = run.cfg.payment_risk
    frame = build_payment_training_set(
        run.data.tables, midnight(_day_after(run.data.data_end, run.as_of)), spec=feature_spec(run.cfg),
        horizon_days=settings.horizon_days, late_days=settings.late_days,
        outcome_wait_days=settings.outcome_wait_days, n_snapshots=run.cfg.training.n_snapshots,
        step_days=run.cfg.training.step_days, n_validation_snapshots=run.cfg.training.n_validation_snapshots,
        min_history_days=run.cfg.training.min_history_days, max_customers=run.cfg.training.max_customers,
    )
    counted(PAYMENT_SET_STAGE, len(frame), "rows")
    return frame


def _day_after(data_end: datetime, as_of: date) -> date:
    """Outcomes are observed up to the end of the last day with data (and never past the run's date)."""
    return min(data_end.date() + timedelta(days=1), as_of)


@task(name="train-payment-and-gate", cache_policy=NO_CACHE)
@staged("train payment: fit, evaluate out of time, register, gate")
def train_payment_task(frame: pd.DataFrame, run: Run) -> TrainingOutcome:
    """Fit the payment-risk model, evaluate it out of time, log it to MLflow and apply the champion gate."""
    cfg = run.cfg
    ctx = RunContext(feature_set_name(feature_spec(cfg)), run.data.data_hash, run.as_of.isoformat(),
                     cfg.payment_risk.horizon_days, run.source_label, design="fixed",
                     requested_snapshots=(cfg.training.n_snapshots, cfg.training.n_validation_snapshots),
                     attributes=attributes_summary(run.data), too_good=cfg.training.too_good,
                     calibration_gate=cfg.training.calibration_gate)
    return train_payment(frame, cfg.models.churn, ctx)


def check_payment_trainable(frame: pd.DataFrame) -> None:
    """Refuse, before any fit or registration, too few customers or a label of one class in either part."""
    train, valid = split_by_flag(frame)
    for part, rows in (("training", train), ("validation", valid)):
        customers = rows["customer_id"].nunique()
        classes = rows[PAYMENT_LABEL].value_counts()
        if customers < MIN_CUSTOMERS_PER_PART or len(classes) < 2:
            raise TrainingDataError(
                f"payment {part} snapshot(s) {snapshot_list(rows) or 'none'} hold {customers} customers with "
                f"label_pay_late {dict(classes.sort_index().astype(int)) or 'none'}: the model needs at least "
                f"{MIN_CUSTOMERS_PER_PART} customers and both late and punctual payers; nothing registered; use more "
                "invoice history or lower payment_risk.late_days")


def train_payment(frame: pd.DataFrame, params: ChurnParams, ctx: RunContext) -> TrainingOutcome:
    """Fit on earlier snapshots, evaluate on the latest beside the lateness rule and the champion, log and gate."""
    check_payment_trainable(frame)
    train, valid = split_by_flag(frame)
    names = feature_names_of(frame)  # every feature: features.model_features chooses the churn and value models'
    model = PaymentRiskModel(params).fit(train[names], train[PAYMENT_LABEL], valid[names], valid[PAYMENT_LABEL], names,
                                         reason_population=reason_population(valid))
    y_val = valid[PAYMENT_LABEL].to_numpy(dtype=float)
    p = model.validation_proba_  # cross-fitted where calibrated, as the churn model's
    baseline = payment_baseline(valid)
    metrics = churn_metrics(y_val, p)
    # The rule is a number of days, not a probability: only its ranking metrics mean something.
    baseline_metrics = {k: v for k, v in churn_metrics(y_val, baseline).items() if k in BASELINE_RANK_METRICS}
    champion = champion_scores(KIND, valid, y_val, cross_fit=(model.params.calibration_folds, model.params.seed))
    figures = {
        "calibration_curve": plots.calibration_curve(y_val, p),
        "gain_chart": plots.gain_chart(y_val, {"model": p, "baseline": baseline}, "late payers"),
        "decile_chart": plots.decile_chart(y_val, p, "late-payment rate"),
    }
    extra = {"calibration": model.calibration_report_, "best_iteration": model.best_iteration_,
             "label_rate_train": float(np.mean(train[PAYMENT_LABEL])), "label_rate_validation": float(np.mean(y_val)),
             "baseline": "days_late_max_180d (worst lateness in the last 180 days)"}
    return _track(KIND, model, model.booster_, model.params, frame, train, valid, names, metrics, baseline_metrics,
                  champion.headline, figures, extra, ctx, None, champion_version=champion.version,
                  champion_calibration=champion.calibration)
