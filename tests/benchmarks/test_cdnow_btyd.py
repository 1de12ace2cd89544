"""BG/NBD and Gamma-Gamma reference: published parameters on CDNOW and the churn probability's derivation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.cdnow.btyd import BetaGeoModel, GammaGammaModel, rfm_summary
from benchmarks.cdnow.data import SHIPPED_SAMPLE, read_cdnow, to_transactions

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # FHL 2005, table 1
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}  # Fader & Hardie GG note


@pytest.fixture(scope="module")
def calibration_summary() -> pd.DataFrame:
    """RFM of the shipped 2,357-customer sample over the 39-week calibration (to 1997-09-30)."""
    transactions = to_transactions(read_cdnow(SHIPPED_SAMPLE))
    transactions["ts"] = pd.to_datetime(transactions["ts"])
    return rfm_summary(transactions, pd.Timestamp("1997-10-01"))


def test_bgnbd_reproduces_fader_hardie_lee_2005_on_the_cdnow_sample(calibration_summary):
    model = BetaGeoModel().fit(calibration_summary["frequency"], calibration_summary["recency"],
                               calibration_summary["T"])
    fitted = {k: round(v, 3) for k, v in model.params_.items()}
    assert fitted == PUBLISHED_BGNBD
    assert model.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)


def test_gamma_gamma_reproduces_the_published_spend_parameters(calibration_summary):
    model = GammaGammaModel().fit(calibration_summary["frequency"],
                                  calibration_summary["monetary_value"])
    fitted = {k: round(v, 2) for k, v in model.params_.items()}
    assert fitted == pytest.approx(PUBLISHED_GAMMA_GAMMA, abs=0.011)


def test_rfm_summary_merges_same_day_purchases_and_counts_weeks_to_the_day_before_as_of():
    transactions = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "a"],
        "ts": pd.to_datetime(["1997-01-01", "1997-01-01", "1997-01-15", "1997-01-08", "1997-03-01"]),
        "amount": [10.0, 5.0, 20.0, 7.0, 99.0],
    })
    summary = rfm_summary(transactions, pd.Timestamp("1997-01-29"))
    # a: purchase days Jan 1 (two rows, one day) and Jan 15 -> one repeat day, 2 weeks after.
    assert summary.loc["a", "frequency"] == 1
    assert summary.loc["a", "recency"] == pytest.approx(2.0)
    assert summary.loc["a", "T"] == pytest.approx(27 / 7)  # Jan 1 -> Jan 28, the last observed day
    assert summary.loc["a", "monetary_value"] == pytest.approx(20.0)  # first day's spend excluded
    assert summary.loc["b", "frequency"] == 0 and summary.loc["b", "monetary_value"] == 0.0


def _simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, horizon_end: float,
                    seed: int) -> list[np.ndarray]:
    """Purchase times (after the birth purchase at 0) of n BG/NBD customers up to horizon_end."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    now = np.zeros(n)
    active = np.ones(n, dtype=bool)
    times: list[list[float]] = [[] for _ in range(n)]
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1.0 / lam[idx])
        bought = idx[now[idx] <= horizon_end]
        active[idx[now[idx] > horizon_end]] = False
        for i in bought:
            times[i].append(now[i])
        dies = bought[rng.random(bought.size) < p[bought]]
        active[dies] = False
    return [np.asarray(t) for t in times]


def test_probability_of_no_purchase_matches_simulated_bgnbd_customers():
    params = {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}
    calibration, horizon = 40.0, 26.0
    purchases = _simulate_bgnbd(20_000, **params, horizon_end=calibration + horizon, seed=1)
    x = np.array([np.sum(t <= calibration) for t in purchases], dtype=float)
    t_x = np.array([t[t <= calibration].max() if np.any(t <= calibration) else 0.0 for t in purchases])
    silent = np.array([not np.any(t > calibration) for t in purchases])
    n_future = np.array([np.sum(t > calibration) for t in purchases], dtype=float)
    model = BetaGeoModel(r_=params["r"], alpha_=params["alpha"], a_=params["a"], b_=params["b"])
    big_t = np.full(x.size, calibration)
    p_none = model.probability_no_purchase(horizon, x, t_x, big_t)
    expected = model.expected_purchases(horizon, x, t_x, big_t)
    for group in (x == 0, (x >= 1) & (x <= 3), x >= 4):
        assert p_none[group].mean() == pytest.approx(silent[group].mean(), abs=0.02)
    assert expected.mean() == pytest.approx(n_future.mean(), rel=0.05)
