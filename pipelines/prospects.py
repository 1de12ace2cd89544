"""Prospects in the flows: train the prospect model where the data allows, score a run's prospects.

Training runs after churn and value in the train and run flows, on the prospect training set of
features/prospects.py, tracked and gated like them (`custscore-prospect` in MLflow, champion gate
against the days-since-signup baseline, out of time). Scoring adds the run's `prospects` table and
its potential accounts to `account_grades` (serving/prospects.py). Where the data has no
customers table, nothing to know prospects by, or too few prospects, or `prospects.enabled` is
false, a logged line says so and prospects stay unscored `new`.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from features.build import feature_set_name
from features.prospects import (
    LABEL,
    VALUE_LABEL,
    build_prospect_training_set,
    converter_values,
    prospect_feature_columns,
    prospect_features,
    why_no_prospect_model,
)
from features.tables import columns_of
from features.validation import ValidatedData
from models.baselines import signup_age_baseline
from models.churn import ChurnModel
from models.metrics import churn_metrics
from models.model_files import ModelFileError
from models.prospect import ProspectModel
from models.splits import split_by_flag
from pipelines import plots, tracking
from pipelines.config import CustscoreConfig
from pipelines.progress import staged
from pipelines.training import (
    MIN_CUSTOMERS_PER_PART,
    ChampionScores,
    RunContext,
    TrainingOutcome,
    _track,
    champion_churn_proba,
    latest_snapshot,
    snapshot_list,
)
from serving.prospects import TABLE_NAME, ProspectRules, prospect_table, with_potential_prospects
from serving.scorecard import TABLE_NAME as ACCOUNT_GRADES
from serving.scored_run import ScoredRun

log = logging.getLogger(__name__)

KIND = "prospect"
UNSCORED = "prospects stay unscored `new`"


def why_not_trained(data: ValidatedData, cfg: CustscoreConfig) -> str | None:
    """None when the prospect model can be trained on this data; else why not, in one line."""
    if not cfg.prospects.enabled:
        return "prospects.enabled is false in the configuration"
    return why_no_prospect_model(data.tables)


def too_few_prospects(frame: pd.DataFrame) -> str | None:
    """Why a prospect training set cannot give an honest model (too few prospects, one class), or None."""
    if frame.empty or frame["is_validation"].all() or not frame["is_validation"].any():
        return "the history holds no training snapshot before the validation one"
    train, valid = split_by_flag(frame)
    for part, rows in (("training", train), ("validation", valid)):
        if rows["customer_id"].nunique() < MIN_CUSTOMERS_PER_PART:
            return (f"the {part} snapshot(s) {snapshot_list(rows)} hold {rows['customer_id'].nunique()} prospects, "
                    f"fewer than {MIN_CUSTOMERS_PER_PART}")
        if rows[LABEL].nunique() < 2:
            return f"every prospect of the {part} snapshot(s) {snapshot_list(rows)} has the same outcome"
    return None


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


@task(name="train-prospect-model", cache_policy=NO_CACHE)
@staged("train prospect: snapshots, fit, evaluate out of time, register, gate")
def train_prospects(data: ValidatedData, scoring_date: date, cfg: CustscoreConfig, source: str) -> dict:
    """{"prospect": outcome} when the model was trained; {} (with a logged line) when the data does not allow it."""
    reason = why_not_trained(data, cfg)
    frame = converters = None
    if reason is None:
        data_end = datetime.combine(data.data_end.date() + timedelta(days=1), datetime.min.time())
        end = min(data_end, midnight(scoring_date))
        frame = build_prospect_training_set(data.tables, end, horizon_days=cfg.labels.churn_horizon_days,
                                            n_snapshots=cfg.prospects.n_snapshots, step_days=cfg.prospects.step_days,
                                            windows=cfg.features.windows_days)
        converters = converter_values(data.tables, end, value_horizon_days=cfg.labels.value_horizon_days,
                                      lookback_days=cfg.prospects.value_lookback_days)
        reason = too_few_prospects(frame) or (None if len(converters) else
                                              "no customer's first order is a whole value horizon old")
    if reason is not None:
        log.info("prospect model not trained: %s; %s", reason, UNSCORED)
        return {}
    attributes = data.attributes.as_dict() if data.attributes is not None else None
    ctx = RunContext(feature_set=f"{feature_set_name(cfg.features)}-prospects", data_hash=data.data_hash,
                     scoring_date=scoring_date.isoformat(), horizon_days=cfg.labels.churn_horizon_days, source=source,
                     design="fixed", attributes=attributes, too_good=cfg.prospects.too_good,
                     calibration_gate=cfg.training.calibration_gate)
    return {KIND: train_prospect(frame, converters, cfg, ctx).as_dict()}


def train_prospect(frame: pd.DataFrame, converters: pd.DataFrame, cfg: CustscoreConfig, ctx: RunContext) -> TrainingOutcome:
    """Fit the prospect model on the training snapshots, evaluate on the validation one beside the baseline, log and gate it."""
    params = cfg.prospects.model
    train, valid = split_by_flag(frame)
    names = [c for c in frame.columns if c not in ("customer_id", "as_of", "is_validation", LABEL)]
    model = ProspectModel(params, cfg.prospects.min_converters_per_leaf).fit(
        train[names], train[LABEL], valid[names], valid[LABEL], names, converters, converters[VALUE_LABEL],
        reason_population=latest_snapshot(valid))
    y_val = valid[LABEL].to_numpy(dtype=float)
    p = model.validation_proba_
    baseline = days_since_signup_baseline(train, valid)
    metrics, baseline_metrics = churn_metrics(y_val, p), churn_metrics(y_val, baseline)
    champion = champion_prospect_scores(valid, y_val, params.calibration_folds, params.seed)
    figures = {
        "calibration_curve": plots.calibration_curve(y_val, p),
        "gain_chart": plots.gain_chart(y_val, {"model": p, "baseline": baseline}, "first orders"),
    }
    extra = {"calibration": model.classifier_.calibration_report_, "best_iteration": model.classifier_.best_iteration_,
             "prospect_value": {"converters": model.value_.converters_, "mean": model.value_.mean_,
                                "by_attributes": model.value_.booster_ is not None}}
    return _track(KIND, model, model.booster_, params, frame, train, valid, names, metrics, baseline_metrics,
                  champion.headline, figures, extra, ctx, None, champion_version=champion.version,
                  champion_calibration=champion.calibration)


def days_since_signup_baseline(train: pd.DataFrame, valid: pd.DataFrame) -> np.ndarray:
    """The rule to beat: the training rows' first-order rate at the same days since sign-up (their mean without it)."""
    if "days_since_signup" not in train.columns:
        return np.full(len(valid), float(train[LABEL].mean()))
    return signup_age_baseline(train["days_since_signup"], train[LABEL], valid["days_since_signup"])


def champion_prospect_scores(valid: pd.DataFrame, y_val: np.ndarray, folds: int, seed: int) -> ChampionScores:
    """The prospect champion's ROC AUC and Brier on the challenger's validation rows, calibrated as the challenger's are."""
    try:
        champion = tracking.load_champion(KIND)
    except ModelFileError as exc:
        log.warning("%s; it scores as not comparable", exc)
        return ChampionScores(float("-inf"), None, tracking.current_champion_version(KIND))
    if champion is None:
        return ChampionScores()
    classifier: ChurnModel = champion.model.classifier_
    missing = [c for c in classifier.feature_names_ if c not in valid.columns]
    if missing:
        log.warning("prospect champion v%s needs features absent here (%s): it scores as not comparable",
                    champion.version, missing[:5])
        return ChampionScores(float("-inf"), None, champion.version)
    proba = champion_churn_proba(classifier, valid[classifier.feature_names_], y_val, folds, seed)
    metrics = churn_metrics(y_val, proba)
    return ChampionScores(metrics["roc_auc"], metrics["brier"], champion.version)


def prospect_rules(cfg: CustscoreConfig) -> ProspectRules:
    """What scoring takes from the configuration."""
    return ProspectRules(potential=cfg.prospects.potential, churn_horizon_days=cfg.labels.churn_horizon_days,
                         value_horizon_days=cfg.labels.value_horizon_days,
                         additivity_atol=cfg.scoring_settings().additivity_atol)


@task(name="score-prospects", cache_policy=NO_CACHE)
@staged("score prospects")
def with_prospect_scores(run, scored: ScoredRun) -> tuple[ScoredRun, dict]:
    """The scored run with its `prospects` table and potential prospects in `account_grades`; what was done, for the summary."""
    reason = why_not_trained(run.data, run.cfg)
    champion = None
    if reason is None:
        try:
            champion = tracking.load_champion(KIND)
        except ModelFileError as exc:
            log.warning("%s; %s", exc, UNSCORED)
            return scored, {"skipped": str(exc)}
        if champion is None:
            reason = "no prospect model has become champion yet"
    if reason is None:
        built = prospect_feature_columns(columns_of(run.data.tables).get("customers", []), "interactions" in run.data.tables,
                                         run.cfg.features.windows_days)
        missing = [c for c in champion.model.feature_names_ if c not in built]
        if missing:
            reason = f"the prospect champion v{champion.version} uses columns this run does not build: {missing[:5]}"
    if reason is not None:
        log.info("prospects not scored: %s; %s", reason, UNSCORED)
        return scored, {"skipped": reason}
    features = prospect_features(run.data.tables, midnight(run.as_of), run.cfg.features.windows_days)
    rules = prospect_rules(run.cfg)
    table = prospect_table(features, champion.model, champion.version, rules)
    scored.tables[TABLE_NAME] = table
    scored.tables[ACCOUNT_GRADES] = with_potential_prospects(scored.tables.get(ACCOUNT_GRADES), table, rules)
    potential = int(np.asarray(table.column("potential")).sum()) if table.num_rows else 0
    log.info("scored %d prospects with prospect model v%s; %d potential accounts", table.num_rows, champion.version,
             potential)
    return scored, {"model_version": champion.version, "grade": tracking.grade_of(champion.run_id),
                    "scored": table.num_rows, "potential": potential}
