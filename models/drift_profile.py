"""A model's drift reference: how its features and its score spread over the customers it was validated on.

Made when a model is fitted, from the same population its reasons are compared with (the
customers with history of the latest validation snapshot: one snapshot, like the population a
scoring run scores, and scores out of time rather than on rows the trees were fitted to), and
kept on the model as plain data (`drift_profile_`, dicts, lists and numbers), so the model file
needs no new trusted type and every scoring run of that champion measures against the same
reference. serving/drift.py counts a run's customers into the same bins.

A numeric column gets quantile bins of its known values (edges are values of the column, ties
merged, so a 0/1 flag has two bins, not ten); a categorical column its categories. Shares are
of all rows, with the missing share beside the bins, so bins and missing add up to 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.column_kinds import is_numeric

# Ten bins is the usual PSI convention: fine enough to see a shift, coarse enough that each bin
# of a few thousand validation customers holds hundreds of them.
QUANTILE_BINS = 10
PROFILE_VERSION = 1


def drift_profile(population: pd.DataFrame, feature_names: Sequence[str],
                  scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The reference of `feature_names` over `population` and of each named score on the same rows."""
    return {
        "version": PROFILE_VERSION,
        "rows": len(population),
        "features": {name: column_profile(population[name]) for name in feature_names},
        "scores": {name: numeric_profile(np.asarray(values, dtype=float)) for name, values in scores.items()},
    }


def column_profile(column: pd.Series) -> dict[str, Any]:
    """Bins and shares of one column: quantile bins for numbers, categories for the rest."""
    if is_numeric(column):
        return numeric_profile(column.to_numpy(dtype=float, na_value=np.nan))
    return categorical_profile(column)


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    """Quantile edges of the known values, each bin's share of all rows, and the missing share."""
    values = np.asarray(values, dtype=float)
    known = values[~np.isnan(values)]
    edges = quantile_edges(known)
    counts = np.bincount(bin_index(known, edges), minlength=len(edges) + 1)
    n = max(len(values), 1)
    return {"kind": "numeric", "edges": edges.tolist(), "shares": (counts / n).tolist(),
            "missing": float((len(values) - len(known)) / n)}


def quantile_edges(known: np.ndarray) -> np.ndarray:
    """Inner edges at the deciles of the known values (values that occur; repeated edges merged)."""
    if len(known) == 0:
        return np.array([], dtype=float)
    levels = np.arange(1, QUANTILE_BINS) / QUANTILE_BINS
    return np.unique(np.quantile(known, levels, method="inverted_cdf"))


def bin_index(known: np.ndarray, edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """The bin of each known value: bin i holds edges[i-1] < x <= edges[i] (first and last bins open)."""
    return np.searchsorted(np.asarray(edges, dtype=float), known, side="left")


def categorical_profile(column: pd.Series) -> dict[str, Any]:
    """Each category's share of all rows (as text, in order of frequency) and the missing share."""
    n = max(len(column), 1)
    counts = category_counts(column)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {"kind": "categorical", "categories": [c for c, _ in ordered], "shares": [k / n for _, k in ordered],
            "missing": float(column.isna().sum() / n)}


def category_counts(column: pd.Series) -> dict[str, int]:
    """Rows per known category, categories as text (a category column's unused categories left out)."""
    known = column.dropna()
    if isinstance(known.dtype, pd.CategoricalDtype):
        known = known.astype(object)
    counts = known.astype(str).value_counts(sort=False)
    return {str(k): int(v) for k, v in counts.items() if v > 0}
