"""Checking one table in one pass: parse every column, mark each row with the first rule it breaks.

The pass also hashes each rule-passing row and its key (`duplicate_key`), so duplicates are
then searched among the few rows whose hashes repeat, and the hashes of the accepted rows add
up to the data hash. The accepted rows become the table under its own name: the checked table
itself with the rejected rows deleted, or a view over the Parquet file that leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

from features.contract import TABLES, LogicalType, TableSpec
from features.io.rows import Rows, read_error
from features.io.sources import Source
from features.sql_text import quote_ident
from features.validation.normalise import (
    finalise_expressions,
    infer_attribute_types,
    is_direct,
    logical_type,
    normalised_sql,
    untrimmed_columns,
)
from features.validation.plausibility import PlausibilityRules
from features.validation.rules import UNKNOWN_CUSTOMER, Rule, column_rules, future_rules, table_rules


@dataclass
class Checked:
    """Intermediate state of one table while it is being checked."""

    src: Source
    rows: Rows
    checked: str  # table: __rid, __rule, __hr, __hk (+ the accepted columns when materialised)
    normalised: str  # SQL WITH-clause defining p: __rid plus the parsed columns of every row
    served: str  # the same, trimming only the columns that need it (for the view)
    outputs: list[str]  # SELECT list over p giving the accepted columns
    columns: list[str]  # accepted columns, in output order (margin included for transactions)
    rules: list[Rule]
    materialised: bool  # accepted columns stored in `checked` (else a view reads the Parquet file)
    n_read: int = 0
    n_rejected: int = 0


def _in_place(rows: Rows, spec: TableSpec, columns: Sequence[str], attribute_types: dict[str, LogicalType],
              mapping: dict[str, str]) -> bool:
    """Serve the accepted rows as a view over the Parquet file when reading it again is cheap."""
    # Parsing timestamps or numbers from text on every feature query costs more than storing
    # the parsed table once; native timestamps and numbers cost nothing to read again.
    if not rows.in_place:
        return False
    for col in columns:
        logical = logical_type(spec, col, attribute_types)
        if logical is not LogicalType.STRING and not is_direct(logical, rows.types[mapping[col]]):
            return False
    return True


def check_rows(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    rows: Rows,
    limit: datetime,
    known_customers: str | None,
    margin_rate: float,
    plausibility: PlausibilityRules,
) -> Checked:
    """One pass: parse every column, mark each row with the first rule it breaks, hash it."""
    spec = TABLES[src.table]
    attribute_types = infer_attribute_types(con, rows, src)
    columns = list(src.mapping)
    rules = (column_rules(spec, columns, plausibility.min_date) + table_rules(spec.name, columns, plausibility)
             + future_rules(spec.name, columns, limit))
    known_join = ""
    if known_customers is not None:
        rules.append(Rule(UNKNOWN_CUSTOMER, "customer_id", "k.customer_id IS NULL"))
        known_join = f"LEFT JOIN {known_customers} k ON k.customer_id = p.customer_id"
    materialised = not _in_place(rows, spec, columns, attribute_types, src.mapping)
    normalised = normalised_sql(src, rows, attribute_types, flag_untrimmed=not materialised)
    case = " ".join(f"WHEN {rule.condition} THEN {i}" for i, rule in enumerate(rules))
    rule_sql = f"CASE {case} END" if rules else "NULL"
    outputs = finalise_expressions(spec.name, columns, margin_rate, prefix="p.", plausibility=plausibility)
    final_columns = columns + (["margin"] if spec.name == "transactions" and "margin" not in columns else [])
    key = duplicate_key(spec, final_columns)
    # Row and key hashes are taken here, while the values are at hand: they find duplicates
    # and their sum over accepted rows is the data hash.
    row_hash = f"hash({', '.join(quote_ident(c) for c in final_columns)})"
    key_hash = f"CASE WHEN {key_filled(key)} THEN hash({', '.join(key)}) END" if key else "NULL"
    checked = f"__chk_{src.table}"
    # Materialised: a regular table (not TEMP); once the rejected rows are deleted it becomes
    # the accepted table by a rename, which saves copying every string once more.
    kept = "*" if materialised else "__rid, __rule, __untrimmed"
    kind = "TABLE" if materialised else "TEMP TABLE"
    try:
        con.execute(
            f"""
            CREATE OR REPLACE {kind} {checked} AS
            {normalised},
                 c AS (SELECT p.__rid, {", ".join(outputs)}, CAST({rule_sql} AS INTEGER) AS __rule{
                              "" if materialised else ", p.__untrimmed"}
                       FROM p {known_join})
            SELECT {kept}, CASE WHEN __rule IS NULL THEN {row_hash} END AS __hr,
                      CASE WHEN __rule IS NULL THEN {key_hash} END AS __hk
            FROM c
            """
        )
    except duckdb.Error as exc:
        if rows.in_place:
            raise read_error(src, exc) from exc
        raise
    n_read, n_rejected = con.execute(f"SELECT count(*), count(__rule) FROM {checked}").fetchall()[0]
    served = normalised
    if not materialised:
        served = normalised_sql(src, rows, attribute_types, trimmed=untrimmed_columns(con, checked, columns))
    return Checked(src, rows, checked, normalised, served, outputs, final_columns, rules, materialised,
                   n_read, n_rejected)


def duplicate_key(spec: TableSpec, columns: Sequence[str]) -> list[str]:
    """SQL expressions identifying one logical row, or [] when conflicts cannot be judged."""
    if not spec.key or not all(k in columns for k in spec.key):
        return []
    return [quote_ident(k) for k in spec.key]


def key_filled(key: Sequence[str]) -> str:
    """SQL: the row has a key (an empty optional key column, such as line_id, means it has none)."""
    return " AND ".join(f"{k} IS NOT NULL" for k in key) if key else "false"


def accepted_hash_sum(con: duckdb.DuckDBPyConnection, chk: Checked, dups: str) -> tuple[int, int]:
    """Rows accepted and the sum of their row hashes (the table's part of the data hash)."""
    count, total = con.execute(
        f"SELECT count(*), coalesce(sum(CAST(__hr AS HUGEINT)), 0) FROM {chk.checked} "
        f"WHERE __rule IS NULL AND __rid NOT IN (SELECT __rid FROM {dups})"
    ).fetchall()[0]
    return int(count), int(total)


def keep_accepted(con: duckdb.DuckDBPyConnection, chk: Checked, dups: str, n_dups: int) -> None:
    """Make the accepted rows available under the table's name (a table, or a view on the file)."""
    table = quote_ident(chk.src.table)
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"DROP VIEW IF EXISTS {table}")
    if chk.materialised:
        if chk.n_rejected or n_dups:
            con.execute(
                f"DELETE FROM {chk.checked} WHERE __rule IS NOT NULL OR __rid IN (SELECT __rid FROM {dups})"
            )
        for helper in ("__rid", "__rule", "__hr", "__hk"):
            con.execute(f"ALTER TABLE {chk.checked} DROP COLUMN {helper}")
        con.execute(f"ALTER TABLE {chk.checked} RENAME TO {table}")
        return
    rejected = f"__rejected_{chk.src.table}"
    con.execute(f"DROP TABLE IF EXISTS {rejected}")
    where = ""
    if chk.n_rejected or n_dups:
        con.execute(
            f"CREATE TABLE {rejected} AS SELECT __rid FROM {chk.checked} WHERE __rule IS NOT NULL "
            f"UNION ALL SELECT __rid FROM {dups}"
        )
        where = f"WHERE p.__rid NOT IN (SELECT __rid FROM {rejected})"
    con.execute(f"CREATE VIEW {table} AS {chk.served} SELECT {', '.join(chk.outputs)} FROM p {where}")


def drop_scratch(con: duckdb.DuckDBPyConnection, table: str) -> None:
    for prefix in ("__raw_", "__chk_", "__dup_", "__lines_"):
        con.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
    con.execute(f"DROP TABLE IF EXISTS __lines_{table}_t")
