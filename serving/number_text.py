"""Rounding shared by the texts that show numbers: reason sentences and segment reasons."""

from __future__ import annotations

import numpy as np


def round_sig3(v: np.ndarray) -> np.ndarray:
    """Round to three significant figures: a reason reads "clv 12,400", and few distinct values format fast.

    Zero, NaN and infinities are returned as they are.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        finite = np.isfinite(v) & (v != 0)
        mag = np.where(finite, 10.0 ** (np.floor(np.log10(np.abs(np.where(finite, v, 1.0)))) - 2), 1.0)
        return np.where(finite, np.round(v / mag) * mag, v)
