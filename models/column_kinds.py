"""What kind of column a model feature is, read the same way wherever it matters (reasons, drift)."""

from __future__ import annotations

import pandas as pd


def is_numeric(column: pd.Series) -> bool:
    """A number column (categories, even of numbers, are not: their codes have no order)."""
    return pd.api.types.is_numeric_dtype(column.dtype) and not isinstance(column.dtype, pd.CategoricalDtype)
