"""The Spark engine: a SparkSession, Ibis's PySpark backend with two translations, and tables read from paths.

Every feature, label and training-set expression is built by the same functions as on DuckDB.
Two things Ibis 12 compiles differently for Spark would change the numbers, so the backend here
compiles them the way DuckDB computes them (the one translation the engine owns):

- a float literal (`x / 86400.0`) is written `86400.0`, which Spark SQL reads as a DECIMAL, so
  integer / literal became a decimal rounded to 6 places; here it is cast to DOUBLE;
- `epoch_seconds()` is Spark's `unix_timestamp`, whole seconds, where DuckDB's `epoch()` keeps
  the microseconds; here it is `unix_micros(ts) / 1e6` as a DOUBLE, as DuckDB computes it.

Input tables are read from Parquet or CSV paths (any Hadoop-compatible path Spark can read) and
given the normalised types of `features.tables.NORMALISED_TYPES`, the same SELECT list that
DuckDB runs, translated from DuckDB SQL to Spark SQL by sqlglot.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import sys
from collections.abc import Mapping

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import sqlglot
import sqlglot.expressions as sge
from ibis.backends.pyspark import Backend as PySparkBackend
from ibis.backends.sql.compilers.pyspark import PySparkCompiler
from pyspark.sql import DataFrame, SparkSession

from features.engines import SparkSettings
from features.tables import normalised_select

# Settings every SparkSession custscore starts gets: timestamps are naive UTC wall times (as on DuckDB);
# results reach the driver as Arrow batches (without it pandas gets them row by row, pickled);
# the Spark UI's port is not opened by a batch job.
SESSION_DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
}
# A local master is one machine: a few shuffle partitions instead of Spark's 200 empty ones.
LOCAL_DEFAULTS: dict[str, str] = {"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"}


# spark-submit starts the Python driver with the port of the JVM it launched in this variable.
SUBMIT_GATEWAY = "PYSPARK_GATEWAY_PORT"


class JavaMissingError(RuntimeError):
    """Spark needs a Java runtime and none was found."""


def java_executable() -> str | None:
    """The `java` Spark will start: $JAVA_HOME/bin/java when JAVA_HOME is set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java")
        return candidate if os.access(candidate, os.X_OK) else None
    return shutil.which("java")


def spark_session(master: str = "local[2]", app_name: str = "custscore", conf: Mapping[str, str] | None = None) -> SparkSession:
    """A SparkSession (the running one when there is one, as on Databricks).

    `conf` is applied after custscore's defaults (UTC SQL time zone, Arrow transfers, no UI;
    for a local master also 4 shuffle partitions and 2 GB for the driver), so any of them can be
    overridden. Under spark-submit, `master` is ignored: spark-submit's --master decides.
    """
    if SparkSession.getActiveSession() is None and SUBMIT_GATEWAY not in os.environ and java_executable() is None:
        where = f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/java" if os.environ.get("JAVA_HOME") else "no java on PATH"
        raise JavaMissingError(
            f"the spark engine needs a Java 17 runtime and none was found ({where}); "
            "run scripts/spark.sh to install one, or set JAVA_HOME"
        )
    submitted = SUBMIT_GATEWAY in os.environ
    settings = {**SESSION_DEFAULTS, **(LOCAL_DEFAULTS if master.startswith("local") and not submitted else {}),
                **(conf or {})}
    if master.startswith("local") and not submitted:
        # The tasks' Python is the driver's own (its environment has custscore; the `python3` on PATH
        # PySpark would start may not). PySpark reads it from the environment when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # Under spark-submit the master (and the resources) are spark-submit's to choose.
    builder = SparkSession.builder.appName(app_name) if submitted else SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def session_from(settings: SparkSettings) -> SparkSession:
    """`spark_session` for the `engine.spark` section of the configuration."""
    return spark_session(settings.master, settings.app_name, settings.conf)


class PortableSparkCompiler(PySparkCompiler):
    """Ibis's PySpark compiler with float literals and epoch seconds computed as DuckDB computes them."""

    def visit_NonNullLiteral(self, op, *, value, dtype):
        result = super().visit_NonNullLiteral(op, value=value, dtype=dtype)
        if dtype.is_floating() and math.isfinite(value):
            return self.cast(result, dt.float64)
        return result

    def visit_ExtractEpochSeconds(self, op, *, arg):
        micros = self.cast(self.f.unix_micros(self.cast(arg, dt.timestamp)), dt.float64)
        return sge.Div(this=micros, expression=self.cast(sge.convert(1_000_000), dt.float64))


class PortableSparkBackend(PySparkBackend):
    """Ibis's PySpark backend compiling with `PortableSparkCompiler`."""

    compiler = PortableSparkCompiler()


def connect(spark: SparkSession) -> PySparkBackend:
    """The Ibis connection on `spark` every feature query of the spark engine runs on."""
    # Loading the backend through ibis registers its options (options.pyspark), which the compiler reads.
    ibis.pyspark  # noqa: B018
    backend = PortableSparkBackend()
    backend.do_connect(spark)
    return backend


def spark_frame(expr: ir.Table, partitions: int | None = None) -> DataFrame:
    """`expr` (an Ibis table on a `connect`ed backend) as a Spark DataFrame, left distributed.

    With `partitions`, spread over that many partitions (scoring wants about one chunk per task).
    """
    backend = expr._find_backend()
    frame = backend._session.sql(str(backend.compile(expr)))
    return frame.repartition(partitions) if partitions else frame


def _spark_function(node: sge.Expression) -> sge.Expression:
    """The DuckDB functions of the project's SQL that Spark names differently (null in, null out, as in DuckDB)."""
    if isinstance(node, sge.Anonymous) and node.name.lower() == "isfinite":
        value = node.expressions[0].sql("spark")
        return sqlglot.parse_one(f"(NOT ISNAN({value}) AND ABS({value}) <> CAST('Infinity' AS DOUBLE))", read="spark")
    if isinstance(node, sge.Anonymous) and node.name.lower() == "strlen":
        return sge.Anonymous(this="OCTET_LENGTH", expressions=node.expressions)
    return node


def spark_sql(duckdb_sql: str) -> str:
    """The project's DuckDB SQL text (the normalising SELECT list, validation's parsing and rules) as Spark SQL."""
    return sqlglot.parse_one(duckdb_sql, read="duckdb").transform(_spark_function).sql("spark")


_view_counter = itertools.count()


def read_frame(spark: SparkSession, path: str) -> DataFrame:
    """A Parquet or CSV file or folder (by its suffix; a folder without one is Parquet), CSV cells as text."""
    lowered = path.rstrip("/").lower()
    if lowered.endswith((".csv", ".csv.gz")):
        return spark.read.option("header", True).option("inferSchema", False).csv(path)
    return spark.read.parquet(path)


def _numeric(frame: DataFrame) -> dict[str, bool]:
    """Whether each column is a number (attributes outside the contract keep their kind: number or text)."""
    numeric_types = ("double", "float", "int", "bigint", "smallint", "tinyint", "decimal")
    return {name: kind.startswith(numeric_types) for name, kind in frame.dtypes}


def normalised_table(con: PySparkBackend, table: str, frame: DataFrame) -> ir.Table:
    """`frame` with the normalised types of `table` (features.tables), as an Ibis table on `con`."""
    suffix = next(_view_counter)
    raw = f"_custscore_raw_{table}_{suffix}"
    frame.createOrReplaceTempView(raw)
    select = normalised_select(table, _numeric(frame))
    name = f"{table}_{suffix}"
    con._session.sql(spark_sql(f'SELECT {", ".join(select)} FROM "{raw}"')).createOrReplaceTempView(name)
    return con.table(name)


def read_tables(con: PySparkBackend, paths: Mapping[str, str]) -> dict[str, ir.Table]:
    """The tables at `paths` (table name -> Parquet or CSV path) with their normalised types."""
    return {table: normalised_table(con, table, read_frame(con._session, path)) for table, path in paths.items()}


def frames_to_tables(con: PySparkBackend, frames: Mapping[str, object]) -> dict[str, ir.Table]:
    """pandas frames as normalised Spark tables (tests and notebooks; data beyond a driver reads `read_tables`)."""
    return {table: normalised_table(con, table, con._session.createDataFrame(frame)) for table, frame in frames.items()}


