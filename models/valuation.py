"""Net value and discounted customer lifetime value from model outputs."""

from __future__ import annotations

import numpy as np

DAYS_PER_MONTH = 365.25 / 12


def net_value(expected_margin: np.ndarray, cost_to_serve: np.ndarray) -> np.ndarray:
    """Net value = expected margin - expected cost to serve (may be negative)."""
    return np.asarray(expected_margin, dtype=float) - np.asarray(cost_to_serve, dtype=float)


def monthly_discount_factor(horizon_days: int, annual_discount_rate: float) -> float:
    """Present value of 1 spread evenly over the horizon's months, each discounted at month end.

    The horizon is cut into n = max(1, round(horizon_days / 30.44)) months; each month
    receives 1/n and is discounted by (1 + r_m)^-k for month k = 1..n, where
    r_m = (1 + annual rate)^(1/12) - 1 is the equivalent monthly rate.
    """
    if horizon_days <= 0:
        raise ValueError(f"clv: horizon_days must be positive, got {horizon_days}")
    if annual_discount_rate <= -1:
        raise ValueError(f"clv: annual_discount_rate must be > -1, got {annual_discount_rate}")
    months = max(1, round(horizon_days / DAYS_PER_MONTH))
    monthly_rate = (1.0 + annual_discount_rate) ** (1.0 / 12.0) - 1.0
    k = np.arange(1, months + 1)
    return float(np.mean((1.0 + monthly_rate) ** -k))


def clv(net_value: np.ndarray, horizon_days: int, annual_discount_rate: float) -> np.ndarray:
    """Discounted CLV: the horizon's net value spread evenly by month, each month discounted."""
    factor = monthly_discount_factor(horizon_days, annual_discount_rate)
    return np.asarray(net_value, dtype=float) * factor
