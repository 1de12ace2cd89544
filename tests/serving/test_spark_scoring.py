"""Scoring on Spark (local[2], a real session): the same scores, segments and reasons as one machine, all or nothing.

The champions read BG/NBD columns of both horizons, keep reason references and drift
profiles, and are anchored and blended, so every step of a run passes through the Spark path.
Features are built once with DuckDB and handed to Spark as Parquet, as an engine would hand them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.training_set import build_training_set
from features.transactions import btyd_inputs_expr
from models.btyd_columns import add_btyd_features
from models.churn import ChurnModel
from models.level import LevelAnchor
from models.params import ChurnParams, ValueParams
from models.value import ValueModel
from serving.postgres import PostgresSink
from serving.score_run import score_run
from serving.score_table import SCORE_TEXT_COLUMNS
from serving.scoring import ScoringModels
from serving.settings import BtydBlendConfig, ScoringConfig, ScoringSettings
from serving.spark_scoring import (
    SparkScoringError,
    rechunked,
    remove_staging,
    run_staging,
    score_on_spark,
    spark_job_group,
)
from serving.store import RunMetadata, ScoreStore
from tests.serving.test_scoring_population import SCORING, SPEC, tables  # noqa: F401  (fixture)

CHURN_H, VALUE_H = 90, 365
AS_OF = SCORING.date()
PARTITIONS = 4
# Chunks of 15 customers from Spark batches of 8 rows: partitions of ~21 customers give two chunks each.
SETTINGS = ScoringSettings(value_horizon_days=VALUE_H, churn_horizon_days=CHURN_H, annual_discount_rate=0.1,
                           scoring=ScoringConfig(chunk_size=15, btyd_blend=BtydBlendConfig(churn_weight=0.5, value_weight=0.25)))
NUMBER_COLUMNS = ["p_churn", "expected_revenue", "expected_margin", "cost_to_serve", "net_value", "clv", "value_p10", "value_p90"]
EXACT_COLUMNS = ["value_tier", "segment", "segment_label_en", "segment_label_zh", "segment_reason", *SCORE_TEXT_COLUMNS]


@pytest.fixture(scope="module")
def spark(local_spark):
    """The test process's local Spark (tests/conftest.py), with small Arrow batches so that chunks are regrouped."""
    settings = {"spark.sql.shuffle.partitions": str(PARTITIONS), "spark.sql.execution.arrow.maxRecordsPerBatch": "8"}
    before = {key: local_spark.conf.get(key) for key in settings}
    for key, value in settings.items():
        local_spark.conf.set(key, value)
    yield local_spark
    for key, value in before.items():
        local_spark.conf.set(key, value)


@pytest.fixture(scope="module")
def world(tables, tmp_path_factory):  # noqa: F811
    """Champions with BTYD columns, reason references, drift profiles and an anchor; the features as Parquet; BTYD inputs."""
    training = build_training_set(tables, SCORING, spec=SPEC, n_snapshots=3, step_days=90, min_history_days=180)
    for horizon in (CHURN_H, VALUE_H):
        training = add_btyd_features(training, horizon)
    names = [c for c in training.columns if c not in ("customer_id", "as_of", "is_validation") and not c.startswith("label_")]
    train, valid = training[~training["is_validation"]], training[training["is_validation"]]
    churn = ChurnModel(ChurnParams(n_estimators=20)).fit(train, train["label_churn"], valid, valid["label_churn"], names,
                                                         reason_population=valid)
    value = ValueModel(ValueParams(n_estimators=20, interval_n_estimators=20, revenue_model="direct")).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        cost_to_serve=train["label_cost_to_serve"], cost_to_serve_val=valid["label_cost_to_serve"], reason_population=valid,
    )
    y = valid["label_revenue"].to_numpy(dtype=float)
    value.level_anchor_ = LevelAnchor(mode="always").fit(y, y * 0.5, y)
    features = build_features(tables, SCORING, SPEC, include_prospects=True)
    path = tmp_path_factory.mktemp("features") / "features.parquet"
    features.to_parquet(path, index=False)
    inputs = btyd_inputs_expr(tables["transactions"], SCORING).to_pyarrow().to_pandas()
    return ScoringModels(churn, value, "1", "1"), features, path, inputs


@pytest.fixture(scope="module")
def one_machine(world, tmp_path_factory):
    """The run scored on one machine and published to a store of its own (the reference answer)."""
    models, features, _, inputs = world
    work = tmp_path_factory.mktemp("one-machine")
    run = score_run([features.iloc[:40], features.iloc[40:]], models, SETTINGS, work / "parts", run_id="r1", as_of=AS_OF,
                    btyd_inputs=lambda: inputs)
    store = ScoreStore(work / "store")
    store.publish(RunMetadata(run_id="r1", as_of=AS_OF), run)
    return run, store


def spark_features(spark, path: Path):
    return spark.read.parquet(str(path)).repartition(PARTITIONS)


def by_customer(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("customer_id").reset_index(drop=True)


def assert_same_scores(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    ours, reference = by_customer(ours), by_customer(reference)
    assert ours["customer_id"].tolist() == reference["customer_id"].tolist()
    for column in NUMBER_COLUMNS:
        np.testing.assert_allclose(ours[column].to_numpy(dtype=float), reference[column].to_numpy(dtype=float),
                                   rtol=1e-9, atol=1e-9, err_msg=column)
    for column in EXACT_COLUMNS:
        assert ours[column].tolist() == reference[column].tolist(), column


def test_spark_scores_segments_and_reasons_equal_the_one_machine_run(spark, world, one_machine, tmp_path, postgres_url, pg_schema):
    models, _, path, inputs = world
    reference_run, reference_store = one_machine
    staging = f"file://{tmp_path}/staging"
    run = score_on_spark(spark_features(spark, path), models, SETTINGS, staging, tmp_path / "work", run_id="r1", as_of=AS_OF,
                         btyd_inputs=lambda: inputs)
    # every partition was cut into chunks of its own: more parts than partitions
    assert len(run.text_parts) > PARTITIONS
    # the sinks of a run: the store first, then PostgreSQL, both from the staged parts
    store = ScoreStore(tmp_path / "store")
    store.publish(RunMetadata(run_id="r1", as_of=AS_OF), run)
    postgres = PostgresSink(postgres_url, pg_schema)
    postgres.publish(RunMetadata(run_id="r1", as_of=AS_OF), run)
    remove_staging(run_staging(staging, "r1"))
    # the store's parts are still readable after staging is gone (hard links)
    assert_same_scores(store.read_scores(), reference_store.read_scores())
    assert_same_scores(postgres.read_scores(), reference_store.read_scores())
    reasons = ["customer_id", "score", "direction", "rank", "feature", "family"]
    ours = store.read_explanations().sort_values(reasons).reset_index(drop=True)
    theirs = reference_store.read_explanations().sort_values(reasons).reset_index(drop=True)
    assert len(ours) > 0
    pd.testing.assert_frame_equal(ours[reasons], theirs[reasons])
    np.testing.assert_allclose(ours["contribution"].to_numpy(), theirs["contribution"].to_numpy(), rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(store.read_summary(), reference_store.read_summary(), check_exact=False, rtol=1e-9)
    # drift is counted per task and merged on the driver: the same counts as one pass over every chunk
    for name in ("drift", "account_grades"):
        pd.testing.assert_frame_equal(by_customer_or_name(store.read_table(name)), by_customer_or_name(reference_store.read_table(name)),
                                      check_exact=False, rtol=1e-9)
    assert store.read_table("drift")["customers"].max() == (reference_run.numbers.column("is_new").to_pandas() == False).sum()  # noqa: E712


def by_customer_or_name(frame: pd.DataFrame) -> pd.DataFrame:
    key = "customer_id" if "customer_id" in frame else "name"
    return frame.sort_values(key).reset_index(drop=True)


def holding_back_later_partitions(release: Path):
    """A feature pass where every partition but the first waits (a slow executor), so a kill lands part-way."""
    def hold(batches):
        from pyspark import TaskContext

        late = TaskContext.get().partitionId() > 0
        for batch in batches:
            deadline = time.monotonic() + 120
            while late and not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            yield batch
    return hold


def cancel_when_parts_appear(spark, folder: Path, run_id: str, cancelled: list) -> threading.Thread:
    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(folder.glob("texts/*.parquet")):
            time.sleep(0.05)
        cancelled.append(sorted(p.name for p in folder.glob("texts/*.parquet")))
        spark.sparkContext.cancelJobGroup(spark_job_group(run_id))
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_spark_job_killed_part_way_leaves_the_previous_run_current_and_a_rerun_publishes(spark, world, one_machine, tmp_path):
    models, _, path, inputs = world
    reference_run, reference_store = one_machine
    store = ScoreStore(tmp_path / "store")
    store.publish(RunMetadata(run_id="r1", as_of=AS_OF), reference_run)  # the previous run
    before = store.read_scores()
    staging = str(tmp_path / "staging")
    release = tmp_path / "release"
    features = spark_features(spark, path)
    slow = features.mapInPandas(holding_back_later_partitions(release), features.schema)
    cancelled: list = []
    watcher = cancel_when_parts_appear(spark, Path(run_staging(staging, "r2")), "r2", cancelled)
    try:
        with pytest.raises(SparkScoringError, match="nothing was published"):
            score_on_spark(slow, models, SETTINGS, staging, tmp_path / "work", run_id="r2", as_of=AS_OF, btyd_inputs=lambda: inputs)
        watcher.join(timeout=30)
        # the kill came after some parts were written, all of the first partition, none of the held ones
        assert cancelled and cancelled[0] and all(name.startswith("part-00000-") for name in cancelled[0])
        assert store.latest_run().run_id == "r1"
        pd.testing.assert_frame_equal(store.read_scores(), before)
        rerun = score_on_spark(features, models, SETTINGS, staging, tmp_path / "work", run_id="r2", as_of=AS_OF,
                               btyd_inputs=lambda: inputs)
        store.publish(RunMetadata(run_id="r2", as_of=AS_OF), rerun)
    finally:
        release.touch()  # whatever task of the killed job still waits goes on and ends
    assert store.latest_run().run_id == "r2"
    assert_same_scores(store.read_scores(), reference_store.read_scores())
    assert store.read_scores(run_id="r1")["customer_id"].nunique() == len(before)
    # the rerun's parts only: none of the killed job's files were published
    assert store.latest_run().score_rows == len(before)
    assert not set(cancelled[0]) & {p.name for p in rerun.text_parts}


def test_a_task_error_is_one_line_naming_the_python_error(spark, world, tmp_path):
    """A feature column of the wrong type fails every task: the driver's error is its Python line, not pages of stack."""
    models, _, path, inputs = world
    features = spark_features(spark, path)
    column = models.churn.feature_names_[0]
    broken = features.withColumn(column, features[column].cast("string"))
    with pytest.raises(SparkScoringError) as failure:
        score_on_spark(broken, models, SETTINGS, str(tmp_path / "staging"), tmp_path / "work", run_id="r3", as_of=AS_OF,
                       btyd_inputs=lambda: inputs)
    message = str(failure.value)
    assert "\n" not in message and "nothing was published" in message
    assert f"TypeError: ChurnModel.predict_raw: columns ['{column} " in message


def test_spark_batches_are_regrouped_into_chunks_of_the_configured_size():
    """Batches of 8, 8, 0 and 5 rows in chunks of 15: one of 15, then the 6 left, every row once and in order."""
    rows = iter(range(21))
    batches = [pd.DataFrame({"customer_id": [f"c{next(rows)}" for _ in range(n)]}) for n in (8, 8, 0, 5)]
    chunks = list(rechunked(batches, 15))
    assert [len(c) for c in chunks] == [15, 6]
    assert [c for chunk in chunks for c in chunk["customer_id"]] == [f"c{i}" for i in range(21)]
    assert all(chunk.index.tolist() == list(range(len(chunk))) for chunk in chunks)
