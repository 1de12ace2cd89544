"""Where the feature queries run: the Ibis connection and the input tables of an engine.

Two engines run the same Ibis expressions (features/build.py, features/labels.py,
features/training_set.py), never a second copy of a definition:

- `duckdb` (the default): embedded DuckDB on one machine, `features.validation.load_and_validate`.
- `spark`: Ibis's PySpark backend on a SparkSession (local or a cluster), the input read from
  Parquet or CSV on any Hadoop-compatible path (`features.engines.spark`) and validated there
  by the same rules (`features.engines.spark_validation`).

This module imports no pyspark: only `features.engines.spark` and `spark_validation` do, and
they are imported only when the engine is spark, so the default install needs neither pyspark
nor Java.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ENGINES: tuple[str, ...] = ("duckdb", "spark")


class SparkSettings(BaseModel):
    """How to reach Spark and where the run's intermediate tables go."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # local[2]: the whole pipeline on this machine's two cores, for trying the engine and for CI;
    # on a cluster spark-submit's --master (or Databricks' own SparkSession) takes precedence.
    master: Annotated[str, Field(min_length=1)] = "local[2]"
    app_name: Annotated[str, Field(min_length=1)] = "custscore"
    # Any Spark setting (spark.executor.memory, spark.sql.shuffle.partitions, credentials
    # providers for object storage...), passed to SparkSession.builder as given.
    conf: dict[str, str] = Field(default_factory=dict)
    # The input folder as a Hadoop-compatible URI (s3a://bucket/input, abfss://..., gs://...,
    # hdfs://...), read by Spark instead of data.source or --data (local paths); null: those.
    source: str | None = None
    # Where Spark writes the validated tables of a run (any Hadoop-compatible path: file://,
    # s3a://, abfss://, gs://); null: a folder under the home's work folder.
    work_path: str | None = None


class EngineSettings(BaseModel):
    """Which engine runs validation, features, labels and training sets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkSettings = SparkSettings()
