"""Exact TreeSHAP contributions from LightGBM, their additivity check and top reasons per row."""

from __future__ import annotations

import os
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.treeshap import explainer_for


class AdditivityError(ValueError):
    """Contributions do not add up to the model's raw prediction."""


def contributions(
    booster: lgb.Booster, X: pd.DataFrame, num_threads: int | None = None
) -> np.ndarray:
    """Exact TreeSHAP values, shape (n, f + 1); the last column is the bias (expected raw score).

    Columns follow `booster.feature_name()`; categorical columns must keep their pandas
    `category` dtype so they are coded as in training. Small trees (the project's sizes) are
    explained from per-tree tables (models.treeshap), equal to LightGBM's pred_contrib to
    rounding and about 15x cheaper; any other booster goes to pred_contrib (logged once).
    `num_threads` None uses every core.
    """
    names = booster.feature_name()
    missing = [c for c in names if c not in X.columns]
    if missing:
        raise KeyError(
            f"contributions: feature columns {missing[:5]} used by the model are missing from "
            "the matrix; build features with the model's feature set"
        )
    explainer = explainer_for(booster)
    if isinstance(explainer, str):
        return lightgbm_contributions(booster, X[names], num_threads)
    return explainer.contributions(X[names], num_threads=num_threads or os.cpu_count() or 1)


def lightgbm_contributions(
    booster: lgb.Booster, X: pd.DataFrame, num_threads: int | None = None
) -> np.ndarray:
    """LightGBM's own TreeSHAP (pred_contrib=True): the reference and the fallback."""
    params = {} if num_threads is None else {"num_threads": num_threads}
    return np.asarray(booster.predict(X, pred_contrib=True, **params))


def check_additivity(contrib: np.ndarray, raw_pred: np.ndarray, atol: float = 1e-6) -> None:
    """Raise AdditivityError if any row's contributions plus bias differ from its raw prediction."""
    raw = np.asarray(raw_pred, dtype=float).ravel()
    if contrib.shape[0] != raw.size:
        raise AdditivityError(
            f"check_additivity: {contrib.shape[0]} contribution rows but {raw.size} predictions"
        )
    gap = np.abs(contrib.sum(axis=1) - raw)
    worst = int(np.argmax(gap)) if gap.size else 0
    if gap.size and gap[worst] > atol:
        raise AdditivityError(
            f"check_additivity: contributions of row {worst} sum to {contrib[worst].sum():.8g} "
            f"but the raw prediction is {raw[worst]:.8g} (difference {gap[worst]:.3g} > atol "
            f"{atol}); {int((gap > atol).sum())} rows fail. Compare against "
            "predict(raw_score=True) of the same booster on the same rows and column order"
        )


@dataclass(frozen=True)
class TopReasons:
    """Indices (into feature_names) of the k strongest raising and lowering features per row.

    -1 marks a slot with no feature of that sign; the order is strongest first.
    """

    raising: np.ndarray
    lowering: np.ndarray


def _top_k_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest positive values per row, strongest first, -1 if none."""
    k = min(k, values.shape[1])
    part = np.argpartition(-values, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(values, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    strength = np.take_along_axis(picked, order, axis=1)
    return np.where(strength > 0, idx, -1)


def top_reasons(contrib: np.ndarray, feature_names: list[str], k: int = 3) -> TopReasons:
    """Top-k raising and lowering features per row of a contribution matrix (bias ignored)."""
    n_features = len(feature_names)
    if contrib.shape[1] not in (n_features, n_features + 1):
        raise ValueError(
            f"top_reasons: contribution matrix has {contrib.shape[1]} columns but there are "
            f"{n_features} feature names (expected {n_features} or {n_features + 1} with bias)"
        )
    values = contrib[:, :n_features]
    return TopReasons(raising=_top_k_indices(values, k), lowering=_top_k_indices(-values, k))
