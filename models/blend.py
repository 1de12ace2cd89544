"""Blending custscore's predictions with a buy-till-you-die reference fitted on the scored population.

A LightGBM model learns from training snapshots; where the scored customers are older than the
ones it learned from (a cohort that ages), it can only extrapolate flat. BG/NBD + Gamma-Gamma
(models/btyd.py) fitted on the scored population itself carries the ageing in its structure,
but ranks with four parameters. A weighted average of the two is a hedge: `weight` is the
reference's share, 0 keeps the model's prediction, 1 gives the reference's.

- Churn: the average of the log-odds, expit((1 - w) logit(p_model) + w logit(p_reference)).
  Log-odds rather than probabilities: a customer both models call near-certain stays
  near-certain, and the blend of two calibrated scores stays close to calibrated.
- Value: the arithmetic average (1 - w) v_model + w v_reference, so the blended total is the
  weighted average of the two totals (equal to both when the level anchor of models/level.py
  already matched the model's total to the reference's).

Where the reference is missing (NaN: a customer without an order, a failed fit) the model's
prediction is kept. Choose the weights before the scoring date, on a backtest (see
benchmarks/cdnow/backtest.md): the validation snapshot is as young as the training ones and
does not show the drift the blend hedges.
"""

from __future__ import annotations

import numpy as np

# Probabilities are clipped this far from 0 and 1 before the log-odds, so a 0 or a 1 from
# either side does not turn the blend into +-inf.
PROBABILITY_EPSILON = 1e-6


def _checked_pair(model: object, reference: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arguments as 1-d float arrays of one length, or a ValueError naming the mismatch."""
    ours, theirs = np.asarray(model, dtype=float), np.asarray(reference, dtype=float)
    if ours.ndim != 1 or theirs.shape != ours.shape:
        raise ValueError(f"{what}: the model's predictions have shape {ours.shape} and the reference's "
                         f"{theirs.shape}; give one value per scored customer in both")
    return ours, theirs


def _checked_weight(weight: float, what: str) -> float:
    """The weight as a float in [0, 1], or a ValueError saying what to give."""
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"{what}: weight must be the reference's share in [0, 1], got {weight}")
    return float(weight)


def _log_odds(p: np.ndarray) -> np.ndarray:
    """logit(p) with p clipped to [PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON]."""
    clipped = np.clip(p, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


def blend_churn_probabilities(p_model: object, p_reference: object, weight: float) -> np.ndarray:
    """expit((1 - weight) logit(p_model) + weight logit(p_reference)); p_model where either is NaN."""
    ours, theirs = _checked_pair(p_model, p_reference, "blend_churn_probabilities")
    w = _checked_weight(weight, "blend_churn_probabilities")
    if w == 0.0:
        return ours.copy()
    both = np.isfinite(ours) & np.isfinite(theirs)
    out = ours.copy()
    mixed = (1.0 - w) * _log_odds(ours[both]) + w * _log_odds(theirs[both])
    out[both] = 1.0 / (1.0 + np.exp(-mixed))
    return out


def blend_values(v_model: object, v_reference: object, weight: float) -> np.ndarray:
    """(1 - weight) v_model + weight v_reference; v_model where either is NaN."""
    ours, theirs = _checked_pair(v_model, v_reference, "blend_values")
    w = _checked_weight(weight, "blend_values")
    both = np.isfinite(ours) & np.isfinite(theirs)
    out = ours.copy()
    out[both] = (1.0 - w) * ours[both] + w * theirs[both]
    return out
