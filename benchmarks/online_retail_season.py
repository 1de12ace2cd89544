"""Do the season features carry signal? UCI Online Retail, features as of two dates, Spearman against what followed.

    python -m benchmarks.online_retail_season [--data DIR] [--horizon 180]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--horizon", type=int, default=180)
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


if __name__ == "__main__":
    main()
