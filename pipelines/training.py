"""Fit, evaluate out of time, track and gate one model kind: the glue between models/ and MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from models.baselines import churn_baseline, value_baseline
from models.btyd import BTYD_FIT_ROWS, BtydFeatures
from models.churn import ChurnModel
from models.explain import contributions
from models.grading import grade_model
from models.level import LevelAnchor
from models.metrics import churn_metrics, interval_coverage, value_metrics
from models.params import ChurnParams, ValueParams
from models.splits import split_by_flag
from models.value import FrequencySeverityRegressor, ValueModel
from pipelines import plots, tracking
from pipelines.tracking import HEADLINE_METRIC
from serving.scoring import fit_reason_reference

log = logging.getLogger(__name__)

NON_FEATURE_COLUMNS = {"customer_id", "as_of", "is_validation"}
TARGETS = {"churn": "label_churn", "value": "label_revenue"}


def feature_names_of(training_set: pd.DataFrame, allowed: tuple[str, ...] | None = None) -> list[str]:
    """Feature columns of a training set: everything but ids, snapshot, flags and labels; only `allowed` if given."""
    names = [c for c in training_set.columns if c not in NON_FEATURE_COLUMNS and not c.startswith("label_")]
    if allowed is None:
        return names
    unknown = sorted(set(allowed) - set(names))
    if unknown:
        raise ValueError(f"features.model_features names columns the feature table does not have: {unknown}; "
                         f"check the spelling and the windows_days / tenure_ratios / btyd settings that make them")
    return [c for c in names if c in allowed]


@dataclass
class TrainingOutcome:
    """What one training run produced and decided, for the CLI summary and the flow result."""

    kind: str
    run_id: str
    version: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    champion_metric: float | None
    grade: str
    grade_text: str
    promoted: bool
    reason: str
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form for Prefect results and JSON."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class RunContext:
    """What every training run logs about where its data came from."""

    feature_set: str
    data_hash: str
    scoring_date: str
    horizon_days: int
    source: str
    # Only these feature columns reach the models (config features.model_features; None: all).
    model_features: tuple[str, ...] | None = None
    # Level anchor mode of models/level.py (config training.level_anchor).
    level_anchor: str = "auto"


def _order_days(train: pd.DataFrame, valid: pd.DataFrame, label: str) -> dict[str, pd.Series]:
    """order_days / order_days_val for a model's fit, when the training set has the label."""
    return {"order_days": train[label], "order_days_val": valid[label]} if label in train.columns else {}


def train_churn(frame: pd.DataFrame, params: ChurnParams, ctx: RunContext) -> TrainingOutcome:
    """Fit the churn model on earlier snapshots, evaluate on the latest, log and gate it."""
    train, valid = split_by_flag(frame)
    names = feature_names_of(frame, ctx.model_features)
    model = ChurnModel(params).fit(
        train[names], train["label_churn"], valid[names], valid["label_churn"], names,
        **_order_days(train, valid, "label_churn_order_days"),
    )
    model.reason_reference_ = fit_reason_reference("churn", model, latest_snapshot(valid))
    y_val = valid["label_churn"].to_numpy(dtype=float)
    p = model.validation_proba_  # cross-fitted where calibrated: honest out-of-time probabilities
    # Baselines and the champion read the whole validation frame: their columns need not be model features.
    baseline = churn_baseline(valid)
    metrics = churn_metrics(y_val, p)
    baseline_metrics = churn_metrics(y_val, baseline)
    champion_metric = _champion_metric("churn", valid, y_val)
    figures = {
        "calibration_curve": plots.calibration_curve(y_val, p),
        "gain_chart": plots.gain_chart(y_val, {"model": p, "baseline": baseline}, "churners"),
        "decile_chart": plots.decile_chart(y_val, p, "churn rate"),
    }
    extra = {"calibration": model.calibration_report_, "best_iteration": model.best_iteration_}
    return _track("churn", model, model.booster_, params, frame, train, valid, names, metrics,
                  baseline_metrics, champion_metric, figures, extra, ctx)


def train_value(frame: pd.DataFrame, params: ValueParams, ctx: RunContext) -> TrainingOutcome:
    """Fit the value models on earlier snapshots, evaluate on the latest, log and gate them."""
    train, valid = split_by_flag(frame)
    names = feature_names_of(frame, ctx.model_features)
    # With transactions alone there may be no cost to serve at all; a model of zeros is no model.
    has_cost = "label_cost_to_serve" in frame.columns and bool(train["label_cost_to_serve"].abs().sum() > 0)
    model = ValueModel(params).fit(
        train[names], train["label_revenue"], valid[names], valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        cost_to_serve=train["label_cost_to_serve"] if has_cost else None,
        cost_to_serve_val=valid["label_cost_to_serve"] if has_cost else None,
        **_order_days(train, valid, "label_value_order_days"),
    )
    model.reason_reference_ = fit_reason_reference("value", model, latest_snapshot(valid))
    X_val, y_val = valid[names], valid["label_revenue"].to_numpy(dtype=float)
    pred = model.predict(X_val)
    model.level_anchor_ = fit_level_anchor(valid, y_val, pred["expected_revenue"].to_numpy(), ctx.horizon_days,
                                           ctx.level_anchor)
    baseline = value_baseline(valid, ctx.horizon_days)  # its revenue window need not be a model feature
    metrics = value_metrics(y_val, pred["expected_revenue"].to_numpy())
    metrics["bias_pct_level_anchored"] = model.level_anchor_.bias_anchored_pct_
    metrics["level_anchor_used"] = float(model.level_anchor_.use_anchor_)
    metrics["interval_coverage"] = model.interval_coverage_
    metrics["interval_coverage_in_sample_band"] = interval_coverage(y_val, pred["value_p10"], pred["value_p90"])
    baseline_metrics = value_metrics(y_val, baseline)
    champion_metric = _champion_metric("value", valid, y_val)
    figures = {
        "gain_chart": plots.gain_chart(y_val, {"model": pred["expected_revenue"].to_numpy(), "baseline": baseline},
                                       "revenue"),
        "decile_chart": plots.decile_chart(y_val, pred["expected_revenue"].to_numpy(), "revenue"),
    }
    anchor = model.level_anchor_
    extra = {"interval_nominal": model.interval_nominal_, "interval_coverage": model.interval_coverage_,
             "level_anchor": {"used": anchor.use_anchor_, "validation_bias_pct_model": anchor.bias_model_pct_,
                              "validation_bias_pct_anchored": anchor.bias_anchored_pct_}}
    revenue = model.regressors_["revenue"]
    if isinstance(revenue, FrequencySeverityRegressor):
        extra["frequency_severity"] = {"frequency_trees": revenue.frequency_trees_, "severity_trees": revenue.severity_trees_,
                                       "scale": revenue.scale_}
    return _track("value", model, model.boosters_["revenue"], params, frame, train, valid, names, metrics,
                  baseline_metrics, champion_metric, figures, extra, ctx)


def latest_snapshot(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent snapshot: the customers a model's reasons are compared with."""
    return frame.loc[frame["as_of"] == frame["as_of"].max()]


def fit_level_anchor(X_val: pd.DataFrame, y_val: np.ndarray, pred_val: np.ndarray, horizon_days: int,
                     mode: str = "auto") -> LevelAnchor:
    """Decide on out-of-time data whether scoring rescales total revenue to the BG/NBD total.

    Tree models cannot extrapolate when the scored population is older (or younger) than the
    training snapshots; BG/NBD + Gamma-Gamma, fitted on the population being scored, carries
    ageing in its structure. The anchor is kept only where it lowers the aggregate bias on the
    validation snapshot (models/level.py), so the choice never looks past the as-of date; mode
    "always" / "never" is a configured choice (training.level_anchor). X_val is the whole validation
    frame: the BTYD inputs are read even when the model does not use them (features.model_features).
    """
    btyd = BtydFeatures(horizon_days, max_fit_rows=BTYD_FIT_ROWS).fit(X_val)
    anchor = btyd.transform(X_val)[f"btyd_expected_revenue_{horizon_days}d"].to_numpy()
    return LevelAnchor(mode=mode).fit(y_val, pred_val, anchor)


def snapshot_list(frame: pd.DataFrame) -> str:
    """Comma-separated snapshot dates of a training frame (from its distinct as_of values only)."""
    return ",".join(sorted({str(d)[:10] for d in frame["as_of"].unique()}))


def _champion_metric(kind: str, X_val: pd.DataFrame, y_val: np.ndarray) -> float | None:
    """The current champion's headline metric on the same out-of-time data, if it can score it."""
    champion = tracking.load_champion(kind)
    if champion is None:
        return None
    missing = [c for c in champion.model.feature_names_ if c not in X_val.columns]
    if missing:
        # A champion that cannot score today's data cannot defend its title on it.
        log.warning("champion v%s needs features absent here (%s): it scores as not comparable",
                    champion.version, missing[:5])
        return float("-inf")
    X = X_val[champion.model.feature_names_]
    if kind == "churn":
        return churn_metrics(y_val, champion.model.predict_proba(X))[HEADLINE_METRIC[kind]]
    pred = champion.model.predict(X)["expected_revenue"].to_numpy()
    return value_metrics(y_val, pred)[HEADLINE_METRIC[kind]]


def _track(kind, model, booster, params, frame, train, valid, names, metrics, baseline_metrics,
           champion_metric, figures, extra, ctx: RunContext) -> TrainingOutcome:
    """Log one training run with everything needed to reproduce and judge it, then gate it."""
    grade = grade_model(kind, metrics, baseline_metrics)
    experiment = mlflow.get_experiment_by_name(tracking.model_name(kind))
    X_val = valid[names]
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"{kind}-{ctx.scoring_date}") as run:
        mlflow.log_params({f"model.{k}": v for k, v in params.model_dump().items()})
        mlflow.log_params({
            "feature_set": ctx.feature_set, "n_features": len(names), "data_hash": ctx.data_hash,
            "scoring_date": ctx.scoring_date, "horizon_days": ctx.horizon_days, "data_source": ctx.source,
            "train_snapshots": snapshot_list(train),
            "validation_snapshots": snapshot_list(valid),
        })
        rows = {"train_rows": len(train), "validation_rows": len(valid), "train_customers": train["customer_id"].nunique()}
        mlflow.log_metrics({k: float(v) for k, v in rows.items()})
        tracking.log_metrics_beside_baseline(metrics, baseline_metrics)
        tracking.log_json(names, "feature_names.json")
        tracking.log_json(extra, "model_details.json")
        tracking.log_json({"grade": grade.letter, "text": grade.text}, "grade.json")
        sample = X_val.iloc[: min(len(X_val), 5000)]
        contrib = contributions(booster, sample)
        gains = booster.feature_importance(importance_type="gain")
        figures = {**figures, "shap_beeswarm": plots.shap_beeswarm(contrib, sample),
                   "feature_importance": plots.feature_importance(booster.feature_name(), gains)}
        tracking.log_figures(figures)
        version = tracking.log_model_version(kind, model, X_val)
        metric = HEADLINE_METRIC[kind]
        decision = tracking.decide_promotion(metric, metrics[metric], baseline_metrics[metric], champion_metric)
        mlflow.set_tags({"grade": grade.letter, "promoted": str(decision.promote), "promotion_reason": decision.reason})
        tracking.apply_promotion(kind, version.version, decision)
    log.info("%s model v%s: %s; %s", kind, version.version, grade.text, decision.reason)
    return TrainingOutcome(kind, run.info.run_id, version.version, metrics, baseline_metrics, champion_metric,
                           grade.letter, grade.text, decision.promote, decision.reason, rows)
