"""Register hand-made pandas frames as validated Ibis tables on DuckDB, and small table helpers.

Validation (`features/validation/`) produces the normalised tables of docs/ARCHITECTURE.md
("Validated tables"). Tests, benchmarks and notebooks that start from small pandas frames use
`tables_from_frames` to get exactly the same types without running validation.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

import ibis
import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_MARGIN_RATE = 0.3

# Normalised column types per table (DuckDB SQL types); columns not listed here keep
# string or float64 depending on their pandas dtype (customers' attributes).
NORMALISED_TYPES: dict[str, dict[str, str]] = {
    "transactions": {
        "customer_id": "VARCHAR",
        "order_id": "VARCHAR",
        "ts": "TIMESTAMP",
        "amount": "DOUBLE",
        "margin": "DOUBLE",
        "quantity": "DOUBLE",
        "product_id": "VARCHAR",
        "category": "VARCHAR",
        "discount": "DOUBLE",
        "channel": "VARCHAR",
        "currency": "VARCHAR",
        "line_id": "VARCHAR",
    },
    "customers": {"customer_id": "VARCHAR", "signup_date": "TIMESTAMP"},
    "invoices": {
        "customer_id": "VARCHAR",
        "invoice_id": "VARCHAR",
        "issued_at": "TIMESTAMP",
        "due_at": "TIMESTAMP",
        "amount": "DOUBLE",
        "paid_at": "TIMESTAMP",
        "paid_amount": "DOUBLE",
        "currency": "VARCHAR",
    },
    "interactions": {"customer_id": "VARCHAR", "ts": "TIMESTAMP", "kind": "VARCHAR", "cost": "DOUBLE"},
}

_table_counter = itertools.count()


def to_naive_utc(moment: datetime | pd.Timestamp | str) -> datetime:
    """Return `moment` as a naive UTC datetime (naive input is taken as UTC already)."""
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(UTC).tz_localize(None)
    return stamp.to_pydatetime()


def columns_of(tables: Mapping[str, ibis.Table]) -> dict[str, set[str]]:
    """Map each present table name to the set of its column names."""
    return {name: set(table.columns) for name, table in tables.items()}


def _timestamps_as_naive_utc(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Convert tz-aware timestamp columns to naive UTC so DuckDB stores UTC wall time."""
    frame = frame.copy()
    for column in columns:
        if column in frame.columns and isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


def normalised_select(table: str, numeric: Mapping[str, bool]) -> list[str]:
    """DuckDB SELECT expressions casting each column to its normalised type, with the derived defaults.

    `numeric` maps each column present to whether it holds numbers (a column outside the
    contract, such as a customer attribute, becomes DOUBLE or VARCHAR by it). Transactions
    without margin get amount x DEFAULT_MARGIN_RATE; invoices get paid_amount = amount where
    paid_at is set and paid_amount is not. The Spark engine runs the same list, translated.
    """
    types = NORMALISED_TYPES[table]
    expressions = []
    for column, is_number in numeric.items():
        sql_type = types.get(column, "DOUBLE" if is_number else "VARCHAR")
        expression = f'CAST("{column}" AS {sql_type})'
        if table == "interactions" and column == "kind":
            expression = f"lower({expression})"
        expressions.append(f'{expression} AS "{column}"')
    if table == "transactions" and "margin" not in numeric:
        expressions.append(f'CAST("amount" AS DOUBLE) * {DEFAULT_MARGIN_RATE} AS "margin"')
    return _fill_paid_amount(table, numeric, expressions)


def _select_list(table: str, frame: pd.DataFrame) -> list[str]:
    """SQL select expressions that cast each column of `frame` to its normalised type."""
    return normalised_select(table, {
        column: pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
        for column in frame.columns
    })


def _fill_paid_amount(table: str, columns: Collection[str], select: list[str]) -> list[str]:
    """Invoices: paid_amount is the invoice amount when paid_at is set and paid_amount is not."""
    if table != "invoices" or "paid_at" not in columns:
        return select
    fill = (
        'CASE WHEN "paid_at" IS NULL THEN CAST("paid_amount" AS DOUBLE) '
        'ELSE COALESCE(CAST("paid_amount" AS DOUBLE), CAST("amount" AS DOUBLE)) END AS "paid_amount"'
    )
    if "paid_amount" in columns:
        return [fill if item.endswith('AS "paid_amount"') else item for item in select]
    return [*select, fill.replace('CAST("paid_amount" AS DOUBLE)', "CAST(NULL AS DOUBLE)")]


def tables_from_frames(
    frames: Mapping[str, pd.DataFrame],
    con: ibis.BaseBackend | None = None,
    *,
    table_names: Mapping[str, str] | None = None,
) -> tuple[ibis.BaseBackend, dict[str, ibis.Table]]:
    """Load pandas frames into DuckDB with the normalised types and return (backend, tables).

    Tables get fresh unique names unless `table_names` maps a table to a name, which is then
    replaced (so SQL compiled once for that name runs on the new data).
    """
    con = con if con is not None else ibis.duckdb.connect()
    unknown = set(frames) - set(NORMALISED_TYPES)
    if unknown:
        raise ValueError(
            f"tables_from_frames: unknown table name(s) {sorted(unknown)}; "
            f"expected some of {sorted(NORMALISED_TYPES)}"
        )
    tables: dict[str, ibis.Table] = {}
    suffix = next(_table_counter)
    for name, frame in frames.items():
        frame = _timestamps_as_naive_utc(frame, [c for c, t in NORMALISED_TYPES[name].items() if t == "TIMESTAMP"])
        select = _select_list(name, frame)
        raw_name = f"_raw_{name}_{suffix}"
        table_name = (table_names or {}).get(name, f"{name}_{suffix}")
        con.con.register(raw_name, frame)
        try:
            con.con.execute(f'CREATE OR REPLACE TABLE "{table_name}" AS SELECT {", ".join(select)} FROM "{raw_name}"')
        finally:
            con.con.unregister(raw_name)
        tables[name] = con.table(table_name)
    return con, tables
