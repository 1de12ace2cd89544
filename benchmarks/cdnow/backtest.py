"""Pre-as-of backtest for choosing custscore's CDNOW settings without looking at the holdout.

    python -m benchmarks.cdnow.backtest                 # every design in DESIGNS, all three folds
    python -m benchmarks.cdnow.backtest --design final  # one design

The benchmark scores as of 1998-01-01 with 182-day horizons; every outcome on or after
1998-01-01 is the holdout. This script never reads it: it drops every row dated on or after
CUTOFF (1998-01-01) as it reads the data and checks that none is left. It then replays the
benchmark's situation earlier, at pseudo as-of dates whose outcome windows end before the
cutoff (FOLDS: 1997-10-01 with 91-day horizons, 1997-11-01 with 60 days, 1997-09-01 with 121 days). For each
fold it runs what `custscore run` runs, with the pure functions the pipeline calls:

1. the data is cut at the fold's as-of (training sees nothing later);
2. `build_training_set` stacks snapshots whose label windows end by the as-of; the latest is
   the out-of-time validation snapshot (early stopping, calibration, level-anchor decision);
3. `ChurnModel` / `ValueModel` fit as in pipelines/training.py, with the optional BTYD
   features of pipelines/btyd_features.py and the level anchor of models/level.py;
4. features as of the fold's as-of are scored and compared with the fold's outcomes
   (the benchmark's own ground_truth and headline_metrics), beside BG/NBD + Gamma-Gamma
   and the naive reference fitted on the same rows.

It also reports the validation-snapshot metrics, which the pipeline itself sees.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.cdnow.data import convert_cdnow, fetch_cdnow_master, load_transactions
from benchmarks.cdnow.evaluation import align_scores, ground_truth, headline_metrics
from benchmarks.cdnow.scorers import BgNbdGammaGammaScorer, NaiveScorer, ScoringTask
from features.build import FeatureSpec, build_features
from features.training_set import build_training_set
from features.validation import load_and_validate
from models.baselines import churn_baseline, value_baseline
from models.blend import blend_churn_probabilities, blend_values
from models.btyd import BtydFeatures
from models.btyd_columns import add_btyd_features
from models.churn import ChurnModel
from models.level import LevelAnchor, anchor_factor
from models.metrics import churn_metrics, value_metrics
from models.params import ChurnParams, ValueParams
from models.value import ValueModel

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORK = REPO_ROOT / "benchmarks" / ".work" / "cdnow"
# Every outcome on or after this date is the benchmark's holdout: never read here.
CUTOFF = pd.Timestamp("1998-01-01")


@dataclass(frozen=True)
class Fold:
    """A pseudo as-of date and horizon whose outcome window ends before CUTOFF."""

    as_of: pd.Timestamp
    horizon_days: int


# 1997-09-01 / 121 days is the closest to the benchmark's 182-day gap between the last training
# snapshot and the scoring date, but only 2 snapshots fit before it (1 to train, 1 to validate).
FOLDS = (Fold(pd.Timestamp("1997-10-01"), 91), Fold(pd.Timestamp("1997-11-01"), 60),
         Fold(pd.Timestamp("1997-09-01"), 121))


@dataclass(frozen=True)
class Design:
    """The settings a custscore config for CDNOW decides."""

    name: str
    windows_days: tuple[int, ...] = (30, 90, 180)
    n_snapshots: int = 4
    step_days: int = 30
    min_history_days: int = 90
    n_validation_snapshots: int = 1
    btyd_features: bool = False
    drop_features: tuple[str, ...] = ()
    keep_features: tuple[str, ...] = ()  # when given: only these columns reach the models
    ratio_features: bool = False
    level_anchor: str = "auto"  # auto: the validation rule of models/level.py; always; never
    # BG/NBD's share in the blends of models/blend.py (config scoring.btyd_blend), applied after the anchor.
    churn_blend: float = 0.0
    value_blend: float = 0.0
    churn: dict[str, Any] = field(default_factory=dict)
    value: dict[str, Any] = field(default_factory=dict)


def read_pre_cutoff_transactions(work: Path, source: Path | None) -> pd.DataFrame:
    """The converted CDNOW transactions with every row on or after CUTOFF dropped."""
    data_dir = work / "data"
    if not (data_dir / "transactions.csv").exists():
        convert_cdnow(source or fetch_cdnow_master(work / "cache"), data_dir)
    frame = load_transactions(data_dir / "transactions.csv")
    frame = frame[frame["ts"] < CUTOFF].reset_index(drop=True)
    if frame["ts"].max() >= CUTOFF:
        raise AssertionError("backtest: a holdout row survived the cut")
    return frame


def validated_before(frame: pd.DataFrame, as_of: pd.Timestamp, folder: Path):
    """The rows before as_of, written and validated as `custscore run` would read them."""
    folder.mkdir(parents=True, exist_ok=True)
    frame[frame["ts"] < as_of].to_csv(folder / "transactions.csv", index=False)
    return load_and_validate(folder, clock=as_of.to_pydatetime())


def training_frame(tables, fold: Fold, design: Design) -> pd.DataFrame:
    """Snapshots before the fold's as-of, as the pipeline builds them."""
    frame = build_training_set(
        tables, fold.as_of.to_pydatetime(), spec=FeatureSpec(windows_days=design.windows_days, tenure_ratios=design.ratio_features),
        churn_horizon_days=fold.horizon_days, value_horizon_days=fold.horizon_days,
        n_snapshots=design.n_snapshots, step_days=design.step_days,
        n_validation_snapshots=design.n_validation_snapshots, min_history_days=design.min_history_days,
        targets="all", data_end=fold.as_of.to_pydatetime(),
    )
    if design.btyd_features:
        frame = add_btyd_features(frame, fold.horizon_days)
    return frame


def scoring_frame(tables, fold: Fold, design: Design) -> pd.DataFrame:
    """Features as of the fold's as-of for every customer, as scoring builds them."""
    frame = build_features(tables, fold.as_of.to_pydatetime(),
                           FeatureSpec(windows_days=design.windows_days, tenure_ratios=design.ratio_features))
    if design.btyd_features:
        frame = add_btyd_features(frame, fold.horizon_days)
    return frame


NON_FEATURE_COLUMNS = {"customer_id", "as_of", "is_validation"}


def feature_names_of(frame: pd.DataFrame) -> list[str]:
    """Feature columns as pipelines/training.py picks them: all but ids, snapshot, flag, labels."""
    return [c for c in frame.columns if c not in NON_FEATURE_COLUMNS and not c.startswith("label_")]


def fit_and_score(train_set: pd.DataFrame, scoring: pd.DataFrame, design: Design, horizon: int) -> dict[str, Any]:
    """Fit churn and value as pipelines/training.py does; score the as-of population."""
    # Excluded columns stay in the frames (the BTYD anchor reads them) but not in the models.
    names = [c for c in feature_names_of(train_set) if c not in design.drop_features
             and (not design.keep_features or c in design.keep_features)]
    train, valid = train_set[~train_set["is_validation"]], train_set[train_set["is_validation"]]
    churn = ChurnModel(ChurnParams(num_threads=1, **design.churn)).fit(
        train[names], train["label_churn"], valid[names], valid["label_churn"], names,
        order_days=train["label_churn_order_days"], order_days_val=valid["label_churn_order_days"])
    value = ValueModel(ValueParams(num_threads=1, **design.value)).fit(
        train[names], train["label_revenue"], valid[names], valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        order_days=train["label_value_order_days"], order_days_val=valid["label_value_order_days"])
    pred_val = value.predict(valid[names])["expected_revenue"].to_numpy()
    # pipelines/training.py level_reference: BG/NBD fitted on the validation snapshot itself.
    anchor_val = BtydFeatures(horizon, max_fit_rows=50_000).fit(valid).transform(valid)
    anchor = LevelAnchor().fit(valid["label_revenue"].to_numpy(), pred_val,
                               anchor_val[f"btyd_expected_revenue_{horizon}d"].to_numpy())
    pred = value.predict(scoring[names])
    revenue = pred["expected_revenue"].to_numpy()
    # as serving.reference_adjustments.adjusted_by_reference applies it: BG/NBD fitted on the scored population
    btyd = BtydFeatures(horizon, max_fit_rows=50_000).fit(scoring)
    btyd_scores = btyd.transform(scoring)
    reference = btyd_scores[f"btyd_expected_revenue_{horizon}d"].to_numpy()
    always_factor = anchor_factor(revenue, reference)
    factor = 1.0
    if design.level_anchor == "always" or (design.level_anchor == "auto" and anchor.use_anchor_):
        factor = always_factor
        revenue = revenue * factor
    # as serving.reference_adjustments.adjusted_by_reference applies scoring.btyd_blend after the anchor
    p_churn = blend_churn_probabilities(churn.predict_proba(scoring[names]),
                                        btyd_scores[f"btyd_p_no_order_{horizon}d"].to_numpy(), design.churn_blend)
    blended = blend_values(revenue, reference, design.value_blend)
    band = factor * np.where(revenue > 0, blended / np.where(revenue > 0, revenue, 1.0), 1.0)
    y_val = valid["label_churn"].to_numpy(dtype=float)
    return {
        "scores": pd.DataFrame({
            "customer_id": scoring["customer_id"].to_numpy(),
            "churn_score": p_churn, "p_churn": p_churn,
            "expected_revenue": np.where(revenue > 0, blended, revenue),
            "value_p10": pred["value_p10"].to_numpy() * band, "value_p90": pred["value_p90"].to_numpy() * band,
        }),
        "validation": {
            **{f"churn_{k}": v for k, v in churn_metrics(y_val, churn.validation_proba_).items()
               if k in ("roc_auc", "brier")},
            **{f"value_{k}": v for k, v in value_metrics(valid["label_revenue"].to_numpy(), pred_val).items()
               if k in ("normalized_gini", "spearman", "aggregate_bias_pct")},
            # the champion gate of pipelines/tracking.py: beat these rule baselines on validation
            "gate_churn_baseline_roc_auc": churn_metrics(y_val, churn_baseline(valid))["roc_auc"],
            "gate_value_baseline_normalized_gini": value_metrics(
                valid["label_revenue"].to_numpy(), value_baseline(valid, horizon))["normalized_gini"],
            "anchor_used": anchor.use_anchor_, "anchor_bias_pct": anchor.bias_anchored_pct_,
            "calibration": churn.calibration_method_, "churn_trees": churn.best_iteration_,
            "value_trees": value.regressors_["revenue"].booster_.best_iteration,
        },
        "anchor_factor": factor, "always_anchor_factor": always_factor,
    }


def evaluate_fold(frame: pd.DataFrame, fold: Fold, design: Design, work: Path, cache: dict) -> dict[str, Any]:
    """One design on one fold: custscore beside BG/NBD + GG and naive, on outcomes before CUTOFF."""
    end = fold.as_of + pd.Timedelta(days=fold.horizon_days)
    if end > CUTOFF:
        raise ValueError(f"fold {fold}: its outcome window ends {end:%Y-%m-%d}, after the holdout starts")
    key = (fold, design.windows_days)
    if key not in cache:
        data = validated_before(frame, fold.as_of, work / f"fold-{fold.as_of:%Y%m%d}")
        cache[key] = data
    tables = cache[key].tables
    started = time.perf_counter()
    frames_key = ("frames", fold, design.windows_days, design.btyd_features, design.ratio_features, design.n_snapshots, design.step_days,
                  design.min_history_days, design.n_validation_snapshots)
    if frames_key not in cache:
        cache[frames_key] = (training_frame(tables, fold, replace(design, drop_features=())),
                             scoring_frame(tables, fold, design))
    train_set, scoring = cache[frames_key]
    fitted = fit_and_score(train_set, scoring, design, fold.horizon_days)
    truth = ground_truth(frame, fold.as_of, fold.horizon_days)
    churned, revenue = truth["churned"].to_numpy(), truth["revenue"].to_numpy()
    task = ScoringTask(frame[frame["ts"] < fold.as_of], work, fold.as_of, fold.horizon_days, fold.horizon_days)
    results = {"custscore": headline_metrics(churned, revenue, align_scores("custscore", truth, fitted["scores"]))}
    if ("refs", fold) not in cache:
        cache[("refs", fold)] = {
            scorer.name: headline_metrics(churned, revenue, align_scores(scorer.name, truth, scorer.score(task)))
            for scorer in (BgNbdGammaGammaScorer(), NaiveScorer())
        }
    results.update(cache[("refs", fold)])
    return {"fold": f"{fold.as_of:%Y-%m-%d}/{fold.horizon_days}d", "design": design.name,
            "snapshots": sorted({f"{d:%Y-%m-%d}" for d in train_set["as_of"]}),
            "validation": fitted["validation"], "anchor_factor": fitted["anchor_factor"],
            "always_anchor_factor": fitted["always_anchor_factor"],
            "metrics": results, "seconds": round(time.perf_counter() - started, 1)}


BIG_TREES = {"num_leaves": 15, "max_depth": 5, "learning_rate": 0.05, "n_estimators": 600,
             "min_child_samples": 100, "early_stopping_rounds": 50}

# Columns whose distribution moves with tenure: at the training snapshots every customer is
# 3-6 months old, at the scoring date 9-12, so a tree can only extrapolate them flat.
TENURE_BOUND = ("days_since_first_order", "order_count_lifetime", "revenue_sum_lifetime", "margin_sum_lifetime",
                "order_days_lifetime", "revenue_monthly_slope_12m", "revenue_change_pct_90d_vs_prev_90d")

# Recency, frequency and monetary value with no column that grows with tenure.
RFM_RATIO = ("days_since_last_order", "recency_over_tenure", "order_days_per_month_lifetime",
             "revenue_per_month_lifetime", "repeat_revenue_mean_per_order_day_lifetime",
             "revenue_mean_per_order_lifetime", "order_gap_mean_days", "recency_over_gap_mean")

DESIGNS = {
    "current": Design("current"),
    "short_windows": Design("short_windows", windows_days=(30, 90)),
    "btyd": Design("btyd", btyd_features=True),
    "short_btyd": Design("short_btyd", windows_days=(30, 90), btyd_features=True),
    "tenure_free_btyd": Design("tenure_free_btyd", windows_days=(30, 90), btyd_features=True, drop_features=TENURE_BOUND),
    "tenure_free": Design("tenure_free", windows_days=(30, 90), drop_features=TENURE_BOUND),
    "tf_big": Design("tf_big", windows_days=(30, 90), drop_features=TENURE_BOUND, churn=BIG_TREES, value=BIG_TREES),
    "tf_btyd_big": Design("tf_btyd_big", windows_days=(30, 90), btyd_features=True, drop_features=TENURE_BOUND,
                          churn=BIG_TREES, value=BIG_TREES),
    "tf_ratios": Design("tf_ratios", windows_days=(30, 90), drop_features=TENURE_BOUND, ratio_features=True),
    "tf_ratios_btyd": Design("tf_ratios_btyd", windows_days=(30, 90), drop_features=TENURE_BOUND, ratio_features=True,
                             btyd_features=True),
    "tf_ratios_norec": Design("tf_ratios_norec", windows_days=(30, 90), ratio_features=True,
                              drop_features=TENURE_BOUND + ("days_since_last_order",)),
    "tf_ratios_btyd_norec": Design("tf_ratios_btyd_norec", windows_days=(30, 90), ratio_features=True, btyd_features=True,
                                   drop_features=TENURE_BOUND + ("days_since_last_order",)),
    "rfm_only": Design("rfm_only", windows_days=(30, 90), keep_features=(
        "days_since_last_order", "days_since_first_order", "order_days_lifetime",
        "repeat_revenue_mean_per_order_day_lifetime", "revenue_mean_per_order_lifetime")),
    "rfm_ratio": Design("rfm_ratio", windows_days=(30, 90), ratio_features=True, keep_features=RFM_RATIO),
    "rfm_ratio_btyd": Design("rfm_ratio_btyd", windows_days=(30, 90), ratio_features=True, btyd_features=True,
                             keep_features=RFM_RATIO + ("btyd_p_alive",) + tuple(
                                 f"btyd_{name}_{h}d" for name in ("expected_orders", "p_no_order", "expected_revenue")
                                 for h in (60, 91, 121))),
    # The design frozen in custscore.yaml: rfm_ratio with the level always anchored to BG/NBD.
    "final": Design("final", windows_days=(30, 90), ratio_features=True, keep_features=RFM_RATIO, level_anchor="always"),
    # Design step 3: the final design with its scores blended with BG/NBD's (models/blend.py).
    "blend_churn25": Design("blend_churn25", windows_days=(30, 90), ratio_features=True, keep_features=RFM_RATIO,
                            level_anchor="always", churn_blend=0.25),
    "blend_value25": Design("blend_value25", windows_days=(30, 90), ratio_features=True, keep_features=RFM_RATIO,
                            level_anchor="always", value_blend=0.25),
    "blend25": Design("blend25", windows_days=(30, 90), ratio_features=True, keep_features=RFM_RATIO,
                      level_anchor="always", churn_blend=0.25, value_blend=0.25),
    # Design step 7: blend25 with the count-based churn model (ChurnParams objective poisson).
    "count25": Design("count25", windows_days=(30, 90), ratio_features=True, keep_features=RFM_RATIO,
                      level_anchor="always", churn_blend=0.25, value_blend=0.25, churn={"objective": "poisson"}),
    # Design step 7: count25 with every booster an average of 5 seeds (TreeParams.ensemble_size).
    "count25_ens5": Design("count25_ens5", windows_days=(30, 90), ratio_features=True, keep_features=RFM_RATIO,
                           level_anchor="always", churn_blend=0.25, value_blend=0.25,
                           churn={"objective": "poisson", "ensemble_size": 5}, value={"ensemble_size": 5}),
    "tf_step15": Design("tf_step15", windows_days=(30, 90), drop_features=TENURE_BOUND, n_snapshots=7, step_days=15),
}
# Design step 9: count25_ens5 with revenue as order days x revenue per order day (ValueParams.revenue_model).
DESIGNS["count25_ens5_fs"] = replace(DESIGNS["count25_ens5"], name="count25_ens5_fs",
                                     value={**DESIGNS["count25_ens5"].value, "revenue_model": "frequency_severity"})


def summarise(result: dict[str, Any]) -> str:
    """One line per design and fold: custscore's headline metrics beside BG/NBD's."""
    ours, ref, naive = (result["metrics"][k] for k in ("custscore", "bgnbd_gg", "naive"))
    keys = ("roc_auc", "brier", "spearman", "normalized_gini", "aggregate_bias_pct")
    cells = " ".join(f"{k[:8]}={ours[k]:.3f}({ours[k] - ref[k]:+.3f})" for k in keys)
    actual = ref["predicted_total_revenue"] / (1 + ref["aggregate_bias_pct"] / 100)
    own_bias = 100 * (ours["predicted_total_revenue"] / result["anchor_factor"] / actual - 1)
    anchored_bias = 100 * (ours["predicted_total_revenue"] / result["anchor_factor"] * result["always_anchor_factor"] / actual - 1)
    cells += f" own_bias={own_bias:+.1f} anchored_bias={anchored_bias:+.1f}"
    v = result["validation"]
    return (f"{result['design']:<22} {result['fold']:<15} {cells} naive_auc={naive['roc_auc']:.3f} "
            f"| val auc={v['churn_roc_auc']:.3f} brier={v['churn_brier']:.3f} gini={v['value_normalized_gini']:.3f} "
            f"bias={v['value_aggregate_bias_pct']:+.1f} anchor={v['anchor_used']}({v['anchor_bias_pct']:+.1f}) "
            f"gate={v['gate_churn_baseline_roc_auc']:.3f}/{v['gate_value_baseline_normalized_gini']:.3f} "
            f"cal={v['calibration']} trees={v['churn_trees']}/{v['value_trees']} [{result['seconds']}s]")


def markdown_table(results: list[dict[str, Any]]) -> str:
    """Designs by fold: custscore minus BG/NBD on the headline metrics, and the two revenue levels."""
    lines = ["| design | fold | ROC-AUC | Brier | Spearman | Gini | own level % | BG/NBD level % | gate (val AUC / Gini vs rule) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ours, ref = r["metrics"]["custscore"], r["metrics"]["bgnbd_gg"]
        actual = ref["predicted_total_revenue"] / (1 + ref["aggregate_bias_pct"] / 100)
        own = 100 * (ours["predicted_total_revenue"] / r["anchor_factor"] / actual - 1)
        v = r["validation"]
        gate = (f"{v['churn_roc_auc']:.3f}/{v.get('gate_churn_baseline_roc_auc', float('nan')):.3f}, "
                f"{v['value_normalized_gini']:.3f}/{v.get('gate_value_baseline_normalized_gini', float('nan')):.3f}")
        lines.append(
            f"| {r['design']} | {r['fold']} | {ours['roc_auc']:.3f} ({ours['roc_auc'] - ref['roc_auc']:+.3f}) "
            f"| {ours['brier']:.3f} ({ours['brier'] - ref['brier']:+.3f}) "
            f"| {ours['spearman']:.3f} ({ours['spearman'] - ref['spearman']:+.3f}) "
            f"| {ours['normalized_gini']:.3f} ({ours['normalized_gini'] - ref['normalized_gini']:+.3f}) "
            f"| {own:+.1f} | {ref['aggregate_bias_pct']:+.1f} | {gate} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the designs on the folds; write the results as JSON (--out) and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", action="append", help="design name (repeatable); default: all")
    parser.add_argument("--fold", type=int, action="append", help="fold index into FOLDS (repeatable); default: all")
    parser.add_argument("--cdnow-path", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=WORK / "backtest.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    frame = read_pre_cutoff_transactions(args.work, args.cdnow_path)
    names = args.design or list(DESIGNS)
    cache: dict = {}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for fold in [FOLDS[i] for i in (args.fold or range(len(FOLDS)))]:
                result = evaluate_fold(frame, fold, DESIGNS[name], Path(tmp), cache)
                print(summarise(result), flush=True)
                results.append(result)
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
