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

    Columns: customer_id (index), frequency, recency, T, monetary_value (mean revenue of the
    repeat purchase days, 0 where there is none), first_day, last_day.
    """
    as_of = pd.Timestamp(as_of)
    before = transactions.loc[transactions["ts"] < as_of, ["customer_id", "ts", "amount"]]
    if before.empty:
        raise ValueError(f"no transactions before as_of {as_of.date()}: nothing to fit")
    daily = (before.assign(day=before["ts"].dt.normalize())
             .groupby(["customer_id", "day"], sort=True)["amount"].sum().reset_index())
    grouped = daily.groupby("customer_id")
    first_day = grouped["day"].min()
    last_day = grouped["day"].max()
    n_days = grouped.size()
    first_amount = grouped["amount"].first()
    total_amount = grouped["amount"].sum()
    frequency = (n_days - 1).astype(float)
    repeat_spend = (total_amount - first_amount).where(frequency > 0, 0.0)
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
