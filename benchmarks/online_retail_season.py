"""Do the season features carry signal? UCI Online Retail, features as of two dates, Spearman against what followed.

    python -m benchmarks.online_retail_season [--data DIR] [--horizon 180] [--model-check SEEDS]

The two files of ../shared/data/online_retail/ become one log in the input contract (Invoice ->
order_id, StockCode -> product_id, InvoiceDate -> ts, Quantity x Price -> amount, Customer ID as
text; rows without a customer id dropped; the first file up to 2010-11-30, the second from
2010-12-01). Only rows before 2011-06-01 go through validation and the features; the rows after
an as-of date are read only to measure the revenue that followed, [T, T + H).

For each as-of date it prints, over the customers with a row before T, the Spearman correlation
of each season column and of the trailing revenue columns with that realised revenue, the
correlations of realised revenue with the season column after taking out the trailing
revenue's ranks (partial Spearman), the population season share beside the realised population
ratio, and the ROC-AUC of "an order day a year ago in the coming season" for "orders again in
[T, T + H)".

`--model-check SEEDS` then trains LightGBM churn (binary) and revenue (Tweedie) boosters out of
time, with and without the season columns, on 7 monthly snapshots with 90-day horizons (the
longest horizon whose training label windows end before a test date with a year of history
behind every snapshot), scored as of 2011-09-01 (labels to 2011-11-30, so it reads the whole
log); mean and range over SEEDS seeds, and the predicted total's error (aggregate bias, %). It
measures the columns, not custscore's models.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import roc_auc_score

from features.build import FeatureSpec, build_features
from features.validation import load_and_validate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail"
SPLIT = pd.Timestamp("2010-12-01")
INPUT_END = datetime(2011, 6, 1)
AS_OF_DATES = (datetime(2010, 12, 1), datetime(2011, 6, 1))


def contract_log(folder: Path) -> pd.DataFrame:
    """Both files as one transaction log in the input contract (customer rows only)."""
    first = pd.read_parquet(folder / "online_retail_II_year_2009_2010.parquet").rename(
        columns={"Customer ID": "customer", "Price": "price", "Invoice": "order_id"})
    second = pd.read_parquet(folder / "online_retail.parquet").rename(
        columns={"CustomerID": "customer", "UnitPrice": "price", "InvoiceNo": "order_id"})
    parts = []
    for frame, keep in ((first, lambda ts: ts < SPLIT), (second, lambda ts: ts >= SPLIT)):
        ts = pd.to_datetime(frame["InvoiceDate"])
        frame = frame.assign(ts=ts)[keep(ts) & frame["customer"].notna()]
        parts.append(pd.DataFrame({
            "customer_id": frame["customer"].astype("int64").astype(str),
            "order_id": frame["order_id"].astype(str),
            "product_id": frame["StockCode"].astype(str),
            "ts": frame["ts"],
            "quantity": frame["Quantity"].astype(float),
            "amount": frame["Quantity"].astype(float) * frame["price"],
        }))
    return pd.concat(parts, ignore_index=True)


def realised_revenue(log: pd.DataFrame, as_of: datetime, horizon: int) -> tuple[pd.Series, pd.Series]:
    """Per customer: net revenue and order days in [as_of, as_of + horizon) (absent customers: none)."""
    window = log[(log["ts"] >= as_of) & (log["ts"] < as_of + timedelta(days=horizon))]
    revenue = window.groupby("customer_id")["amount"].sum()
    orders = window[window["amount"] > 0]
    days = orders.groupby("customer_id")["ts"].agg(lambda ts: ts.dt.date.nunique())
    return revenue, days


def partial_spearman(x: pd.Series, y: pd.Series, control: pd.Series) -> float:
    """Spearman of x and y after the linear effect of control's ranks is taken out of both ranks."""
    rx, ry, rc = (rankdata(v) for v in (x, y, control))
    design = np.column_stack([np.ones(len(rc)), rc])
    residual = [r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in (rx, ry)]
    return float(np.corrcoef(*residual)[0, 1])


def report(features: pd.DataFrame, log: pd.DataFrame, as_of: datetime, horizon: int) -> None:
    revenue, days = realised_revenue(log, as_of, horizon)
    f = features.set_index("customer_id")
    target = revenue.reindex(f.index).fillna(0.0)
    again = days.reindex(f.index).fillna(0) > 0
    h = horizon
    print(f"\nas of {as_of:%Y-%m-%d}: {len(f):,} customers, realised revenue in [T, T+{h}d) "
          f"{target.sum():,.0f} (customers who ordered again: {again.mean():.1%})")
    columns = [f"revenue_sum_next_{h}d_year_ago", f"order_days_next_{h}d_year_ago", f"revenue_share_next_{h}d_year_ago",
               "revenue_sum_180d", "revenue_sum_365d", "revenue_sum_lifetime"]
    print(f"  {'feature':34s} {'Spearman':>9s} {'rows':>6s}")
    for column in columns:
        values = f[column]
        known = values.notna()
        rho = spearmanr(values[known], target[known]).statistic
        print(f"  {column:34s} {rho:9.4f} {known.sum():6d}")
    season = f[f"revenue_sum_next_{h}d_year_ago"]
    for control in ("revenue_sum_180d", "revenue_sum_365d"):
        print(f"  partial Spearman of {season.name} given {control}: {partial_spearman(season, target, f[control]):.4f}")
    share = f[f"season_share_next_{h}d"].iloc[0]
    before = log[(log["ts"] >= as_of - timedelta(days=365)) & (log["ts"] < as_of)]["amount"].sum()
    print(f"  season_share_next_{h}d = {share if pd.notna(share) else float('nan'):.4f}; realised: revenue in "
          f"[T, T+{h}d) / revenue in [T-365d, T) = {log[(log['ts'] >= as_of) & (log['ts'] < as_of + timedelta(days=h))]['amount'].sum() / before:.4f}")
    for column in (f"order_days_next_{h}d_year_ago", "order_count_180d"):
        print(f"  ROC-AUC of {column} for ordering again in [T, T+{h}d): {roc_auc_score(again, f[column]):.4f}")


SEASON_STEM = "_next_"  # revenue_sum_next_*, order_days_next_*, revenue_share_next_*, season_share_next_*
MODEL_SNAPSHOTS = 7
MODEL_AS_OF = datetime(2011, 9, 1)


def model_check(log: pd.DataFrame, horizon: int, seeds: int) -> None:
    """Out of time: LightGBM trained on monthly snapshots before MODEL_AS_OF, scored as of it, with and without the season columns.

    Reads the log up to its end (2011-12-09) to observe the labels of MODEL_AS_OF; each
    snapshot's features still see only rows before it, and every training label window ends
    by MODEL_AS_OF. The same boosters, parameters and seeds on both column sets.
    """
    import lightgbm as lgb

    from features.labels import build_labels
    from features.training_set import build_training_set
    from models.metrics import aggregate_bias_pct, normalized_gini

    spec = FeatureSpec(season_horizons_days=(horizon,))
    end = datetime(2011, 12, 10)
    with tempfile.TemporaryDirectory() as folder:
        log.to_parquet(Path(folder) / "transactions.parquet", index=False)
        data = load_and_validate(folder, clock=end, max_quarantine_share=1.0)
        train = build_training_set(
            data.tables, MODEL_AS_OF, spec=spec, churn_horizon_days=horizon, value_horizon_days=horizon,
            n_snapshots=MODEL_SNAPSHOTS, step_days=30, n_validation_snapshots=1, min_history_days=365,
        )
        test = build_features(data.tables, MODEL_AS_OF, spec).merge(
            build_labels(data.tables, MODEL_AS_OF, churn_horizon_days=horizon, value_horizon_days=horizon, data_end=end),
            on="customer_id")
    labels = [c for c in train.columns if c.startswith("label_")]
    everything = [c for c in train.columns if c not in ("customer_id", "as_of", "is_validation", *labels)]
    without = [c for c in everything if SEASON_STEM not in c]
    print(f"\nmodel check, horizon {horizon} days: {train['as_of'].nunique()} snapshots "
          f"{train['as_of'].min():%Y-%m-%d}..{train['as_of'].max():%Y-%m-%d}, {len(train):,} rows; "
          f"scored as of {MODEL_AS_OF:%Y-%m-%d}: {len(test):,} customers; season columns: {sorted(set(everything) - set(without))}")
    shares = train.groupby("as_of")["season_share_next_90d"].first()
    print("  season_share_next_90d by training snapshot: "
          + ", ".join(f"{day:%Y-%m-%d} {share:.3f}" for day, share in shares.items())
          + f"; as of {MODEL_AS_OF:%Y-%m-%d}: {test['season_share_next_90d'].iloc[0]:.3f}")
    params = {"learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 50, "feature_fraction": 0.8,
              "bagging_fraction": 0.8, "bagging_freq": 1, "verbose": -1, "num_threads": 2}
    rounds = 300
    population = [c for c in everything if c.startswith("season_share_")]
    column_sets = (("without season columns", without), ("+ the customer's season", [c for c in everything if c not in population]),
                   ("+ the population share", without + population), ("with season columns", everything))
    for name, columns in column_sets:
        auc, gini, rho, bias = [], [], [], []
        for seed in range(seeds):
            churn = lgb.train({**params, "objective": "binary", "seed": seed},
                              lgb.Dataset(train[columns], train["label_churn"]), rounds)
            value = lgb.train({**params, "objective": "tweedie", "seed": seed},
                              lgb.Dataset(train[columns], train["label_revenue"].clip(lower=0)), rounds)
            auc.append(roc_auc_score(test["label_churn"], churn.predict(test[columns])))
            predicted = value.predict(test[columns])
            gini.append(normalized_gini(test["label_revenue"], predicted))
            rho.append(spearmanr(predicted, test["label_revenue"]).statistic)
            bias.append(aggregate_bias_pct(test["label_revenue"], predicted))
        print(f"  {name:24s} churn ROC-AUC {np.mean(auc):.4f} (seeds {min(auc):.4f}-{max(auc):.4f}); "
              f"revenue Gini {np.mean(gini):.4f} ({min(gini):.4f}-{max(gini):.4f}), Spearman {np.mean(rho):.4f}, "
              f"total {np.mean(bias):+.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--horizon", type=int, default=180)
    parser.add_argument("--model-check", type=int, default=0, metavar="SEEDS",
                        help="also train LightGBM out of time with and without the season columns (90-day horizons)")
    args = parser.parse_args()
    log = contract_log(args.data)
    spec = FeatureSpec(season_horizons_days=(args.horizon,))
    with tempfile.TemporaryDirectory() as folder:
        log[log["ts"] < INPUT_END].to_parquet(Path(folder) / "transactions.parquet", index=False)
        data = load_and_validate(folder, clock=INPUT_END, max_quarantine_share=1.0)
        report_ = data.report["transactions"]
        print(f"transactions: {report_.read:,} read, {report_.accepted:,} accepted, {report_.quarantined:,} quarantined "
              f"{dict(report_.reasons)}")
        for as_of in AS_OF_DATES:
            report(build_features(data.tables, as_of, spec), log, as_of, args.horizon)
    if args.model_check:
        model_check(log, 90, args.model_check)


if __name__ == "__main__":
    main()
