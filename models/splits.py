"""Out-of-time splits: train on earlier snapshots, validate on the latest ones, never at random."""

from __future__ import annotations

import pandas as pd


def validation_snapshots(
    frame: pd.DataFrame, as_of_column: str = "as_of", n_validation_snapshots: int = 1
) -> list[pd.Timestamp]:
    """The latest `n_validation_snapshots` distinct as-of dates of `frame`."""
    if as_of_column not in frame.columns:
        raise KeyError(
            f"out-of-time split: column '{as_of_column}' not found; columns are "
            f"{list(frame.columns)[:10]}...; pass as_of_column= with the snapshot date column"
        )
    snapshots = sorted(pd.unique(frame[as_of_column].dropna()))
    if len(snapshots) <= n_validation_snapshots:
        raise ValueError(
            f"out-of-time split: {len(snapshots)} snapshot(s) in column '{as_of_column}' "
            f"({[str(s) for s in snapshots]}) but {n_validation_snapshots} are held out for "
            "validation; build the training set with more snapshots"
        )
    return list(snapshots[-n_validation_snapshots:])


def out_of_time_mask(
    frame: pd.DataFrame, as_of_column: str = "as_of", n_validation_snapshots: int = 1
) -> pd.Series:
    """Boolean Series: True for rows of the latest snapshots (validation)."""
    held_out = validation_snapshots(frame, as_of_column, n_validation_snapshots)
    return frame[as_of_column].isin(held_out)


def out_of_time_split(
    frame: pd.DataFrame, as_of_column: str = "as_of", n_validation_snapshots: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into (train = earlier snapshots, validation = the latest snapshots)."""
    mask = out_of_time_mask(frame, as_of_column, n_validation_snapshots)
    return frame.loc[~mask], frame.loc[mask]


def split_by_flag(
    frame: pd.DataFrame, flag_column: str = "is_validation", as_of_column: str = "as_of"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split on a precomputed validation flag, checking that it is really out of time."""
    if flag_column not in frame.columns:
        raise KeyError(f"split_by_flag: column '{flag_column}' not found in the training set")
    flag = frame[flag_column].astype(bool)
    train, valid = frame.loc[~flag], frame.loc[flag]
    if train.empty or valid.empty:
        raise ValueError(
            f"split_by_flag: '{flag_column}' gives {len(train)} training and {len(valid)} "
            "validation rows; both must be non-empty"
        )
    if as_of_column in frame.columns and train[as_of_column].max() >= valid[as_of_column].min():
        raise ValueError(
            f"split_by_flag: training snapshot {train[as_of_column].max()} is not earlier than "
            f"validation snapshot {valid[as_of_column].min()}; validation must be out of time"
        )
    return train, valid
