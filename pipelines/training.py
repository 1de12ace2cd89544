"""Fit, evaluate out of time, track and gate one model kind: the glue between models/ and MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from features.build import has_transaction_history
from models.baselines import churn_baseline, value_baseline
from models.btyd import BTYD_FIT_ROWS, BtydFeatures
from models.churn import ChurnModel, cross_fitted_calibration, sigmoid
from models.design import (
    CHURN_MENU,
    RULE_TEXT,
    VALUE_MENU,
    Candidate,
    DesignChoice,
    available,
    candidate_columns,
    pick_index,
)
from models.explain import contributions
from models.grading import grade_model
from models.level import LevelAnchor
from models.metrics import aggregate_bias_pct, churn_metrics, interval_coverage, normalized_gini, value_metrics
from models.model_files import ModelFileError
from models.params import ChurnParams, ValueParams
from models.splits import split_by_flag
from models.value import FrequencySeverityRegressor, ValueModel, revenue_validation_predictions
from pipelines import plots, tracking
from pipelines.config import CalibrationGate, TooGoodLimits
from pipelines.tracking import CALIBRATION_METRIC, HEADLINE_METRIC

log = logging.getLogger(__name__)

NON_FEATURE_COLUMNS = {"customer_id", "as_of", "is_validation"}
TARGETS = {"churn": "label_churn", "value": "label_revenue"}
# Below this many customers in the training or the validation snapshots, out-of-time metrics are noise
# and the champion gate would decide on chance: refuse instead of registering such a model.
MIN_CUSTOMERS_PER_PART = 50


class TrainingDataError(ValueError):
    """The training set cannot give an honest model (too few customers, a churn label of one class)."""


def check_trainable(kind: str, frame: pd.DataFrame) -> None:
    """Refuse, before any fit or registration, a training set too small or with a single churn class."""
    train, valid = split_by_flag(frame)
    for part, rows in (("training", train), ("validation", valid)):
        customers = rows["customer_id"].nunique()
        if customers < MIN_CUSTOMERS_PER_PART:
            raise TrainingDataError(
                f"{kind} {part} snapshot(s) {snapshot_list(rows) or 'none'} hold {customers} customers, fewer than "
                f"{MIN_CUSTOMERS_PER_PART}: nothing registered; use more data or a later --as-of")
        if kind == "churn":
            _check_both_classes(part, rows)


def _check_both_classes(part: str, rows: pd.DataFrame) -> None:
    classes = rows["label_churn"].dropna().astype(int).value_counts()
    if len(classes) < 2:
        only = int(classes.index[0]) if len(classes) else "missing"
        raise TrainingDataError(
            f"label 'churn' has a single class at {part} snapshot(s) {snapshot_list(rows)} "
            f"(all {only}, {len(rows)} rows): nothing registered; use data with both churners and active "
            f"customers, another --as-of or another --churn-horizon-days")


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
    snapshots: str = ""
    design: str = ""
    # The champion's calibration figure (tracking.CALIBRATION_METRIC) on the same rows, None without one.
    champion_calibration: float | None = None

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
    # search: pick the design from the menu of models/design.py out of time; fixed: the config's.
    design: str = "search"
    # Candidates of the search train on a hash sample of at most this many customers (None: all).
    design_max_customers: int | None = 20_000
    # Configured snapshots (training.n_snapshots / n_validation_snapshots), to say when fewer fit.
    requested_snapshots: tuple[int, int] | None = None
    # The customers columns kept as attributes and the excluded ones with their reason ({kept, excluded}).
    attributes: dict[str, Any] | None = None
    # Limits beyond which a model is registered but not promoted (config training.too_good).
    too_good: TooGoodLimits = TooGoodLimits()
    # How much worse than the champion's a challenger's calibration may be (config training.calibration_gate).
    calibration_gate: CalibrationGate = CalibrationGate()


def _order_days(train: pd.DataFrame, valid: pd.DataFrame, label: str) -> dict[str, pd.Series]:
    """order_days / order_days_val for a model's fit, when the training set has the label."""
    return {"order_days": train[label], "order_days_val": valid[label]} if label in train.columns else {}


def train_churn(frame: pd.DataFrame, params: ChurnParams, ctx: RunContext,
                search: pd.DataFrame | None = None) -> TrainingOutcome:
    """Fit the churn model on earlier snapshots, evaluate on the latest, log and gate it.

    `search`: the design search's training rows, a horizon before validation (None: the
    search trains its candidates on the training snapshots themselves).
    """
    check_trainable("churn", frame)
    train, valid = split_by_flag(frame)
    names = feature_names_of(frame, ctx.model_features)
    choice = p_search = None
    if ctx.design == "search":
        candidate, choice, p_search = search_churn_design(train if search is None else search, valid, names, params, ctx)
        choice.gap_matched = search is not None
        names, params = candidate_columns(candidate, names), params.model_copy(update={"objective": candidate.objective})
    model = ChurnModel(params).fit(
        train[names], train["label_churn"], valid[names], valid["label_churn"], names,
        **_order_days(train, valid, "label_churn_order_days"),
        reason_population=reason_population(valid), design=choice,
        # Blends are judged where the candidates met validation across a horizon, as scores meet customers.
        blend_reference=_reference(valid, f"btyd_p_no_order_{ctx.horizon_days}d"),
        blend_judged_on=None if search is None else p_search,
    )
    choice = _fitted_choice(model)
    y_val = valid["label_churn"].to_numpy(dtype=float)
    p = model.validation_proba_  # cross-fitted where calibrated: honest out-of-time probabilities
    # Baselines and the champion read the whole validation frame: their columns need not be model features.
    baseline = churn_baseline(valid)
    metrics = churn_metrics(y_val, p)
    baseline_metrics = churn_metrics(y_val, baseline)
    champion = champion_scores("churn", valid, y_val, cross_fit=(params.calibration_folds, params.seed))
    figures = {
        "calibration_curve": plots.calibration_curve(y_val, p),
        "gain_chart": plots.gain_chart(y_val, {"model": p, "baseline": baseline}, "churners"),
        "decile_chart": plots.decile_chart(y_val, p, "churn rate"),
    }
    extra = {"calibration": model.calibration_report_, "best_iteration": model.best_iteration_}
    return _track("churn", model, model.booster_, params, frame, train, valid, names, metrics,
                  baseline_metrics, champion.headline, figures, extra, ctx, choice,
                  champion_version=champion.version, champion_calibration=champion.calibration)


def design_sample(train: pd.DataFrame, max_customers: int | None) -> pd.DataFrame:
    """Training rows of a fixed hash sample of at most `max_customers` customers (all rows when fewer)."""
    customers = train["customer_id"].astype(str)
    n_customers = customers.nunique()
    if max_customers is None or n_customers <= max_customers:
        return train
    buckets = pd.util.hash_pandas_object(customers, index=False).to_numpy() % 1_000_000
    return train.loc[buckets < int(1_000_000 * max_customers / n_customers)]


def _reference(valid: pd.DataFrame, column: str) -> np.ndarray | None:
    """A BG/NBD output of the validation rows (fitted on each snapshot's own rows), if the frame has it."""
    return valid[column].to_numpy(dtype=float) if column in valid.columns else None


def search_churn_design(train: pd.DataFrame, valid: pd.DataFrame, names: list[str], params: ChurnParams,
                        ctx: RunContext) -> tuple[Candidate, DesignChoice, np.ndarray]:
    """Fit every churn candidate on the design sample of `train`; pick one by the rule of models/design.py.

    Returns the chosen candidate, the record of the search, and the chosen candidate's
    validation probabilities.
    """
    y_val = valid["label_churn"].to_numpy(dtype=float)

    def fit(candidate: Candidate, columns: list[str], sample: pd.DataFrame) -> tuple[dict, np.ndarray]:
        fitted = ChurnModel(params.model_copy(update={"objective": candidate.objective})).fit(
            sample[columns], sample["label_churn"], valid[columns], valid["label_churn"], columns,
            **_order_days(sample, valid, "label_churn_order_days"),
        )
        m = churn_metrics(y_val, fitted.validation_proba_)
        return {"roc_auc": m["roc_auc"], "brier": m["brier"]}, fitted.validation_proba_

    return _search_design("churn", CHURN_MENU, names, train, ctx, fit, "roc_auc")


def _search_design(kind: str, menu: tuple[Candidate, ...], names: list[str], train: pd.DataFrame, ctx: RunContext,
                   fit, metric: str) -> tuple[Candidate, DesignChoice, np.ndarray]:
    """Fit each available candidate of `menu` on the design sample (`fit` returns its metrics and validation output); pick by the rule."""
    sample = design_sample(train, ctx.design_max_customers)
    candidates = available(menu, names)
    rows, outputs = [], []
    for candidate in candidates:
        columns = candidate_columns(candidate, names)
        measured, output = fit(candidate, columns, sample)
        rows.append({"name": candidate.name, "features": candidate.features, "objective": candidate.objective,
                     "n_features": len(columns), **measured})
        outputs.append(output)
    i = pick_index([r[metric] for r in rows])
    log.info("%s design search on %d training rows: %s; chosen %s", kind, len(sample),
             {r["name"]: round(r[metric], 4) for r in rows}, candidates[i].name)
    return candidates[i], DesignChoice(kind, rows, candidates[i].name, [], 0.0, RULE_TEXT), outputs[i]


def train_value(frame: pd.DataFrame, params: ValueParams, ctx: RunContext,
                search: pd.DataFrame | None = None) -> TrainingOutcome:
    """Fit the value models on earlier snapshots, evaluate on the latest, log and gate them (`search`: as train_churn)."""
    check_trainable("value", frame)
    train, valid = split_by_flag(frame)
    names = feature_names_of(frame, ctx.model_features)
    choice = pred_search = None
    if ctx.design == "search":
        candidate, choice, pred_search = search_value_design(train if search is None else search, valid, names,
                                                             params, ctx)
        choice.gap_matched = search is not None
        names = candidate_columns(candidate, names)
    # With transactions alone there may be no cost to serve at all; a model of zeros is no model.
    has_cost = "label_cost_to_serve" in frame.columns and bool(train["label_cost_to_serve"].abs().sum() > 0)
    X_val, y_val = valid[names], valid["label_revenue"].to_numpy(dtype=float)
    level = level_reference(valid, ctx.horizon_days)
    reference = _reference(valid, f"btyd_expected_revenue_{ctx.horizon_days}d")
    model = ValueModel(params).fit(
        train[names], train["label_revenue"], X_val, valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        cost_to_serve=train["label_cost_to_serve"] if has_cost else None,
        cost_to_serve_val=valid["label_cost_to_serve"] if has_cost else None,
        **_order_days(train, valid, "label_value_order_days"),
        reason_population=reason_population(valid), level_reference=level, level_anchor=ctx.level_anchor,
        tenure=train["days_since_first_order"].to_numpy(dtype=float), design=choice, blend_reference=reference,
        blend_judged_on=_searched_blend_input(pred_search, search, valid, y_val, reference, ctx),
    )
    choice = _fitted_choice(model)
    pred = model.predict(X_val)
    baseline = value_baseline(valid, ctx.horizon_days)  # its revenue window need not be a model feature
    metrics = value_metrics(y_val, pred["expected_revenue"].to_numpy())
    metrics["bias_pct_level_anchored"] = model.level_anchor_.bias_anchored_pct_
    metrics["level_bias_pct"] = published_level_bias_pct(model, pred["expected_revenue"].to_numpy(), y_val, level, valid)
    metrics["level_anchor_used"] = float(model.level_anchor_.use_anchor_)
    metrics["interval_coverage"] = model.interval_coverage_
    metrics["interval_coverage_in_sample_band"] = interval_coverage(y_val, pred["value_p10"], pred["value_p90"])
    baseline_metrics = value_metrics(y_val, baseline)
    champion = champion_scores("value", valid, y_val, level)
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
                  baseline_metrics, champion.headline, figures, extra, ctx, choice,
                  champion_version=champion.version, champion_calibration=champion.calibration)


def _searched_blend_input(pred_search: np.ndarray | None, search: pd.DataFrame | None, valid: pd.DataFrame,
                          y_val: np.ndarray, reference: np.ndarray | None, ctx: RunContext) -> np.ndarray | None:
    """With search rows, the validation values a blend is judged on: anchored as scoring would anchor them.

    The search's chosen candidate faces validation a horizon later, and its anchor decision
    includes the ageing test against the search rows' tenure. None without search rows (the
    value model then judges on its own anchored validation values) or without a BG/NBD reference.
    """
    if search is None or pred_search is None or reference is None:
        return None
    anchor = LevelAnchor(mode=ctx.level_anchor).fit(y_val, pred_search, reference,
                                                   tenure_train=search["days_since_first_order"].to_numpy(dtype=float))
    return anchor.transform(pred_search, reference, tenure_scored=valid["days_since_first_order"].to_numpy(dtype=float))[0]


def search_value_design(train: pd.DataFrame, valid: pd.DataFrame, names: list[str], params: ValueParams,
                        ctx: RunContext) -> tuple[Candidate, DesignChoice, np.ndarray]:
    """Fit the revenue model of every value candidate on the design sample of `train`; pick one by the rule.

    Returns the chosen candidate, the record of the search, and the chosen candidate's
    validation predictions.
    """
    y_val = valid["label_revenue"].to_numpy(dtype=float)

    def fit(candidate: Candidate, columns: list[str], sample: pd.DataFrame) -> tuple[dict, np.ndarray]:
        order_days = _order_days(sample, valid, "label_value_order_days")
        pred = revenue_validation_predictions(
            params, sample[columns], sample["label_revenue"], valid[columns], valid["label_revenue"], columns,
            order_days.get("order_days"), order_days.get("order_days_val"),
        )
        return {"normalized_gini": normalized_gini(y_val, pred)}, pred

    return _search_design("value", VALUE_MENU, names, train, ctx, fit, "normalized_gini")


def latest_snapshot(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent snapshot."""
    return frame.loc[frame["as_of"] == frame["as_of"].max()]


def reason_population(valid: pd.DataFrame) -> pd.DataFrame:
    """The customers a model's reasons are compared with: those with history in the latest validation snapshot."""
    latest = latest_snapshot(valid)
    return latest.loc[has_transaction_history(latest)]


def _fitted_choice(model: Any) -> DesignChoice | None:
    """The design search's record as the model kept it at fit (blend share included), for tracking."""
    return None if model.design_ is None else DesignChoice(**model.design_)


def level_reference(X_val: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """BG/NBD + Gamma-Gamma expected revenue of each validation row, fitted on the validation frame itself.

    The level a value model's anchor rescales to, as scoring fits it on the population it scores.
    Tree models cannot extrapolate when the scored population is older (or younger) than the
    training snapshots; BG/NBD + Gamma-Gamma, fitted on the population being scored, carries
    ageing in its structure. The value model keeps the anchor only where it lowers the aggregate
    bias on the validation snapshot (models/level.py). The whole validation frame is read: the
    BTYD inputs are there even when the model does not use them (features.model_features).
    """
    btyd = BtydFeatures(horizon_days, max_fit_rows=BTYD_FIT_ROWS).fit(X_val)
    return btyd.transform(X_val)[f"btyd_expected_revenue_{horizon_days}d"].to_numpy()


def snapshot_list(frame: pd.DataFrame) -> str:
    """Comma-separated snapshot dates of a training frame (from its distinct as_of values only)."""
    return ",".join(sorted({str(d)[:10] for d in frame["as_of"].unique()}))


def published_level_bias_pct(model: Any, pred: np.ndarray, y_val: np.ndarray, level: np.ndarray,
                             valid: pd.DataFrame) -> float:
    """Aggregate bias (%) of the value level scoring would publish for the validation rows.

    The model's predicted total, rescaled to the BG/NBD level where its anchor applies to these
    customers (models/level.py), against the realised total; before any BG/NBD blend, as the
    headline metric is.
    """
    anchor = getattr(model, "level_anchor_", None)
    if anchor is not None:
        pred = anchor.transform(pred, level, tenure_scored=valid["days_since_first_order"].to_numpy(dtype=float))[0]
    return aggregate_bias_pct(y_val, pred)


def calibration_figure(kind: str, metrics: dict[str, float]) -> float:
    """The figure of tracking.CALIBRATION_METRIC ("lower is better") from a model's validation metrics."""
    return metrics["brier"] if CALIBRATION_METRIC[kind] == "brier" else abs(metrics["level_bias_pct"])


@dataclass(frozen=True)
class ChampionScores:
    """The current champion's figures on the challenger's validation rows (None: no champion)."""

    headline: float | None = None
    calibration: float | None = None
    version: str | None = None


def champion_scores(kind: str, valid: pd.DataFrame, y_val: np.ndarray,
                    level: np.ndarray | None = None, cross_fit: tuple[int, int] | None = None) -> ChampionScores:
    """The current champion's headline metric and calibration on the same out-of-time rows as the challenger.

    `valid` is the whole validation frame the challenger is measured on (its columns need not be the
    challenger's features); `level`: its `level_reference` (value only); `cross_fit`: the
    challenger's calibration folds and seed, so a churn champion is measured as the challenger is
    (None: the champion's own).
    """
    try:
        champion = tracking.load_champion(kind)
    except ModelFileError as exc:
        # A retrain is how a damaged or pickled champion is replaced: it cannot defend its title.
        log.warning("%s; it scores as not comparable", exc)
        return ChampionScores(float("-inf"), None, tracking.current_champion_version(kind))
    if champion is None:
        return ChampionScores()
    missing = [c for c in champion.model.feature_names_ if c not in valid.columns]
    if missing:
        # A champion that cannot score today's data cannot defend its title on it.
        log.warning("champion v%s needs features absent here (%s): it scores as not comparable",
                    champion.version, missing[:5])
        return ChampionScores(float("-inf"), None, champion.version)
    X = valid[champion.model.feature_names_]
    if kind != "value":  # churn and payment risk: calibrated probabilities
        folds, seed = cross_fit or (champion.model.params.calibration_folds, champion.model.params.seed)
        metrics = churn_metrics(y_val, champion_churn_proba(champion.model, X, y_val, folds, seed))
    else:
        pred = champion.model.predict(X)["expected_revenue"].to_numpy()
        metrics = value_metrics(y_val, pred)
        metrics["level_bias_pct"] = published_level_bias_pct(champion.model, pred, y_val, level, valid)
    return ChampionScores(metrics[HEADLINE_METRIC[kind]], calibration_figure(kind, metrics), champion.version)


def champion_churn_proba(model: ChurnModel, X: pd.DataFrame, y_val: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The champion's probabilities on the challenger's validation rows, measured as the challenger's are.

    The challenger's `validation_proba_` come from its calibration method cross-fitted on these
    rows (each row calibrated by a map fitted on the other folds). The champion's stored
    calibrator was fitted on its own validation snapshot: when that is these rows (a retrain on
    the same data) it is fitted on the labels it is judged against, and an isotonic map fitted
    in sample turns misordered neighbours into ties, which lifts ROC AUC (on the gate's test data:
    0.8625 in sample, 0.8560 uncalibrated, 0.8454 cross-fitted, for one and the same model), so a
    retrain on identical data lost to itself. The champion's method is cross-fitted here with the
    challenger's folds and seed.
    """
    log_odds = model.churn_log_odds(model.predict_raw(X))
    method = getattr(model, "calibration_method_", "none")
    smallest_class = int(min(y_val.sum(), y_val.size - y_val.sum()))
    if method == "none" or smallest_class < folds:  # as ChurnModel leaves its own uncalibrated
        return sigmoid(log_odds)
    return cross_fitted_calibration(method, log_odds, y_val, folds, seed)


def describe_snapshots(frame: pd.DataFrame, requested: tuple[int, int] | None) -> str:
    """The snapshots a training set holds, and the configured numbers when the history held fewer."""
    dates = sorted({str(d)[:10] for d in frame["as_of"].unique()})
    held_out = frame.loc[frame["is_validation"].astype(bool), "as_of"].nunique()
    text = f"{len(dates)} snapshots {dates[0]}..{dates[-1]}, {held_out} held out"
    if requested is not None and (len(dates) < requested[0] or held_out < requested[1]):
        text += f" (configured {requested[0]} with {requested[1]} held out: the history holds fewer)"
    return text


def _log_design(choice: DesignChoice | None) -> str:
    """Every candidate's validation metrics, the choice and the rule, in the active MLflow run."""
    if choice is None:
        return "fixed (configuration)"
    mlflow.log_params({"design": choice.chosen, "design_blend_weight": choice.blend_weight})
    for row in choice.candidates:
        mlflow.log_metrics({f"design.{row['name']}.{k}": float(v) for k, v in row.items()
                            if isinstance(v, float) and np.isfinite(v)})
    for row in choice.blend_weights:
        mlflow.log_metrics({f"design.blend_{row['weight']:g}.{k}": float(v) for k, v in row.items()
                            if k != "weight" and np.isfinite(v)})
    tracking.log_json(choice.as_dict(), "design_search.json")
    return choice.describe()


def _metric_limit(kind: str, limits: TooGoodLimits) -> float | None:
    """The headline metric's too-good limit of a model kind."""
    return limits.roc_auc_above if HEADLINE_METRIC[kind] == "roc_auc" else limits.normalized_gini_above


def _track(kind, model, booster, params, frame, train, valid, names, metrics, baseline_metrics,
           champion_metric, figures, extra, ctx: RunContext, choice: DesignChoice | None = None, *,
           champion_version: str | None, champion_calibration: float | None = None) -> TrainingOutcome:
    """Log one training run with everything needed to reproduce and judge it, then gate it."""
    grade = grade_model(kind, metrics, baseline_metrics)
    experiment = mlflow.get_experiment_by_name(tracking.model_name(kind))
    X_val = valid[names]
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=tracking.run_name(kind, ctx.scoring_date, datetime.now(UTC))) as run:
        mlflow.log_params({f"model.{k}": v for k, v in params.model_dump().items()})
        mlflow.log_params({
            "feature_set": ctx.feature_set, "n_features": len(names), "data_hash": ctx.data_hash,
            "scoring_date": ctx.scoring_date, "horizon_days": ctx.horizon_days, "data_source": ctx.source,
            "train_snapshots": snapshot_list(train),
            "validation_snapshots": snapshot_list(valid),
        })
        rows = {"train_rows": len(train), "validation_rows": len(valid), "train_customers": train["customer_id"].nunique()}
        mlflow.log_metrics({k: float(v) for k, v in rows.items()})
        snapshots = describe_snapshots(frame, ctx.requested_snapshots)
        mlflow.set_tag("snapshots", snapshots)
        design = _log_design(choice)
        tracking.log_metrics_beside_baseline(metrics, baseline_metrics)
        tracking.log_json(names, "feature_names.json")
        if ctx.attributes is not None:
            tracking.log_json(ctx.attributes, "attributes.json")
            mlflow.set_tag("attributes_excluded", ", ".join(ctx.attributes["excluded"]) or "none")
        tracking.log_json(extra, "model_details.json")
        tracking.log_json({"grade": grade.letter, "text": grade.text}, "grade.json")
        sample = X_val.iloc[: min(len(X_val), 5000)]
        contrib = contributions(booster, sample)
        gains = booster.feature_importance(importance_type="gain")
        figures = {**figures, **plots.shap_figures(contrib, sample),
                   "feature_importance": plots.feature_importance(booster.feature_name(), gains)}
        tracking.log_figures(figures)
        version = tracking.log_model_version(kind, model, X_val)
        metric = HEADLINE_METRIC[kind]
        warning = tracking.too_good_to_be_true(metric, metrics[metric], _metric_limit(kind, ctx.too_good),
                                               dict(zip(booster.feature_name(), map(float, gains), strict=True)),
                                               ctx.too_good.feature_gain_share_above)
        if warning is not None:
            log.warning("%s model not promoted: %s", kind, warning)
            mlflow.set_tag("too_good_to_be_true", warning)
        calibration = _calibration_comparison(kind, metrics, champion_calibration, ctx.calibration_gate)
        _log_champion_figures(metric, champion_metric, calibration, metrics)
        decision = tracking.decide_promotion(metric, metrics[metric], baseline_metrics[metric], champion_metric,
                                             too_good=warning, calibration=calibration)
        # The gate compared against champion_version; the alias moves only if that is still the champion.
        decision = tracking.apply_promotion(kind, version.version, decision, compared_with=champion_version)
        mlflow.set_tags({"grade": grade.letter, "promoted": str(decision.promote), "promotion_reason": decision.reason})
    log.info("%s model v%s: %s; %s", kind, version.version, grade.text, decision.reason)
    return TrainingOutcome(kind, run.info.run_id, version.version, metrics, baseline_metrics, champion_metric,
                           grade.letter, grade.text, decision.promote, decision.reason, rows, snapshots, design,
                           champion_calibration)


def _calibration_comparison(kind: str, metrics: dict[str, float], champion: float | None,
                            gate: CalibrationGate) -> tracking.CalibrationComparison | None:
    """Challenger and champion calibration for the gate, with the configured tolerance (None: no champion figure)."""
    if champion is None:
        return None
    key = "brier_above_champion" if CALIBRATION_METRIC[kind] == "brier" else "bias_pct_above_champion"
    return tracking.CalibrationComparison(CALIBRATION_METRIC[kind], calibration_figure(kind, metrics), champion,
                                          getattr(gate, key), f"training.calibration_gate.{key}")


def _log_champion_figures(metric: str, champion_metric: float | None,
                          calibration: tracking.CalibrationComparison | None, metrics: dict[str, float]) -> None:
    """The champion's figures on this run's validation rows, beside the model's, in the active MLflow run."""
    values = {f"champion_{metric}": champion_metric}
    if calibration is not None:
        values[f"champion_{calibration.metric}"] = calibration.champion
        if calibration.metric not in metrics:  # the others are logged as model_<metric> already
            values[f"model_{calibration.metric}"] = calibration.challenger
    mlflow.log_metrics({k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)})
