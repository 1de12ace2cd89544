"""Snapshot dates and training sets: label windows end by the scoring date, validation is out of time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.build import FeatureSpec
from features.tables import tables_from_frames
from features.training_set import (
    InsufficientHistoryError,
    build_training_set,
    build_training_sets,
    snapshot_dates,
)
from tests.features.conftest import random_frames

SCORING = datetime(2024, 12, 31)


def test_snapshots_end_their_label_windows_by_the_scoring_date():
    dates = snapshot_dates(
        SCORING, data_start=datetime(2021, 1, 1), horizon_days=365, n_snapshots=3, step_days=90, min_history_days=180
    )
    assert dates == [SCORING - timedelta(days=365 + 180), SCORING - timedelta(days=365 + 90), SCORING - timedelta(days=365)]


def test_short_history_says_how_much_is_needed_and_how_much_there_is():
    with pytest.raises(InsufficientHistoryError) as error:
        snapshot_dates(
            SCORING, data_start=datetime(2024, 1, 1), horizon_days=365, n_snapshots=4, step_days=90, min_history_days=180
        )
    message = str(error.value)
    assert "need 815 days" in message and "has 365 days" in message
    assert "2024-01-01" in message and "2024-12-31" in message
    assert isinstance(error.value, ValueError)


def test_earliest_snapshots_are_dropped_when_enough_remain():
    dates = snapshot_dates(
        SCORING, data_start=datetime(2023, 1, 1), horizon_days=90, n_snapshots=6, step_days=90,
        min_history_days=365, min_snapshots=2,
    )
    assert dates[-1] == SCORING - timedelta(days=90)
    assert dates[0] >= datetime(2024, 1, 1) and len(dates) < 6


@pytest.fixture(scope="module")
def tables(con):
    """Three and a half years of random history for 120 customers."""
    frames = random_frames(120, seed=3, start=datetime(2021, 6, 1), end=SCORING)
    return tables_from_frames(frames, con)[1]


def test_training_set_stacks_snapshots_with_labels_and_out_of_time_validation(tables):
    spec = FeatureSpec(windows_days=(30, 90))
    training = build_training_set(
        tables, SCORING, spec=spec, n_snapshots=3, step_days=90, n_validation_snapshots=1, min_history_days=180
    )
    snapshots = sorted(training["as_of"].unique())
    assert len(snapshots) == 3
    assert pd.Timestamp(snapshots[-1]) + pd.Timedelta(days=365) <= pd.Timestamp(SCORING)
    assert training.loc[training["is_validation"], "as_of"].eq(snapshots[-1]).all()
    assert not training.loc[~training["is_validation"], "as_of"].eq(snapshots[-1]).any()
    assert {"label_churn", "label_revenue", "label_margin", "label_cost_to_serve"} <= set(training.columns)
    assert not training.duplicated(["customer_id", "as_of"]).any()
    assert training["order_count_lifetime"].gt(0).all()  # every row is a customer with an order before T


def test_churn_only_training_set_uses_the_shorter_horizon(tables):
    spec = FeatureSpec(windows_days=(30,))
    training = build_training_set(
        tables, SCORING, spec=spec, n_snapshots=2, step_days=60, n_validation_snapshots=1, targets="churn"
    )
    assert pd.Timestamp(training["as_of"].max()) == pd.Timestamp(SCORING - timedelta(days=90))
    assert "label_churn" in training.columns and "label_revenue" not in training.columns


def test_both_kinds_from_one_sample_equal_each_kind_built_alone(tables, monkeypatch):
    import features.training_set as training_set

    spec = FeatureSpec(windows_days=(30, 90))
    common = dict(spec=spec, n_snapshots=2, step_days=60, n_validation_snapshots=1, min_history_days=180, max_customers=60)
    alone = {kind: build_training_set(tables, SCORING, targets=kind, **common) for kind in ("churn", "value")}
    entered = []
    real = training_set.materialised
    monkeypatch.setattr(training_set, "materialised", lambda *a, **k: entered.append(1) or real(*a, **k))
    together = build_training_sets(tables, SCORING, targets=("churn", "value"), **common)
    assert entered == [1]  # one sample and one set of order moments for both kinds
    for kind in ("churn", "value"):
        key = ["as_of", "customer_id"]
        pd.testing.assert_frame_equal(together[kind].sort_values(key, ignore_index=True),
                                      alone[kind].sort_values(key, ignore_index=True))
    assert len(together["churn"]) > 0 and together["churn"]["customer_id"].nunique() < 120  # a sample, not everyone


def test_snapshots_fall_on_midnights_when_the_scoring_date_has_a_time():
    scoring = datetime(2024, 12, 31, 17, 45)
    dates = snapshot_dates(
        scoring, data_start=datetime(2021, 1, 1), horizon_days=90, n_snapshots=2, step_days=30, min_history_days=0
    )
    assert dates == [datetime(2024, 9, 2), datetime(2024, 10, 2)]
    assert all(d + timedelta(days=90) <= scoring for d in dates)


def test_customer_sample_is_deterministic_and_about_the_requested_size():
    import pandas as pd

    from features.tables import tables_from_frames
    from features.training_set import sample_customers

    ids = [f"C{i:05d}" for i in range(4000)]
    frames = {"transactions": pd.DataFrame({
        "customer_id": ids, "order_id": [f"O{i}" for i in range(4000)],
        "ts": pd.Timestamp("2024-01-01"), "amount": 10.0,
    })}
    _, tables = tables_from_frames(frames)
    first = set(sample_customers(tables, 1000)["transactions"].customer_id.to_pyarrow().to_pylist())
    again = set(sample_customers(tables, 1000)["transactions"].customer_id.to_pyarrow().to_pylist())
    assert first == again
    assert 800 <= len(first) <= 1200
    assert len(sample_customers(tables, 10_000)["transactions"].customer_id.to_pyarrow()) == 4000


def test_sampled_training_set_rows_equal_the_scoring_features_and_labels_of_each_snapshot(con, tables):
    """Materialising the sample and the order moments once changes no number: each snapshot's rows are
    exactly what build_features and build_labels give for the sampled customers as of that date."""
    from features.build import build_features
    from features.labels import build_labels
    from features.training_set import sample_customers

    spec = FeatureSpec(windows_days=(30, 90))
    training = build_training_set(
        tables, SCORING, spec=spec, n_snapshots=2, step_days=60, n_validation_snapshots=1, max_customers=60,
    )
    sampled = sample_customers(tables, 60)
    for as_of, rows in training.groupby("as_of"):
        as_of = pd.Timestamp(as_of).to_pydatetime()
        expected = build_features(sampled, as_of, spec).merge(
            build_labels(sampled, as_of, data_end=SCORING), on="customer_id", how="inner"
        )
        got = rows.drop(columns=["as_of", "is_validation"]).reset_index(drop=True)
        assert len(got) < 120  # a sample, not everyone
        pd.testing.assert_frame_equal(got[expected.columns], expected, check_categorical=False, rtol=1e-9)


def test_sampled_training_set_takes_the_season_share_of_every_customer(con, tables):
    """Customer season columns come from the sample; the population share from all customers, as scoring has it."""
    from features.build import build_features

    spec = FeatureSpec(windows_days=(30,), season_horizons_days=(90, 365))
    training = build_training_set(
        tables, SCORING, spec=spec, n_snapshots=2, step_days=60, n_validation_snapshots=1, max_customers=60,
    )
    assert training["customer_id"].nunique() < 120  # a sample
    for as_of, rows in training.groupby("as_of"):
        everyone = build_features(tables, pd.Timestamp(as_of).to_pydatetime(), spec).set_index("customer_id")
        assert rows["season_share_next_90d"].tolist() == pytest.approx(
            [everyone["season_share_next_90d"].iloc[0]] * len(rows), rel=1e-9)
        mine = everyone.loc[rows["customer_id"], "revenue_sum_next_90d_year_ago"]
        assert rows["revenue_sum_next_90d_year_ago"].tolist() == pytest.approx(mine.tolist(), rel=1e-9)
    assert training["as_of"].nunique() == 2 and "season_share_next_365d" not in training.columns


def test_training_set_leaves_no_temporary_tables_behind(con, tables):
    build_training_set(
        tables, SCORING, spec=FeatureSpec(windows_days=(30,)), n_snapshots=2, step_days=60, max_customers=60,
    )
    temporary = con.con.sql("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    assert temporary == []
