"""Shared synthetic training data for model tests (built once per session)."""

import pandas as pd
import pytest

from benchmarks.synthetic import feature_columns, make_training_set
from models.splits import out_of_time_split


@pytest.fixture(scope="session")
def training_split() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Train (two earlier snapshots) and out-of-time validation (latest), with feature names."""
    frame = make_training_set(4000, seed=0, n_noise=3)
    train, valid = out_of_time_split(frame)
    return train, valid, feature_columns(frame)
