"""CDNOW reference: BG/NBD + Gamma-Gamma inputs from raw transactions (the RFM summary).

The maximum-likelihood models themselves live in `models/btyd.py` (one implementation, used by
custscore and by this benchmark) and are re-exported here so the benchmark's API is unchanged.

Data convention (lifetimes'): purchases on the same day are one transaction; frequency x =
number of repeat purchase days, recency t_x = weeks from first to last purchase day, T =
weeks from first purchase day to the last observed day (the day before as_of).
"""

from __future__ import annotations

import pandas as pd

from models.btyd import DAYS_PER_WEEK, BetaGeoModel, GammaGammaModel

__all__ = ["DAYS_PER_WEEK", "BetaGeoModel", "GammaGammaModel", "rfm_summary"]


def rfm_summary(transactions: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per-customer frequency, recency, T (weeks) and mean repeat-day spend from rows before as_of.

    A purchase day is a day with a row of non-negative amount (CDNOW's $0 records are purchases
    of free CDs; a return line alone, negative, is not a purchase). Repeat spend is the net amount
    of every row dated after the first purchase day, returns included where they happen, as
    custscore's repeat_revenue_mean_per_order_day_lifetime. Customers without a purchase day are
    left out. Columns: customer_id (index), frequency, recency, T, monetary_value (repeat spend
    per repeat purchase day, 0 where there is none), first_day, last_day.
    """
    as_of = pd.Timestamp(as_of)
    before = transactions.loc[transactions["ts"] < as_of, ["customer_id", "ts", "amount"]]
    before = before.assign(day=before["ts"].dt.normalize())
    purchase_days = before.loc[before["amount"] >= 0, ["customer_id", "day"]].drop_duplicates()
    if purchase_days.empty:
        raise ValueError(f"no purchases before as_of {as_of.date()}: nothing to fit")
    grouped = purchase_days.groupby("customer_id")["day"]
    first_day = grouped.min()
    last_day = grouped.max()
    frequency = (grouped.size() - 1).astype(float)
    after_first = before.loc[before["day"] > before["customer_id"].map(first_day)]
    repeat_spend = after_first.groupby("customer_id")["amount"].sum().reindex(first_day.index, fill_value=0.0)
    repeat_spend = repeat_spend.where(frequency > 0, 0.0)
    observed_end = as_of.normalize() - pd.Timedelta(days=1)
    summary = pd.DataFrame({
        "frequency": frequency,
        "recency": (last_day - first_day).dt.days / DAYS_PER_WEEK,
        "T": (observed_end - first_day).dt.days / DAYS_PER_WEEK,
        "monetary_value": (repeat_spend / frequency.where(frequency > 0, 1.0)).astype(float),
        "first_day": first_day,
        "last_day": last_day,
    })
    summary.index.name = "customer_id"
    return summary
