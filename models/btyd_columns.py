"""BG/NBD + Gamma-Gamma outputs as extra columns of a feature matrix, fitted point in time.

Each snapshot of a training set (rows sharing one `as_of`) gets its own BTYD fit on its own
rows: those rows hold only history before that snapshot's as_of, and the fit reads no label,
so the columns leak nothing. A scoring matrix (no `as_of` column, or one date) is one group.
"""

from __future__ import annotations

import logging

import pandas as pd

from models.btyd import BTYD_FIT_ROWS, BtydFeatures

logger = logging.getLogger(__name__)


def add_btyd_features(frame: pd.DataFrame, horizon_days: int, group_column: str = "as_of",
                      max_fit_rows: int = BTYD_FIT_ROWS) -> pd.DataFrame:
    """frame with the BTYD columns for `horizon_days` added, fitted separately per `group_column` value."""
    groups = frame.groupby(group_column, sort=True).groups.values() if group_column in frame.columns else [frame.index]
    parts = []
    for index in groups:
        rows = frame.loc[index]
        parts.append(BtydFeatures(horizon_days, max_fit_rows=max_fit_rows).fit(rows).transform(rows))
    # btyd_p_alive does not depend on the horizon: a second horizon's fit gives the same column again.
    columns = pd.concat(parts).reindex(frame.index).drop(columns=list(frame.columns), errors="ignore")
    logger.info("added BTYD columns %s for %d rows in %d group(s)", list(columns.columns), len(frame), len(parts))
    return pd.concat([frame, columns], axis=1)
