"""The Spark engine gives the DuckDB engine's features, labels and training sets, from the same definitions.

Runs real Spark in local mode (local[2], the test process's session from tests/conftest.py, which
installs Java when it is missing). pyspark comes with the `spark` extra of the README's test command.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from demo import generate_demo_data, write_demo_data
from features.build import FeatureSpec, build_features
from features.engines.spark import connect, frames_to_tables, read_tables
from features.labels import build_labels
from features.training_set import build_training_set
from features.validation import load_and_validate

AS_OF = datetime(2026, 3, 1)
# Every family, as runs build them (season columns for a 90-day horizon, prospects included).
SPEC = FeatureSpec(season_horizons_days=(90,))
# Fewer windows where the same families are built again (each Spark query is planned anew).
LIGHT_SPEC = FeatureSpec(windows_days=(90,), year_ago=False)


@pytest.fixture(scope="module")
def spark_con(local_spark):
    return connect(local_spark)


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("spark-demo")
    write_demo_data(generate_demo_data(300, seed=11), folder, "parquet")
    return folder


@pytest.fixture(scope="module")
def engines(spark_con, demo_folder):
    """(DuckDB tables as validated, Spark tables read from the same files)."""
    duck = load_and_validate(demo_folder, clock=datetime(2026, 10, 1, tzinfo=UTC))
    assert duck.quarantine.empty, "the demo world has no bad rows: both engines must read the same rows"
    spark = read_tables(spark_con, {name: str(demo_folder / f"{name}.parquet") for name in duck.tables})
    return duck.tables, spark


def assert_same_frame(duck: pd.DataFrame, spark: pd.DataFrame, key: list[str]) -> None:
    """Same columns and rows; numbers within 1e-9 (relative above 1), text and categories exactly."""
    assert list(spark.columns) == list(duck.columns)
    duck = duck.sort_values(key).reset_index(drop=True)
    spark = spark.sort_values(key).reset_index(drop=True)
    assert len(duck) == len(spark) > 0
    for column in duck.columns:
        a, b = duck[column], spark[column]
        if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            assert (np.isnan(x) == np.isnan(y)).all(), f"{column}: nulls differ"
            close = np.abs(x - y) <= 1e-9 * np.maximum(1.0, np.abs(x))
            assert (close | np.isnan(x)).all(), f"{column}: {x[~close][:3]} (DuckDB) vs {y[~close][:3]} (Spark)"
        else:
            assert a.astype(object).where(a.notna(), None).tolist() == b.astype(object).where(b.notna(), None).tolist(), column


def test_fractional_seconds_and_float_literals_compute_as_on_duckdb(spark_con):
    # Ordered 12:00:00.5 on 1 January: as of 2 January the order is 43,199.5 s old, 0.4999942 days.
    # Spark's own translation gave 0.5 (whole seconds) and 0.499994 (a 6-place decimal).
    frames = {"transactions": pd.DataFrame({
        "customer_id": ["c1"], "order_id": ["o1"], "ts": [pd.Timestamp("2026-01-01 12:00:00.5")], "amount": [10.0],
    })}
    features = build_features(frames_to_tables(spark_con, frames), datetime(2026, 1, 2), LIGHT_SPEC)
    assert features.loc[0, "days_since_last_order"] == pytest.approx(43_199.5 / 86_400, abs=1e-12)


def test_features_on_spark_equal_duckdb(engines):
    duck, spark = engines
    on_spark = build_features(spark, AS_OF, SPEC, include_prospects=True)
    assert on_spark.shape[1] > 100
    assert_same_frame(build_features(duck, AS_OF, SPEC, include_prospects=True), on_spark, ["customer_id"])


def test_labels_on_spark_equal_duckdb(engines):
    duck, spark = engines
    kwargs = {"churn_horizon_days": 90, "value_horizon_days": 180, "data_end": datetime(2026, 10, 1)}
    assert_same_frame(build_labels(duck, AS_OF, **kwargs), build_labels(spark, AS_OF, **kwargs), ["customer_id"])


def test_training_set_on_spark_equals_duckdb(engines):
    duck, spark = engines
    kwargs = {"spec": LIGHT_SPEC, "churn_horizon_days": 90, "value_horizon_days": 90, "n_snapshots": 2, "step_days": 90,
              "targets": "all"}
    scoring = datetime(2026, 10, 1)
    on_duck, on_spark = build_training_set(duck, scoring, **kwargs), build_training_set(spark, scoring, **kwargs)
    assert on_spark["as_of"].nunique() == 2 and on_spark["is_validation"].sum() > 0
    assert_same_frame(on_duck, on_spark, ["as_of", "customer_id"])


def test_features_on_spark_ignore_rows_at_and_after_the_as_of_date(engines):
    _, spark = engines
    tx = spark["transactions"]
    # Every line from as_of on becomes a different, far larger line, and a customer appears who only buys then.
    later = tx.ts >= AS_OF
    changed = tx.mutate(amount=ibis.ifelse(later, tx.amount * 1000 + 7, tx.amount),
                        customer_id=ibis.ifelse(later & (tx.customer_id == tx.customer_id.min()), "late-only", tx.customer_id))
    before = build_features(spark, AS_OF, LIGHT_SPEC)
    after = build_features({**spark, "transactions": changed}, AS_OF, LIGHT_SPEC)
    assert_same_frame(before, after, ["customer_id"])
    # The change is real: revenue from as_of on is far larger, and the late-only customer buys then.
    new_revenue, late_only_rows = changed.filter(later).aggregate(
        revenue=changed.amount.sum(), late_only=(changed.customer_id == "late-only").sum()).to_pandas().iloc[0]
    assert new_revenue > 100 * tx.filter(later).amount.sum().to_pandas() and late_only_rows > 0


def write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def bad_rows_folder(tmp_path_factory) -> Path:
    """CSV tables where each bad row breaks one rule; the good rows carry offsets, spaces and upper-case kinds."""
    folder = tmp_path_factory.mktemp("spark-bad-rows")
    write_text(folder / "transactions.csv", "\n".join([
        "Customer_ID,order_id,ts,amount,discount",
        "c1,o1,2026-01-05T10:00:00+02:00, 120.5 ,0",
        "c1,o2,2026-02-01 09:30:00.25,80,5",
        "c2,o3,2026-01-20,40,",
        ",o4,2026-01-21,10,0",          # missing_customer_id
        "NULL,o5,2026-01-21,10,0",      # missing_customer_id (a word for nothing)
        "c\x01x,o6,2026-01-21,10,0",    # invalid_characters
        "c2,o7,2026-13-01,10,0",        # bad_timestamp
        "c2,o8,1900-01-01,10,0",        # implausible_date
        "c2,o9,2026-01-22,abc,0",       # non_numeric_amount
        "c2,o10,2026-01-22,inf,0",      # non_finite_amount
        "c2,o11,2026-01-22,10,-1",      # negative_discount
        "c2,o12,2031-01-01,10,0",       # future_timestamp
    ]) + "\n")
    write_text(folder / "customers.csv", "customer_id,signup_date,region,employees\nc1,2025-01-01,North,12\nc2,2025-06-01,South,7\n")
    write_text(folder / "invoices.csv", "customer_id,invoice_id,issued_at,due_at,amount\n")  # no rows: absent
    write_text(folder / "interactions.csv", "\n".join([
        "customer_id,ts,kind,cost",
        "c1,2026-01-10T08:00:00Z,Ticket,12.5",
        "c9,2026-01-11,visit,3",         # unknown_customer
        "c2,2026-01-12,call,-2",         # negative_cost
    ]) + "\n")
    return folder


def test_validation_on_spark_accepts_and_quarantines_the_rows_duckdb_does(spark_con, bad_rows_folder, tmp_path):
    from features.engines.spark_validation import load_and_validate_on_spark

    clock = datetime(2026, 10, 1, tzinfo=UTC)
    duck = load_and_validate(bad_rows_folder, clock=clock, max_quarantine_share=1.0)
    spark = load_and_validate_on_spark(spark_con, str(bad_rows_folder), clock=clock, work_path=str(tmp_path / "work"),
                                       max_quarantine_share=1.0)
    assert spark.report["transactions"].reasons == {
        "missing_customer_id": 2, "invalid_characters": 1, "bad_timestamp": 1, "implausible_date": 1,
        "non_numeric_amount": 1, "non_finite_amount": 1, "negative_discount": 1, "future_timestamp": 1,
    }
    assert spark.report["interactions"].reasons == {"unknown_customer": 1, "negative_cost": 1}
    assert set(spark.tables) == set(duck.tables) == {"transactions", "customers", "interactions"}
    assert [w for w in spark.warnings if w.startswith("invoices table")]
    for table, report in duck.report.items():
        assert (spark.report[table].read, spark.report[table].accepted, spark.report[table].reasons) == (
            report.read, report.accepted, report.reasons), table
    columns = ["table", "column", "value", "reason"]
    assert_same_frame(duck.quarantine[columns], spark.quarantine[columns], columns)
    for table in duck.tables:
        key = ["customer_id", "ts"] if "ts" in duck.tables[table].columns else ["customer_id"]
        assert_same_frame(duck.tables[table].to_pandas(), spark.tables[table].to_pandas(), key)
    # The offset is applied: 10:00 at +02:00 is 08:00 UTC.
    assert spark.data_start == datetime(2026, 1, 5, 8, 0) == duck.data_start


def test_a_spark_session_without_java_says_how_to_install_it(tmp_path):
    code = ("from features.engines.spark import spark_session\n"
            "try:\n    spark_session()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": str(tmp_path), "JAVA_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.stdout.startswith("JavaMissingError the spark engine needs a Java 17 runtime"), result.stdout + result.stderr
    assert f"JAVA_HOME={tmp_path} has no bin/java" in result.stdout and "scripts/spark.sh" in result.stdout
