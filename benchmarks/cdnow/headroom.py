"""How much churn and value ranking do CDNOW's transactions hold? An in-period reference.

    python -m benchmarks.cdnow.headroom                          # the three pre-1998 folds of backtest.py
    python -m benchmarks.cdnow.headroom --periods holdout --grid --out benchmarks/.work/cdnow/headroom_grid_holdout.json

For each period (an as-of date and a horizon) LightGBM models are trained on that period's own
outcomes by 5-fold cross-validation: every customer is scored by models that never saw him but
learnt from his neighbours' outcomes in the same window. No deployable model has those outcomes,
and none of them suffers what custscore's models face (training snapshots months younger than
the scoring date), so this reference is an optimistic yardstick of what the inputs hold, not a
competitor. Its inputs, in three nested sets:

1. every numeric feature custscore computes for the design (not only the columns its models use);
2. plus BG/NBD + Gamma-Gamma's outputs fitted on the scored population (models/btyd.py);
3. plus raw-transaction facts custscore does not compute (`raw_facts`: CDs bought, first and
   last record-day amounts, first and last gaps, record days in the first 30/60/90 days of the
   customer's life, weekday of the first and last record day). A record day is a day with any
   row, $0 rows included (CDNOW has 80), unlike custscore's order days.

If set 3 ranks no better than set 1, features of that kind would add little for these targets;
if custscore's own scores rank as well as the reference, its models are not leaving the inputs'
information unused either. Neither is a proof of a ceiling: a cleverer input could exist.

`--grid` adds the reference's range over 18 tree settings (GRID), churn by a Poisson model and
by a classifier, value by Tweedie, each setting's predictions averaged over three seeds: the
best of 36 churn models picked after seeing their scores is an optimistic bound.

The folds read only rows before 1998-01-01 (backtest.py's cut). `--periods holdout` reads the 1998
outcomes: it is a diagnostic of the target's reach, run after the design in custscore.yaml was
frozen, and nothing in custscore.yaml may be chosen from it. custscore's holdout figures are read
from results.json (the last `python -m benchmarks.cdnow.run`), not recomputed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from benchmarks.cdnow import backtest as bt
from benchmarks.cdnow.data import convert_cdnow, fetch_cdnow_master, load_transactions
from benchmarks.cdnow.evaluation import ground_truth
from features.build import FeatureSpec, build_features
from models.btyd import BtydFeatures
from models.metrics import churn_metrics, value_metrics

RESULTS_JSON = Path(__file__).resolve().parent / "results.json"
HOLDOUT = bt.Fold(pd.Timestamp("1998-01-01"), 182)
# The design frozen in custscore.yaml (the design step 8's records in backtest.md were made with
# count25_ens5, the same churn model with the direct value model).
DEFAULT_DESIGN = "count25_ens5_fs"
SEEDS = (0, 1)
N_SPLITS = 5
# Moderate trees with a slow rate: the reference should not be handicapped by its settings.
REFERENCE_TREES = {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 100,
                   "verbose": -1, "num_threads": 2}
# --grid: tree sizes, leaf minimums and rates around the reference's, with row and column
# sampling; each setting's out-of-fold predictions averaged over GRID_SEEDS.
GRID = [{"num_leaves": leaves, "min_child_samples": min_child, "n_estimators": rounds, "learning_rate": rate,
         "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8}
        for leaves in (7, 15, 31) for min_child in (20, 100, 300) for rounds, rate in ((300, 0.03), (1000, 0.01))]
GRID_SEEDS = (0, 1, 2)
RICHEST = "features+btyd+raw"


def raw_facts(transactions: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per customer, from rows before as_of only: facts of the raw rows that custscore's features leave out.

    Days are record days (any row, $0 included), not the project's order days (a positive amount).
    """
    before = transactions[transactions["ts"] < as_of]
    days = (before.assign(day=before["ts"].dt.normalize())
            .groupby(["customer_id", "day"], sort=True)
            .agg(amount=("amount", "sum"), quantity=("quantity", "sum")).reset_index())
    by_customer = days.groupby("customer_id", sort=True)
    life_day = (days["day"] - by_customer["day"].transform("min")).dt.days
    gaps = by_customer["day"].diff().dt.days
    facts = pd.DataFrame({
        "cds_total": by_customer["quantity"].sum(),
        "cds_per_record_day": by_customer["quantity"].mean(),
        "cds_last_record_day": by_customer["quantity"].last(),
        "amount_first_record_day": by_customer["amount"].first(),
        "amount_last_record_day": by_customer["amount"].last(),
        "gap_first_days": gaps.groupby(days["customer_id"]).first(),
        "gap_last_days": gaps.groupby(days["customer_id"]).last(),
        "weekday_first_record_day": by_customer["day"].min().dt.day_of_week,
        "weekday_last_record_day": by_customer["day"].max().dt.day_of_week,
    })
    for span in (30, 60, 90):
        facts[f"record_days_first_{span}d_of_life"] = (life_day < span).groupby(days["customer_id"]).sum()
    facts["amount_last_over_mean"] = facts["amount_last_record_day"] / by_customer["amount"].mean()
    return facts


def input_sets(transactions: pd.DataFrame, features: pd.DataFrame, period: bt.Fold) -> dict[str, np.ndarray]:
    """The three nested input matrices, rows in the order of `features`."""
    numeric = [c for c in features.columns if c != "customer_id" and pd.api.types.is_numeric_dtype(features[c])]
    own = features[numeric].to_numpy(dtype=float)
    btyd = BtydFeatures(period.horizon_days, max_fit_rows=50_000).fit(features).transform(features).to_numpy(dtype=float)
    facts = raw_facts(transactions, period.as_of).reindex(features["customer_id"].to_numpy()).to_numpy(dtype=float)
    return {"features": own, "features+btyd": np.column_stack([own, btyd]),
            "features+btyd+raw": np.column_stack([own, btyd, facts])}


def cross_fitted(X: np.ndarray, y: np.ndarray, objective: str, settings: dict[str, Any], seeds: tuple[int, ...]) -> np.ndarray:
    """Out-of-fold predictions, averaged over one 5-fold split and model per seed.

    "binary" gives P(y = 1), any other objective the expected value of y.
    """
    out = np.zeros(len(y))
    for seed in seeds:
        for train, test in KFold(N_SPLITS, shuffle=True, random_state=seed).split(X):
            if objective == "binary":
                model = lgb.LGBMClassifier(random_state=seed, **settings).fit(X[train], y[train])
                out[test] += model.predict_proba(X[test])[:, 1]
            else:
                model = lgb.LGBMRegressor(objective=objective, random_state=seed, **settings).fit(X[train], y[train])
                out[test] += model.predict(X[test])
    return out / len(seeds)


@dataclass(frozen=True)
class Outcomes:
    """What happened in a period's window, per scored customer."""

    churned: np.ndarray
    order_days: np.ndarray
    revenue: np.ndarray


def churn_roc(X: np.ndarray, outcomes: Outcomes, objective: str, settings: dict[str, Any], seeds: tuple[int, ...]) -> float:
    """ROC-AUC of churn ranked by a Poisson model of the order days (fewer: likelier to churn) or a classifier."""
    if objective == "poisson":
        score = -cross_fitted(X, outcomes.order_days, "poisson", settings, seeds)
    else:
        score = cross_fitted(X, outcomes.churned, "binary", settings, seeds)
    return float(churn_metrics(outcomes.churned, score)["roc_auc"])


def value_gini(X: np.ndarray, outcomes: Outcomes, settings: dict[str, Any], seeds: tuple[int, ...]) -> float:
    predicted = cross_fitted(X, outcomes.revenue, "tweedie", settings, seeds)
    return float(value_metrics(outcomes.revenue, predicted)["normalized_gini"])


def reference_metrics(X: np.ndarray, outcomes: Outcomes) -> dict[str, float]:
    """ROC-AUC and normalized Gini of the in-period reference with REFERENCE_TREES.

    Churn is ranked by a Poisson model of the order days in the window, as custscore's churn
    model for CDNOW does (in a scratch run on the pre-1998 folds, with BG/NBD's outputs and the
    metrics of two seeds averaged, it ranked better than a classifier of the 0/1 label on two
    folds of three: 0.7746 / 0.7858 / 0.7581 against 0.7720 / 0.7827 / 0.7588).
    """
    return {"roc_auc": churn_roc(X, outcomes, "poisson", REFERENCE_TREES, SEEDS),
            "normalized_gini": value_gini(X, outcomes, REFERENCE_TREES, SEEDS)}


def grid_metrics(X: np.ndarray, outcomes: Outcomes) -> dict[str, Any]:
    """The best and worst of the reference over GRID: churn by both objectives, value by Tweedie."""
    rocs, ginis = [], []
    for settings in GRID:
        merged = {**REFERENCE_TREES, **settings}
        rocs += [(churn_roc(X, outcomes, objective, merged, GRID_SEEDS), objective, settings)
                 for objective in ("poisson", "binary")]
        ginis.append((value_gini(X, outcomes, merged, GRID_SEEDS), "tweedie", settings))
    best_roc, best_gini = max(rocs, key=lambda r: r[0]), max(ginis, key=lambda r: r[0])
    return {"models": len(rocs) + len(ginis),
            "roc_auc": {"min": min(r[0] for r in rocs), "max": best_roc[0], "best": best_roc[1:]},
            "normalized_gini": {"min": min(g[0] for g in ginis), "max": best_gini[0], "best": best_gini[1:]}}


def order_days_in_window(transactions: pd.DataFrame, period: bt.Fold, customer_ids: np.ndarray) -> np.ndarray:
    """Distinct days with an order (a row with a positive amount) in the period's window, per customer.

    The benchmark's definition (evaluation.ground_truth), so churned is exactly order_days == 0;
    features/labels.py counts orders that begin in the window, which differs for orders spanning it.
    """
    end = period.as_of + pd.Timedelta(days=period.horizon_days)
    ts = transactions["ts"]
    orders = transactions[(ts >= period.as_of) & (ts < end) & (transactions["amount"] > 0)]
    days = orders.assign(day=orders["ts"].dt.normalize()).groupby("customer_id")["day"].nunique()
    return days.reindex(customer_ids).fillna(0).to_numpy(dtype=float)


def period_headroom(transactions: pd.DataFrame, period: bt.Fold, design: bt.Design, work: Path,
                    grid: bool = False) -> dict[str, Any]:
    """The in-period reference on every input set for one period (transactions must cover its window).

    With `grid`, also the reference's range over GRID on the richest input set (key "grid").
    """
    data = bt.validated_before(transactions, period.as_of, work / f"period-{period.as_of:%Y%m%d}")
    features = build_features(data.tables, period.as_of.to_pydatetime(),
                              FeatureSpec(windows_days=design.windows_days, tenure_ratios=design.ratio_features))
    truth = ground_truth(transactions, period.as_of, period.horizon_days).set_index("customer_id")
    ids = features["customer_id"].to_numpy()
    truth = truth.loc[ids]
    outcomes = Outcomes(truth["churned"].to_numpy(), order_days_in_window(transactions, period, ids),
                        truth["revenue"].to_numpy())
    sets = input_sets(transactions, features, period)
    result: dict[str, Any] = {name: reference_metrics(X, outcomes) for name, X in sets.items()}
    if grid:
        result["grid"] = grid_metrics(sets[RICHEST], outcomes)
    return result


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    return {"roc_auc": metrics["roc_auc"], "normalized_gini": metrics["normalized_gini"]}


def fold_rows(design_name: str, work: Path, source: Path | None, grid: bool) -> list[dict[str, Any]]:
    """Every pre-1998 fold: custscore (the design, as backtest.py fits it), BG/NBD and the reference."""
    frame = bt.read_pre_cutoff_transactions(bt.WORK, source)
    design, cache, rows = bt.DESIGNS[design_name], {}, []
    for fold in bt.FOLDS:
        scored = bt.evaluate_fold(frame, fold, design, work, cache)["metrics"]
        rows.append({"period": f"{fold.as_of:%Y-%m-%d}/{fold.horizon_days}d",
                     "custscore": _headline(scored["custscore"]), "bgnbd_gg": _headline(scored["bgnbd_gg"]),
                     "reference": period_headroom(frame, fold, design, work, grid)})
    return rows


def holdout_row(design_name: str, work: Path, source: Path | None, grid: bool) -> dict[str, Any]:
    """The 1998 window: the reference on it, custscore and BG/NBD from the last benchmark run.

    custscore's figures are those of results.json whatever `design_name` says; the design only
    sets the features the reference is given.
    """
    data_dir = bt.WORK / "data"
    if not (data_dir / "transactions.csv").exists():
        convert_cdnow(source or fetch_cdnow_master(bt.WORK / "cache"), data_dir)
    run = json.loads(RESULTS_JSON.read_text())
    return {"period": f"{HOLDOUT.as_of:%Y-%m-%d}/{HOLDOUT.horizon_days}d (holdout)",
            "custscore": _headline(run["models"]["custscore"]["metrics"]),
            "bgnbd_gg": _headline(run["models"]["bgnbd_gg"]["metrics"]),
            "reference": period_headroom(load_transactions(data_dir / "transactions.csv"), HOLDOUT,
                                         bt.DESIGNS[design_name], work, grid)}


def markdown(rows: list[dict[str, Any]]) -> str:
    """Periods by rows: custscore, BG/NBD and the in-period reference on each input set (and its grid range)."""
    sets = [k for k in rows[0]["reference"] if k != "grid"]
    with_grid = all("grid" in r["reference"] for r in rows)
    head = ["period", "custscore", "BG/NBD", *(f"in-period: {s}" for s in sets)]
    head += [f"in-period grid on {RICHEST}: min-max"] if with_grid else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric, label in (("roc_auc", "ROC-AUC"), ("normalized_gini", "Gini")):
        for r in rows:
            cells = [f"{r['period']} {label}", f"{r['custscore'][metric]:.4f}", f"{r['bgnbd_gg'][metric]:.4f}",
                     *(f"{r['reference'][s][metric]:.4f}" for s in sets)]
            if with_grid:
                spread = r["reference"]["grid"][metric]
                cells.append(f"{spread['min']:.4f}-{spread['max']:.4f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", default=DEFAULT_DESIGN, choices=sorted(bt.DESIGNS))
    parser.add_argument("--periods", choices=("folds", "holdout", "all"), default="folds",
                        help="folds: the pre-1998 folds only; holdout reads the 1998 outcomes (diagnostic only, "
                             "choose nothing from it)")
    parser.add_argument("--grid", action="store_true",
                        help=f"also the reference over {len(GRID)} tree settings x 3 models (~20 min a period on 2 cores)")
    parser.add_argument("--cdnow-path", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=bt.WORK / "headroom.json")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.periods in ("folds", "all"):
            rows += fold_rows(args.design, Path(tmp), args.cdnow_path, args.grid)
        if args.periods in ("holdout", "all"):
            rows.append(holdout_row(args.design, Path(tmp), args.cdnow_path, args.grid))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1, default=str))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
