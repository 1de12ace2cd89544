"""Normalising a table's columns in SQL: each value as found, parsed to its logical type.

Text is trimmed (empty means null) and parsed: ISO 8601 timestamps to naive UTC, numbers to
DOUBLE, interaction kinds to lower case, an optional identifier that reads as missing to null.
Parquet columns of native types that convert exactly as their text would (`is_direct`) skip
the text. Money columns are converted into the base currency when a conversion is configured,
and transactions get a margin (amount x the default margin rate) where none is given.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import duckdb

from features.contract import TABLES, LogicalType, TableSpec
from features.io.rows import Rows
from features.io.sources import Source
from features.sql_text import quote_ident, quote_literal
from features.validation.plausibility import MONEY_COLUMNS, PlausibilityRules, currency_factor_sql
from features.validation.rules import IDENTIFIER_COLUMNS, as_found, reads_as_missing

# Native types whose values convert to the normalised type exactly as their text would, so
# that Parquet columns of these types skip the round trip through text. Others (DECIMAL,
# REAL, TIMESTAMP_NS, DATE...) go through their text, as CSV does, to keep identical results.
_DIRECT_FLOAT_TYPES = frozenset({
    "DOUBLE", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT",
})
_DIRECT_TIMESTAMP_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP WITH TIME ZONE"})


def _timestamp_expression(text_sql: str) -> str:
    """ISO 8601 text -> naive UTC timestamp; an offset or zone name is applied, none means UTC."""
    # Casting to TIMESTAMP silently drops an offset, and the zone-aware cast is ~3x slower, so
    # only text with an offset or a zone (a sign or a letter after 'YYYY-MM-DDT') takes it.
    after_date = f"substr({text_sql}, 12)"
    has_zone = (
        f"(contains({after_date}, '+') OR contains({after_date}, '-') "
        f"OR upper({after_date}) <> lower({after_date}))"
    )
    return (
        f"CASE WHEN {has_zone} THEN CAST(try_cast({text_sql} AS TIMESTAMPTZ) AS TIMESTAMP) "
        f"ELSE try_cast({text_sql} AS TIMESTAMP) END"
    )


def logical_type(spec: TableSpec, col: str, attribute_types: dict[str, LogicalType]) -> LogicalType:
    return spec.column(col).type if col in spec.column_names else attribute_types[col]


def is_direct(logical: LogicalType, native: str) -> bool:
    """True when a native column converts to its logical type without going through text."""
    if logical is LogicalType.FLOAT:
        return native in _DIRECT_FLOAT_TYPES
    if logical is LogicalType.TIMESTAMP:
        return native in _DIRECT_TIMESTAMP_TYPES
    return False


def _trimmed_text(column_sql: str) -> str:
    """Text without surrounding spaces, empty -> null; trims only when needed (saves a copy)."""
    return (
        f"CASE WHEN {column_sql} = '' THEN NULL WHEN starts_with({column_sql}, ' ') OR "
        f"ends_with({column_sql}, ' ') THEN nullif(trim({column_sql}), '') ELSE {column_sql} END"
    )


def _found_expression(column_sql: str, logical: LogicalType, native: str) -> str:
    """The value as found: native on the direct route, else trimmed text (empty -> null)."""
    if is_direct(logical, native):
        return column_sql
    return _trimmed_text(column_sql if native == "VARCHAR" else f"CAST({column_sql} AS VARCHAR)")


def _parse_expression(spec: TableSpec, col: str, logical: LogicalType, native: str) -> str:
    """SQL turning the found value of a column into its normalised type."""
    s = as_found(col)
    if is_direct(logical, native):
        # Under TimeZone UTC this gives the UTC wall time, as the text route does.
        return f"CAST({s} AS {'DOUBLE' if logical is LogicalType.FLOAT else 'TIMESTAMP'})"
    if logical is LogicalType.TIMESTAMP:
        return _timestamp_expression(s)
    if logical is LogicalType.FLOAT:
        return f"try_cast({s} AS DOUBLE)"
    if spec.name == "interactions" and col == "kind":
        return f"lower({s})"
    if col in IDENTIFIER_COLUMNS and col in spec.column_names and not spec.column(col).required:
        return f"CASE WHEN {reads_as_missing(s)} THEN NULL ELSE {s} END"
    return s


def infer_attribute_types(con: duckdb.DuckDBPyConnection, rows: Rows, src: Source) -> dict[str, LogicalType]:
    """Customer attributes outside the contract: float64 when every value is a plain number."""
    spec = TABLES[src.table]
    extras = [k for k in src.mapping if k not in spec.column_names]
    types: dict[str, LogicalType] = {}
    for name in extras:
        col = f"CAST(r.{quote_ident(src.mapping[name])} AS VARCHAR)"
        numeric = con.execute(
            f"SELECT count(v) > 0 AND bool_and(isfinite(try_cast(v AS DOUBLE)) AND NOT "
            f"regexp_matches(v, '^[+-]?0[0-9]')) FROM (SELECT nullif(trim({col}), '') AS v FROM {rows.relation})"
        ).fetchall()[0][0]
        types[name] = LogicalType.FLOAT if numeric else LogicalType.STRING
    return types


# Text columns tracked one bit each in __untrimmed (a BIGINT); further ones are always trimmed.
_MAX_TRACKED_TEXT_COLUMNS = 62


def _needs_trimming(text_sql: str) -> str:
    return f"coalesce({text_sql} = '' OR starts_with({text_sql}, ' ') OR ends_with({text_sql}, ' '), false)"


def normalised_sql(
    src: Source,
    rows: Rows,
    attribute_types: dict[str, LogicalType],
    *,
    flag_untrimmed: bool = False,
    trimmed: Collection[str] | None = None,
) -> str:
    """WITH-clause defining p: __rid, each column as found (__s) and parsed to its type.

    `trimmed`: the text columns that hold empty or space-padded values (None: assume all do);
    the others are taken as they are, which gives the same values for less work on every
    read of a view. `flag_untrimmed` adds __untrimmed, a bit per text column that needs it.
    """
    spec = TABLES[src.table]
    found, parsed, flags = [], [], []
    for i, c in enumerate(src.mapping):
        logical, native = logical_type(spec, c, attribute_types), rows.types[src.mapping[c]]
        column_sql = f"r.{quote_ident(src.mapping[c])}"
        text_sql = column_sql if native == "VARCHAR" else f"CAST({column_sql} AS VARCHAR)"
        direct = is_direct(logical, native)
        tracked = not direct and i < _MAX_TRACKED_TEXT_COLUMNS
        if trimmed is not None and tracked and c not in trimmed:
            found.append(f"{text_sql} AS {as_found(c)}")
        else:
            found.append(f"{_found_expression(column_sql, logical, native)} AS {as_found(c)}")
        parsed.append(f"{_parse_expression(spec, c, logical, native)} AS {quote_ident(c)}")
        if flag_untrimmed and tracked:
            flags.append(f"(CAST({_needs_trimming(text_sql)} AS BIGINT) << {i})")
    if flag_untrimmed:
        found.append(f"{' | '.join(flags) if flags else 'CAST(0 AS BIGINT)'} AS __untrimmed")
    return (
        f"WITH t AS (SELECT {rows.rid} AS __rid, {', '.join(found)} FROM {rows.relation}), "
        f"p AS (SELECT *, {', '.join(parsed)} FROM t)"
    )


def untrimmed_columns(con: duckdb.DuckDBPyConnection, checked: str, columns: Sequence[str]) -> set[str]:
    """Text columns where some value is empty or space-padded (from the __untrimmed bits)."""
    mask = con.execute(f"SELECT coalesce(bit_or(__untrimmed), 0) FROM {checked}").fetchall()[0][0]
    return {c for i, c in enumerate(columns) if i < _MAX_TRACKED_TEXT_COLUMNS and (mask >> i) & 1}


def finalise_expressions(table: str, columns: Sequence[str], margin_rate: float, prefix: str,
                         plausibility: PlausibilityRules | None = None) -> list[str]:
    """SELECT list for the accepted columns: normalised columns plus derived defaults, money in one currency."""
    margin, amount = f'{prefix}"margin"', f'{prefix}"amount"'
    paid_amount, paid_at = f'{prefix}"paid_amount"', f'{prefix}"paid_at"'
    exprs: dict[str, str] = {}
    for col in columns:
        if table == "transactions" and col == "margin":
            exprs[col] = f"coalesce({margin}, {amount} * {margin_rate!r})"
        elif table == "invoices" and col == "paid_amount" and "paid_at" in columns:
            exprs[col] = (f"CASE WHEN {paid_amount} IS NULL AND {paid_at} IS NOT NULL THEN {amount} "
                          f"ELSE {paid_amount} END")
        else:
            exprs[col] = f"{prefix}{quote_ident(col)}"
    if table == "transactions" and "margin" not in columns:
        exprs["margin"] = f"{amount} * {margin_rate!r}"
    conversion = plausibility.currency if plausibility is not None else None
    if conversion is not None and table in MONEY_COLUMNS and "currency" in columns:
        factor = currency_factor_sql(conversion, f'{prefix}"currency"')
        for col in MONEY_COLUMNS[table]:
            if col in exprs:
                exprs[col] = f"({exprs[col]}) * {factor}"
        exprs["currency"] = quote_literal(conversion.base)
    return [f"{sql} AS {quote_ident(col)}" for col, sql in exprs.items()]
