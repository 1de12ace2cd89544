"""`custscore run --engine spark` end to end: validated, featured, trained and scored on Spark, published like any run.

One demo world, one home. The main job runs with the spark engine (validation, features, training
sets and scoring in Spark's tasks on the test process's local Spark); the daily score flow then scores
the same as-of on DuckDB with the champions Spark's run trained. Both publish the same customers with
the same scores: the engine changes where the work runs, not what is published.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from demo import generate_demo_data, write_demo_data
from tests.pipelines.flow_home import FIXED_DESIGN, config_file, module_home

pytestmark = pytest.mark.slow

N_CUSTOMERS = 300
AS_OF = "2026-07-01"
NUMBERS = ["p_churn", "expected_revenue", "clv", "value_p10", "value_p90"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark-run")
    write_demo_data(generate_demo_data(N_CUSTOMERS, seed=5, end=date(2026, 6, 30)), root / "data", "parquet")
    return root


@pytest.fixture(scope="module")
def home(world, prefect_harness):
    yield from module_home(world)


@pytest.fixture(scope="module")
def runs(world, home, local_spark):
    """(the spark run's result and scores, the DuckDB score run's result and scores), same as-of and champions."""
    from pipelines.config import ENGINE_ENV
    from pipelines.flows import retrain_and_score_flow, score_flow
    from serving.store import ScoreStore

    config = config_file(world, "fixed", FIXED_DESIGN)
    engine = pytest.MonkeyPatch()
    engine.setenv(ENGINE_ENV, "spark")
    try:
        on_spark = retrain_and_score_flow(data=str(world / "data"), as_of=AS_OF, config=config, retrain=False)
    finally:
        engine.undo()
    spark_scores = ScoreStore(home / "store").read_scores(on_spark["published"]["run_id"])
    on_duckdb = score_flow(data=str(world / "data"), as_of=AS_OF, config=config)
    duckdb_scores = ScoreStore(home / "store").read_scores(on_duckdb["published"]["run_id"])
    return on_spark, spark_scores, on_duckdb, duckdb_scores


def test_the_spark_run_trains_scores_and_publishes_every_customer(runs, home):
    from serving.store import ScoreStore

    on_spark, scores, _, _ = runs
    assert set(on_spark["training"]) >= {"churn", "value"}
    assert on_spark["published"]["rows"] == len(scores) == scores["customer_id"].nunique() > 0
    assert scores["p_churn"].dropna().between(0, 1).all() and scores["reason_text_en"].str.len().gt(0).any()
    store = ScoreStore(home / "store")
    assert {"drift", "account_grades", "payment_risk"} <= set(store.run_metadata(on_spark["published"]["run_id"]).tables)
    # Spark's staged parts are gone once the run is published (the store holds its own links).
    assert not any((home / "work" / "spark" / "staging").glob(f"{on_spark['published']['run_id']}*"))


def test_the_spark_engine_publishes_the_scores_the_duckdb_engine_publishes(runs):
    _, on_spark, _, on_duckdb = runs
    on_spark, on_duckdb = (frame.sort_values("customer_id").reset_index(drop=True) for frame in (on_spark, on_duckdb))
    assert on_spark["customer_id"].tolist() == on_duckdb["customer_id"].tolist()
    for column in NUMBERS:
        np.testing.assert_allclose(on_spark[column].to_numpy(dtype=float), on_duckdb[column].to_numpy(dtype=float),
                                   rtol=1e-9, atol=1e-9, err_msg=column)
    assert on_spark["segment"].tolist() == on_duckdb["segment"].tolist()
    assert on_spark["value_tier"].fillna("").tolist() == on_duckdb["value_tier"].fillna("").tolist()
