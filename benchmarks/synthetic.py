"""Synthetic customer matrices with known signal, for model size measurements and the model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

REGIONS = ["north", "south", "east", "west"]


def make_snapshot(
    n: int, seed: int, as_of: str, n_noise: int = 0, drift: float = 0.0, churn_shift: float = 0.0
) -> pd.DataFrame:
    """One snapshot: features named as in docs/ARCHITECTURE.md plus labels with real signal.

    Churn depends on recency against cadence (what the rule baseline sees) and also on
    complaints, the spend trend and region (what only a model sees). Horizon revenue is
    zero-inflated lognormal around a latent spend level that the 90-day window shows
    noisily and the 365-day window shows better.
    """
    rng = np.random.default_rng(seed)
    gap = rng.lognormal(np.log(40), 0.6, n)
    one_order = rng.random(n) < 0.15
    recency_ratio = rng.lognormal(0.0, 0.8, n)
    recency = gap * recency_ratio
    level = rng.lognormal(np.log(300), 1.0, n)  # latent quarterly spend
    trend = rng.normal(0, 0.4, n)
    complaints = rng.poisson(0.4, n)
    region = rng.choice(REGIONS, n, p=[0.4, 0.3, 0.2, 0.1])
    region_effect = pd.Series(region).map({"north": 0.0, "south": 0.4, "east": -0.3, "west": 0.9}).to_numpy()
    logit = (-0.6 + drift + churn_shift + 1.0 * np.log(recency_ratio) + 0.7 * complaints - 1.5 * trend
             + region_effect + 0.5 * one_order + rng.normal(0, 0.5, n))
    churn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    active = churn == 0
    revenue = np.where(
        active, level * np.exp(0.8 * trend) * rng.lognormal(-0.3, 0.7, n), 0.0
    )
    returns = np.where(rng.random(n) < 0.05, -rng.uniform(0.1, 0.6, n) * (revenue + 50), 0.0)
    revenue = revenue + returns
    margin = 0.3 * revenue + np.where(returns < 0, -20.0, 0.0)
    cost = rng.gamma(0.5, 20, n) + 25 * complaints
    frame = pd.DataFrame({
        "as_of": pd.Timestamp(as_of),
        "days_since_last_order": recency.round(),
        "order_gap_mean_days": np.where(one_order, np.nan, gap),
        "revenue_sum_90d": level * np.exp(-0.3 * trend) * rng.lognormal(-0.2, 0.9, n),
        "revenue_sum_365d": 4 * level * rng.lognormal(-0.1, 0.35, n),
        "revenue_change_pct_90d_vs_prev_90d": 100 * trend + rng.normal(0, 10, n),
        "complaint_count_90d": complaints.astype(float),
        "attr_region": pd.Categorical(region, categories=REGIONS),
    })
    frame.loc[rng.random(n) < 0.05, "revenue_change_pct_90d_vs_prev_90d"] = np.nan
    # extra columns are noisy views of the drivers, as real feature sets are correlated
    drivers = [np.log(recency_ratio), np.log(level), trend, complaints - 0.4]
    for i in range(n_noise):
        driver = drivers[i % len(drivers)]
        frame[f"extra_{i}"] = driver / driver.std() * rng.uniform(0, 0.8) + rng.normal(size=n)
    frame["label_churn"] = churn
    # Order days in the horizon: none for churners, more for recent and growing customers (drawn
    # last, so the columns above stay what they were before this label existed).
    extra_days = rng.poisson(np.exp(0.3 - 0.5 * np.log(recency_ratio) + 0.5 * trend))
    frame["label_churn_order_days"] = np.where(active, 1 + extra_days, 0)
    frame["label_revenue"] = revenue
    frame["label_margin"] = margin
    frame["label_cost_to_serve"] = cost
    return frame


def make_training_set(
    n_per_snapshot: int, seed: int = 0, n_noise: int = 0, churn_shift: float = 0.0
) -> pd.DataFrame:
    """Three snapshots; the last one, slightly drifted, is the out-of-time validation."""
    dates = ["2024-01-01", "2024-04-01", "2024-07-01"]
    frames = [
        make_snapshot(n_per_snapshot, seed + i, d, n_noise, 0.1 * i, churn_shift) for i, d in enumerate(dates)
    ]
    return pd.concat(frames, ignore_index=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Every column that is neither a label nor the snapshot date."""
    return [c for c in frame.columns if not c.startswith("label_") and c != "as_of"]
