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
    plan_snapshots,
    search_snapshot_dates,
)
from tests.features.conftest import random_frames

SCORING = datetime(2024, 12, 31)


def test_snapshots_end_their_label_windows_by_the_scoring_date():
    plan = plan_snapshots(
        SCORING, data_start=datetime(2021, 1, 1), horizon_days=365, n_snapshots=3, step_days=90, min_history_days=180
    )
    assert list(plan.dates) == [SCORING - timedelta(days=365 + 180), SCORING - timedelta(days=365 + 90),
                                SCORING - timedelta(days=365)]
    assert not plan.shortened and "held out" in plan.describe() and "configured" not in plan.describe()


def test_too_short_a_history_for_two_snapshots_says_how_much_is_needed_and_how_much_there_is():
    with pytest.raises(InsufficientHistoryError) as error:
        plan_snapshots(
            SCORING, data_start=datetime(2024, 1, 1), horizon_days=365, n_snapshots=4, step_days=90, min_history_days=180
        )
    message = str(error.value)
    # Two snapshots (one to train, one to validate) with the floor of 60 days of history: 60 + 90 + 365.
    assert "need 515 days" in message and "has 365 days" in message
    assert "2024-01-01" in message and "2024-12-31" in message
    assert isinstance(error.value, ValueError)


def test_earliest_snapshots_are_dropped_when_enough_remain():
    plan = plan_snapshots(
        SCORING, data_start=datetime(2023, 1, 1), horizon_days=90, n_snapshots=6, step_days=90,
        min_history_days=365, n_validation_snapshots=1,
    )
    assert plan.dates[-1] == SCORING - timedelta(days=90)
    assert plan.dates[0] >= datetime(2024, 1, 1) and len(plan.dates) < 6
    assert plan.shortened and plan.min_history_days == 365 and "configured 6" in plan.describe()


def test_short_history_uses_fewer_snapshots_with_a_shorter_minimum_history():
    # One year of history and a 182-day horizon (CDNOW): with 180 days of minimum history one
    # snapshot fits; the plan moves the first snapshot to 60 days after the start instead of refusing.
    start, scoring = datetime(1997, 1, 1), datetime(1998, 1, 1)
    plan = plan_snapshots(scoring, data_start=start, horizon_days=182, n_snapshots=6, step_days=30,
                          min_history_days=180, n_validation_snapshots=2)
    assert plan.min_history_days == 60 and len(plan.dates) == 5 and plan.n_validation == 2
    assert plan.dates[0] >= start + timedelta(days=60)
    assert all(d + timedelta(days=182) <= scoring for d in plan.dates)
    assert plan.shortened and "first snapshot 60 days after the data starts" in plan.describe()


def test_two_snapshots_keep_one_to_train_on():
    plan = plan_snapshots(datetime(2024, 12, 31), data_start=datetime(2024, 1, 1), horizon_days=240, n_snapshots=6,
                          step_days=60, min_history_days=180, n_validation_snapshots=2)
    assert len(plan.dates) == 2 and plan.n_validation == 1


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
    assert training["revenue_sum_lifetime"].notna().all()  # every row is a customer with a line before T


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
    dates = plan_snapshots(
        scoring, data_start=datetime(2021, 1, 1), horizon_days=90, n_snapshots=2, step_days=30, min_history_days=0
    ).dates
    assert dates == (datetime(2024, 9, 2), datetime(2024, 10, 2))
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


def test_search_snapshots_meet_validation_across_one_horizon(tables):
    # As at scoring, where the latest training snapshot lies one horizon before the scoring date.
    spec = FeatureSpec(windows_days=(30, 90))
    sets = build_training_sets(tables, SCORING, spec=spec, churn_horizon_days=90, value_horizon_days=180,
                               n_snapshots=4, step_days=30, n_validation_snapshots=1, search_sets=True)
    for kind, horizon in (("churn", 90), ("value", 180)):
        first_validation = pd.Timestamp(sets[kind].loc[sets[kind]["is_validation"], "as_of"].min())
        search = sets[f"{kind}_search"]
        assert pd.Timestamp(search["as_of"].max()) == first_validation - pd.Timedelta(days=horizon)
        assert search["as_of"].nunique() == 3 and not search["is_validation"].any()
        # Their label windows close by the first validation snapshot: nothing they learn from is validated on.
        assert (search["as_of"] + pd.Timedelta(days=horizon) <= first_validation).all()


def test_search_snapshots_need_history_a_horizon_before_validation():
    plan = plan_snapshots(datetime(1998, 1, 1), data_start=datetime(1997, 1, 1), horizon_days=182, n_snapshots=6,
                          step_days=30, min_history_days=180, n_validation_snapshots=2)
    # CDNOW: validation starts in June 1997, half a year after the data; nothing fits a horizon before it.
    assert search_snapshot_dates(plan, data_start=datetime(1997, 1, 1), horizon_days=182, n_snapshots=4,
                                 step_days=30) == []


def test_customers_with_only_zero_lines_or_returns_are_trained_on_as_they_are_scored(con):
    """They are in the scored population, so every snapshot after their first line has their row and labels."""
    frames = random_frames(40, seed=5, start=datetime(2021, 6, 1), end=SCORING)
    tx = frames["transactions"]
    extra = pd.DataFrame({
        "customer_id": ["zero", "zero", "ret"], "order_id": ["z1", "z2", "r1"],
        "ts": pd.to_datetime(["2022-01-10", "2022-03-01", "2022-02-01"]), "amount": [0.0, 0.0, -25.0],
        "margin": [0.0, 0.0, -7.5], "category": "a", "product_id": "p1", "discount": 0.0,
    })  # fmt: skip
    frames["transactions"] = pd.concat([tx, extra[tx.columns]], ignore_index=True)
    tables = tables_from_frames(frames, con)[1]
    training = build_training_set(
        tables, SCORING, spec=FeatureSpec(windows_days=(30, 90)), n_snapshots=2, step_days=90, min_history_days=180,
    )
    odd = training[training["customer_id"].isin(["zero", "ret"])].set_index(["customer_id", "as_of"]).sort_index()
    assert len(odd) == 4  # both customers in both snapshots
    assert odd["has_orders"].eq(0).all() and odd["order_count_lifetime"].eq(0).all()
    assert odd["days_since_last_order"].isna().all()  # no order: no order recency (the models learn what that means)
    assert odd.xs("ret", level="customer_id")["revenue_sum_lifetime"].eq(-25.0).all()
    assert odd.xs("zero", level="customer_id")["revenue_sum_lifetime"].eq(0.0).all()
    assert odd["label_churn"].eq(1).all() and odd["label_revenue"].eq(0.0).all()
