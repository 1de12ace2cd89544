"""Probe: churn scored by an order-count model instead of a churn classifier, on the pre-1998 folds only.

    python -m benchmarks.cdnow.count_churn_probe [--seeds 42,7,99]

Question (design step 6 of benchmarks/cdnow/backtest.md): does a LightGBM Poisson model of the
number of order days in the horizon, read as P(no order) = exp(-expected order days), rank
churners better than the binary churn model of the frozen design blend25? The count carries
more of each training row's outcome than the 0/1 label (a customer who bought five times is
not the same as one who bought once), as BG/NBD's purchase counts do.

For each fold of backtest.FOLDS (every row on or after 1998-01-01 dropped as it is read), it
fits blend25 exactly as the backtest does, then a Poisson booster with the same tree settings
on the same training snapshots, features (blend25's model features) and early-stopping
snapshot, its target counted from the same transactions. Printed per fold: churn ROC-AUC of
BG/NBD (P(no order), the 70 customers it cannot score set to its mean), blend25, the count
model, the count model blended with BG/NBD as blend25 blends (0.25 of the log-odds), and the
Brier score of blend25 and of the blended count model; then the means minus BG/NBD. With
several seeds the count model is the mean of one booster per seed. Not part of the tests;
a probe of an idea, not a design the product offers.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from benchmarks.cdnow import backtest as bt
from benchmarks.cdnow.evaluation import align_scores, ground_truth
from models.blend import blend_churn_probabilities
from models.btyd import BtydFeatures
from models.params import ChurnParams


def order_day_counts(transactions: pd.DataFrame, snapshots: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Distinct days with an order (positive amount) in [as_of, as_of + horizon) per (customer_id, as_of) row."""
    orders = transactions.loc[transactions["amount"] > 0, ["customer_id", "ts"]]
    days = orders.assign(day=orders["ts"].dt.normalize())
    counts = np.zeros(len(snapshots))
    for as_of in snapshots["as_of"].unique():
        start = pd.Timestamp(as_of)
        window = days[(days["day"] >= start) & (days["day"] < start + pd.Timedelta(days=horizon_days))]
        per_customer = window.groupby("customer_id")["day"].nunique()
        rows = (snapshots["as_of"] == as_of).to_numpy()
        counts[rows] = snapshots.loc[rows, "customer_id"].map(per_customer).fillna(0).to_numpy()
    return counts


def expected_order_days(train_set: pd.DataFrame, counts: np.ndarray, scoring: pd.DataFrame, names: list[str],
                        seeds: list[int]) -> np.ndarray:
    """Mean over seeds of a Poisson booster's expected order days, early-stopped on the validation snapshot."""
    p = ChurnParams()
    train, valid = ~train_set["is_validation"].to_numpy(), train_set["is_validation"].to_numpy()
    total = np.zeros(len(scoring))
    for seed in seeds:
        model = lgb.LGBMRegressor(
            objective="poisson", n_estimators=p.n_estimators, learning_rate=p.learning_rate, num_leaves=p.num_leaves,
            max_depth=p.max_depth, min_child_samples=p.min_child_samples, subsample=p.subsample,
            subsample_freq=p.subsample_freq, colsample_bytree=p.colsample_bytree, reg_lambda=p.reg_lambda,
            num_threads=1, random_state=seed, verbose=-1)
        model.fit(train_set.loc[train, names], counts[train], eval_set=[(train_set.loc[valid, names], counts[valid])],
                  callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)])
        total += model.predict(scoring[names])
    return total / len(seeds)


def probe_fold(frame: pd.DataFrame, fold: bt.Fold, seeds: list[int], work: Path) -> dict[str, float]:
    """blend25 and the count model on one fold, against the fold's outcomes."""
    design, horizon = bt.DESIGNS["blend25"], fold.horizon_days
    tables = bt.validated_before(frame, fold.as_of, work).tables
    train_set = bt.training_frame(tables, fold, design)
    scoring = bt.scoring_frame(tables, fold, design)
    blend25 = bt.fit_and_score(train_set, scoring, design, horizon)["scores"]
    names = [c for c in bt.feature_names_of(train_set) if c in design.keep_features]
    counts = order_day_counts(frame, train_set[["customer_id", "as_of"]], horizon)
    p_count = np.exp(-expected_order_days(train_set, counts, scoring, names, seeds))
    p_btyd = BtydFeatures(horizon, max_fit_rows=50_000).fit(scoring).transform(scoring)[f"btyd_p_no_order_{horizon}d"].to_numpy()
    truth = ground_truth(frame, fold.as_of, horizon)
    churned = truth["churned"].to_numpy()

    def aligned(p: np.ndarray) -> np.ndarray:
        scores = pd.DataFrame({"customer_id": scoring["customer_id"].to_numpy(), "churn_score": p, "p_churn": p,
                               "expected_revenue": 0.0})
        return align_scores("probe", truth, scores).p_churn

    ours = align_scores("custscore", truth, blend25).p_churn
    count_blended = aligned(blend_churn_probabilities(p_count, p_btyd, design.churn_blend))
    return {
        "bgnbd": roc_auc_score(churned, aligned(np.where(np.isnan(p_btyd), np.nanmean(p_btyd), p_btyd))),
        "blend25": roc_auc_score(churned, ours), "count": roc_auc_score(churned, aligned(p_count)),
        "count_blended": roc_auc_score(churned, count_blended),
        "brier_blend25": brier_score_loss(churned, ours), "brier_count_blended": brier_score_loss(churned, count_blended),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the probe's table per fold and the means minus BG/NBD."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42", help="comma-separated seeds of the count model (mean of one booster each)")
    parser.add_argument("--cdnow-path", type=Path, default=None)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    frame = bt.read_pre_cutoff_transactions(bt.WORK, args.cdnow_path)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fold in bt.FOLDS:
            rows[f"{fold.as_of:%Y-%m-%d}/{fold.horizon_days}d"] = probe_fold(frame, fold, seeds, Path(tmp) / "fold")
    table = pd.DataFrame(rows).T
    print(table.round(4).to_string())
    auc = table[["bgnbd", "blend25", "count", "count_blended"]]
    print("mean ROC-AUC minus BG/NBD:", auc.sub(table["bgnbd"], axis=0).mean().round(4).to_dict())
    print("mean Brier:", table[["brier_blend25", "brier_count_blended"]].mean().round(4).to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
