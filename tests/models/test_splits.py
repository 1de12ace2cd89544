"""Out-of-time splits."""

import pandas as pd
import pytest

from models.splits import out_of_time_split, split_by_flag


def _frame():
    return pd.DataFrame({
        "as_of": pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01", "2024-07-01"]),
        "x": [1, 2, 3, 4],
    })


def test_validation_is_the_latest_snapshot():
    train, valid = out_of_time_split(_frame())
    assert train["as_of"].max() < valid["as_of"].min()
    assert list(valid["x"]) == [3, 4]


def test_two_validation_snapshots():
    train, valid = out_of_time_split(_frame(), n_validation_snapshots=2)
    assert list(train["x"]) == [1]


def test_one_snapshot_cannot_be_split_out_of_time():
    with pytest.raises(ValueError, match="1 snapshot"):
        out_of_time_split(_frame().iloc[2:])


def test_flag_that_is_not_out_of_time_is_refused():
    frame = _frame().assign(is_validation=[True, False, False, False])
    with pytest.raises(ValueError, match="out of time"):
        split_by_flag(frame)
