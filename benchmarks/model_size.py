"""Measurements (not tests): value-loss comparison and model size vs TreeSHAP cost.

Run: .venv/bin/python -m benchmarks.model_size objectives
     .venv/bin/python -m benchmarks.model_size sizes
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.synthetic import feature_columns, make_training_set
from models.baselines import churn_baseline, value_baseline
from models.churn import ChurnModel
from models.explain import contributions
from models.metrics import churn_metrics, value_metrics
from models.params import ChurnParams, ValueParams
from models.splits import out_of_time_split
from models.value import PointRegressor


def compare_objectives(n: int, seeds: list[int]) -> None:
    """Tweedie vs L2 vs log-target L2 for horizon revenue, out of time, over several seeds."""
    rows = []
    for seed in seeds:
        frame = make_training_set(n, seed=seed, n_noise=10)
        train, valid = out_of_time_split(frame)
        features = feature_columns(frame)
        X, Xv = train[features], valid[features]
        y, yv = train["label_revenue"].to_numpy(), valid["label_revenue"].to_numpy()
        rows.append(("baseline_90d", seed, value_metrics(yv, value_baseline(valid, 90)), 0))
        for objective in ("tweedie", "l2", "log_l2"):
            reg = PointRegressor(ValueParams(objective=objective, num_threads=2), "revenue")
            reg.fit(X, y, Xv, yv)
            rows.append((objective, seed, value_metrics(yv, reg.predict(Xv)), reg.booster_.num_trees()))
    keys = ["spearman", "normalized_gini", "top10_capture", "mae", "aggregate_bias_pct", "decile_mape"]
    print("| loss | " + " | ".join(keys) + " | trees |")
    print("|---" * (len(keys) + 2) + "|")
    for name in dict.fromkeys(r[0] for r in rows):
        sel = [r for r in rows if r[0] == name]
        means = [np.mean([r[2][k] for r in sel]) for k in keys]
        print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means)
              + f" | {np.mean([r[3] for r in sel]):.0f} |")


def _timed_contributions(booster, rows) -> tuple[float, float]:
    """Wall and process CPU seconds of exact TreeSHAP on `rows` with two threads."""
    wall, cpu = time.perf_counter(), time.process_time()
    contributions(booster, rows, num_threads=2)
    return time.perf_counter() - wall, time.process_time() - cpu


DEFAULT_SIZES = "4:15:0.05:300,5:15:0.05:300,5:31:0.05:300,4:15:0.1:300,4:7:0.1:300,3:7:0.1:300,3:7:0.2:300"


def compare_sizes(n: int, n_features: int, sizes: str = DEFAULT_SIZES) -> None:
    """Validation quality vs exact TreeSHAP time per 100k rows (num_threads=2) per tree size."""
    frame = make_training_set(n // 2, seed=11, n_noise=n_features - 7)
    train, valid = out_of_time_split(frame)
    features = feature_columns(frame)
    explain_rows = train[features].iloc[:20_000]  # cost is linear in rows: scaled to 100k
    base_auc = churn_metrics(valid["label_churn"], churn_baseline(valid))["roc_auc"]
    base_gini = value_metrics(valid["label_revenue"], value_baseline(valid, 90))["normalized_gini"]
    print(f"{len(train)} train rows, {len(valid)} validation rows, {len(features)} features; "
          f"baseline AUC {base_auc:.4f}, baseline Gini {base_gini:.4f}")
    print("SHAP columns: wall seconds / CPU seconds per 100k rows, num_threads=2; the CPU time "
          "is robust to other processes on the machine, wall time is not")
    print("| depth | leaves | lr | cap | churn trees | churn AUC | churn fit s | churn SHAP s/100k "
          "| value trees | value Gini | value fit s | value SHAP s/100k |")
    print("|---" * 12 + "|")
    for size in sizes.split(","):
        depth, leaves, lr, cap = (t(v) for t, v in zip((int, int, float, int), size.split(":"), strict=True))
        common = dict(max_depth=depth, num_leaves=leaves, learning_rate=lr, n_estimators=cap,
                      num_threads=2)
        t0 = time.perf_counter()
        churn = ChurnModel(ChurnParams(**common)).fit(
            train, train["label_churn"], valid, valid["label_churn"], features)
        churn_fit = time.perf_counter() - t0
        auc = churn_metrics(valid["label_churn"], churn.validation_proba_)["roc_auc"]
        churn_shap = _timed_contributions(churn.booster_, explain_rows)
        t0 = time.perf_counter()
        value = PointRegressor(ValueParams(**common), "revenue").fit(
            train[features], train["label_revenue"].to_numpy(),
            valid[features], valid["label_revenue"].to_numpy())
        value_fit = time.perf_counter() - t0
        gini = value_metrics(valid["label_revenue"], value.predict(valid[features]))["normalized_gini"]
        value_shap = _timed_contributions(value.booster_, explain_rows)
        scale = 100_000 / len(explain_rows)
        print(f"| {depth} | {leaves} | {lr} | {cap} | {churn.best_iteration_} | {auc:.4f} | {churn_fit:.1f} | "
              f"{churn_shap[0] * scale:.1f} / {churn_shap[1] * scale:.1f} | "
              f"{value.booster_.num_trees()} | {gini:.4f} | {value_fit:.1f} | "
              f"{value_shap[0] * scale:.1f} / {value_shap[1] * scale:.1f} |", flush=True)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["objectives", "sizes"])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="depth:leaves:lr:cap,...")
    args = parser.parse_args()
    if args.what == "objectives":
        compare_objectives(args.rows or 10_000, seeds=[0, 1, 2])
    else:
        compare_sizes(args.rows or 100_000, n_features=60, sizes=args.sizes)


if __name__ == "__main__":
    main()
