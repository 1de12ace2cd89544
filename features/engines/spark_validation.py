"""Validation on Spark: the row rules of features/validation, one pass per table, on any Hadoop-compatible path.

The rules are not written twice. The SQL that DuckDB runs (each column as found and parsed,
`features.validation.normalise`; the conditions of `features.validation.rules`, tried in the
same order; the accepted columns of `finalise_expressions`) is composed here the same way and
translated to Spark SQL (`spark_sql`, sqlglot, with the few functions Spark names differently).
Invoices and interactions are checked against the accepted customers (or transactions), money
in several currencies stops the run, and the quarantine share stops it above the limit.

What differs from DuckDB, by design of a distributed engine (docs/SPARK.md):
- a CSV row's physical line is unknown to Spark: quarantined rows have no `line`;
- the quarantine brought to the driver is bounded (`max_quarantine_rows`, the counts per reason
  are complete) and the whole of it is written as Parquet under the work path;
- exact and conflicting duplicates, stale-table and whale-order warnings and the CSV byte checks
  (`undecodable_text`, `field_too_long`) are DuckDB's only: Spark reads CSV as UTF-8;
- the data hash is taken with Spark's xxhash64, so it names the data within the Spark engine.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.contract import TABLES, InputContractError, LogicalType
from features.engines.spark import normalised_table, spark_sql
from features.io.rows import Rows
from features.io.sources import Source, _map_columns, _without_rows
from features.sql_text import quote_ident
from features.validation.normalise import finalise_expressions, normalised_sql
from features.validation.plausibility import MONEY_COLUMNS, PlausibilityRules, mixed_currency_message
from features.validation.quarantine import QUARANTINE_COLUMNS, printable
from features.validation.report import (
    MixedCurrencyError,
    QuarantineThresholdError,
    TableReport,
    ValidatedData,
    threshold_message,
)
from features.validation.rules import UNKNOWN_CUSTOMER, Rule, column_rules, future_rules, table_rules

logger = logging.getLogger(__name__)

# Quarantined rows brought to the driver for the report and its messages; all of them are in the
# Parquet quarantine under the work path (a 5% limit of 5 billion lines is 250 million rows).
MAX_QUARANTINE_ROWS = 10_000
_CHECKED_FOR_UNKNOWN_CUSTOMER = ("invoices", "interactions")
_FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")
# Spark's type names as DuckDB names them, for the direct route of native Parquet columns.
_DUCKDB_TYPE_NAMES = {
    "string": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT", "int": "INTEGER", "smallint": "SMALLINT",
    "tinyint": "TINYINT", "float": "REAL", "timestamp": "TIMESTAMP WITH TIME ZONE", "timestamp_ntz": "TIMESTAMP",
    "date": "DATE", "boolean": "BOOLEAN",
}


def _file_system(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jvm


def table_paths(spark: SparkSession, folder: str) -> dict[str, str]:
    """The contract's tables found in `folder` (any Hadoop-compatible path): `<table>.parquet|.csv|.csv.gz`, a file or a folder of parts."""
    fs, jvm = _file_system(spark, folder)
    if not fs.exists(jvm.org.apache.hadoop.fs.Path(folder)):
        raise InputContractError(f"{folder}: no such folder; give the folder holding transactions.parquet or transactions.csv")
    found: dict[str, str] = {}
    for table in TABLES:
        for suffix in _FILE_SUFFIXES:
            path = f"{folder.rstrip('/')}/{table}{suffix}"
            if fs.exists(jvm.org.apache.hadoop.fs.Path(path)):
                found[table] = path
                break
    if "transactions" not in found:
        raise InputContractError(
            f"{folder}: no transactions table; expected transactions.parquet, transactions.csv or transactions.csv.gz")
    return found


def _read_source(spark: SparkSession, table: str, path: str,
                 warnings: list[str]) -> tuple[Source, Rows, DataFrame] | None:
    """The table's rows as a temp view aliased r with a row id, described as validation's Source and Rows.

    None for an optional table with column names and no row (absent, with a warning, as on DuckDB).
    """
    reader = spark.read
    frame = (reader.option("header", True).option("inferSchema", False).option("encoding", "UTF-8").csv(path)
             if path.lower().endswith((".csv", ".csv.gz")) else reader.parquet(path))
    spec = TABLES[table]
    mapping = _map_columns(spec, f"source {path}", frame.columns)
    if not frame.head(1):
        _without_rows(spec, f"source {path}", frame.columns, warnings)
        return None
    view = f"__raw_{table}"
    frame.withColumn("__rid", F.monotonically_increasing_id()).createOrReplaceTempView(view)
    types = {name: _DUCKDB_TYPE_NAMES.get(kind, kind.upper()) for name, kind in frame.dtypes}
    kind = "csv" if path.lower().endswith((".csv", ".csv.gz")) else "parquet"
    source = Source(table, path, kind, f"{view} r", tuple(frame.columns), mapping)
    return source, Rows(f"{view} r", "r.__rid", types, in_place=True), frame


def _attribute_types(spark: SparkSession, src: Source, rows: Rows):
    """Customer attributes outside the contract: float64 when every value is a plain number (as on DuckDB)."""
    spec = TABLES[src.table]
    types = {}
    for name in (k for k in src.mapping if k not in spec.column_names):
        col = f"CAST(r.{quote_ident(src.mapping[name])} AS VARCHAR)"
        query = (f"SELECT count(v) > 0 AND bool_and(isfinite(try_cast(v AS DOUBLE)) AND NOT "
                 f"regexp_matches(v, '^[+-]?0[0-9]')) FROM (SELECT nullif(trim({col}), '') AS v FROM {rows.relation})")
        numeric = spark.sql(spark_sql(query)).collect()[0][0]
        types[name] = LogicalType.FLOAT if numeric else LogicalType.STRING
    return types


def _check_sql(src: Source, rows: Rows, rules: Sequence[Rule], outputs: Sequence[str], known: str | None,
               attribute_types) -> str:
    """One SELECT: every row with its accepted columns, the first rule it breaks, that rule's column and value."""
    case = " ".join(f"WHEN {rule.condition} THEN {i}" for i, rule in enumerate(rules))
    rule_sql = f"CASE {case} END" if rules else "NULL"
    join = f"LEFT JOIN {known} k ON k.customer_id = p.customer_id" if known else ""
    return (f"{normalised_sql(src, rows, attribute_types)} "
            f"SELECT p.__rid, {', '.join(outputs)}, CAST({rule_sql} AS INTEGER) AS __rule FROM p {join}")


def _quarantine(checked: DataFrame, raw: DataFrame, src: Source, rules: Sequence[Rule], limit: int) -> pd.DataFrame:
    """Up to `limit` rejected rows in validation's quarantine columns (no line: Spark does not know it)."""
    rejected = checked.filter(F.col("__rule").isNotNull()).select("__rid", "__rule").limit(limit)
    columns = [c for c in raw.columns if c != "__rid"]
    rows = (rejected.join(raw.select("__rid", F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns])).alias("raw")), "__rid")
            .orderBy("__rid").toPandas())
    values = raw.select("__rid", *[F.col(f"`{c}`").cast("string").alias(c) for c in columns]) \
        .join(rejected.select("__rid"), "__rid").toPandas().set_index("__rid")
    frame = pd.DataFrame({
        "table": src.table, "source": src.display, "line": pd.array([None] * len(rows), dtype="Int64"),
        "column": [rules[int(i)].column for i in rows["__rule"]],
        "value": [_shown(values.at[rid, src.mapping[rules[int(i)].column]])
                  for rid, i in zip(rows["__rid"], rows["__rule"], strict=True)],
        "reason": [rules[int(i)].reason for i in rows["__rule"]],
        "raw": rows["raw"],
    })
    return frame[list(QUARANTINE_COLUMNS)]


def _shown(value: object) -> str | None:
    """A value as the quarantine shows it: control characters written \\xHH, as on DuckDB."""
    return None if value is None or pd.isna(value) else printable(str(value))


def _accepted_hash(frame: DataFrame) -> tuple[int, int]:
    """Rows and the sum of their xxhash64 row hashes (order-independent)."""
    row = frame.select(F.count(F.lit(1)), F.sum(F.xxhash64(*frame.columns).cast("decimal(38,0)"))).collect()[0]
    return int(row[0]), int(row[1] or 0)


def load_and_validate_on_spark(
    con,
    source: str,
    *,
    clock: datetime,
    work_path: str,
    data_end: datetime | None = None,
    max_quarantine_share: float = 0.05,
    default_margin_rate: float = 0.3,
    plausibility: PlausibilityRules | None = None,
    max_quarantine_rows: int = MAX_QUARANTINE_ROWS,
) -> ValidatedData:
    """Validate the tables of `source` on Spark; the accepted ones are written as Parquet under `work_path`.

    `con` is `features.engines.spark.connect(spark)`. Returns ValidatedData whose tables are
    Ibis tables on Spark; raises as `features.validation.load_and_validate` does.
    """
    spark: SparkSession = con._session
    plausibility = plausibility if plausibility is not None else PlausibilityRules()
    limit = _naive_utc(clock) if data_end is None else min(_naive_utc(clock), _naive_utc(data_end))
    reports: dict[str, TableReport] = {}
    frames: list[pd.DataFrame] = []
    sums: dict[str, tuple[int, int]] = {}
    paths = table_paths(spark, source)
    work = work_path.rstrip("/")
    warnings: list[str] = []
    for table, path in list(paths.items()):
        read = _read_source(spark, table, path, warnings)
        if read is None:
            del paths[table]
            continue
        src, rows, raw = read
        columns = list(src.mapping)
        rules = (column_rules(TABLES[table], columns, plausibility.min_date) + table_rules(table, columns, plausibility)
                 + future_rules(table, columns, limit))
        known = None
        if table in _CHECKED_FOR_UNKNOWN_CUSTOMER:
            origin = "customers" if "customers" in reports else "transactions"
            spark.sql(f"SELECT DISTINCT customer_id FROM __accepted_{origin}").createOrReplaceTempView("__known_customers")
            known = "__known_customers"
            rules.append(Rule(UNKNOWN_CUSTOMER, "customer_id", "k.customer_id IS NULL"))
        outputs = finalise_expressions(table, columns, default_margin_rate, prefix="p.", plausibility=plausibility)
        checked = spark.sql(spark_sql(_check_sql(src, rows, rules, outputs, known, _attribute_types(spark, src, rows))))
        checked.write.mode("overwrite").parquet(f"{work}/checked/{table}")
        checked = spark.read.parquet(f"{work}/checked/{table}")
        counts = {int(r[0]): int(r[1]) for r in checked.filter("__rule IS NOT NULL").groupBy("__rule").count().collect()}
        accepted = checked.filter("__rule IS NULL").drop("__rid", "__rule")
        accepted.write.mode("overwrite").parquet(f"{work}/accepted/{table}")
        spark.read.parquet(f"{work}/accepted/{table}").createOrReplaceTempView(f"__accepted_{table}")
        sums[table] = _accepted_hash(spark.table(f"__accepted_{table}"))
        reasons: dict[str, int] = {}
        for index, n in counts.items():
            reasons[rules[index].reason] = reasons.get(rules[index].reason, 0) + n
        quarantined = sum(counts.values())
        reports[table] = TableReport(sums[table][0] + quarantined, sums[table][0], quarantined, reasons)
        if quarantined:
            frames.append(_quarantine(checked, spark.table("__raw_" + table), src, rules, max_quarantine_rows))
            checked.filter("__rule IS NOT NULL").write.mode("overwrite").parquet(f"{work}/quarantine/{table}")
        logger.info("%s on spark: read %d, accepted %d, quarantined %d %s", path, reports[table].read,
                    reports[table].accepted, quarantined, reasons)
    _refuse_mixed_currencies(spark, paths, plausibility)
    tables = {table: normalised_table(con, table, spark.table(f"__accepted_{table}")) for table in reports}
    start, end = tables["transactions"].aggregate(start=tables["transactions"].ts.min(),
                                                  end=tables["transactions"].ts.max()).to_pyarrow().to_pylist()[0].values()
    quarantine = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    result = ValidatedData(con=con, tables=tables, report=reports, quarantine=quarantine,
                           data_hash=_data_hash(tables, sums), data_start=start, data_end=end,
                           sources=dict(paths), line_kind={table: "row" for table in paths}, warnings=warnings)
    message = threshold_message(result, max_quarantine_share)
    if message is not None:
        raise QuarantineThresholdError(message, result)
    return result


def _refuse_mixed_currencies(spark: SparkSession, paths: dict[str, str], plausibility: PlausibilityRules) -> None:
    if plausibility.currency is not None:
        return
    counts: dict[str, dict[str, int]] = {}
    for table in paths:
        accepted = spark.table(f"__accepted_{table}")
        if table not in MONEY_COLUMNS or "currency" not in accepted.columns:
            continue
        rows = (accepted.filter(F.col("currency").isNotNull()).groupBy(F.upper("currency").alias("code")).count()
                .orderBy(F.desc("count"), "code").collect())
        if rows:
            counts[table] = {str(r["code"]): int(r["count"]) for r in rows}
    message = mixed_currency_message(counts, dict(paths))
    if message is not None:
        raise MixedCurrencyError(message)


def _data_hash(tables, sums: dict[str, tuple[int, int]]) -> str:
    digest = hashlib.sha256(b"spark\n")
    for table in sorted(sums):
        schema = ",".join(f"{name}:{kind}" for name, kind in tables[table].schema().items())
        count, total = sums[table]
        digest.update(f"{table}|{schema}|{count}|{total}\n".encode())
    return digest.hexdigest()


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


