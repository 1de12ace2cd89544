"""Reading one source's rows into DuckDB, and finding the line of a row in its file.

Parquet files are read in place with their native types (and DuckDB's file row number as the
row id); CSV files and DuckDB tables are copied as text into a temporary table whose row id is
the file order. A quarantined row is named by its physical line in a CSV file (the header is
line 1; quoted newlines and blank lines counted) and by its 1-based row number otherwise.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from features.contract import TABLES, InputContractError
from features.io.sources import Source, contract_error, csv_header, first_line, not_out_of_memory
from features.sql_text import quote_ident, quote_literal

logger = logging.getLogger(__name__)

_NEWLINE_COUNT_CHUNK = 1 << 24
_PARQUET_ROW_NUMBER = "file_row_number"


@dataclass(frozen=True)
class Rows:
    """How the checks read one table: a FROM clause aliased r, its row id, and native column types."""

    relation: str
    rid: str  # SQL for the 0-based row position in the source (file order)
    types: dict[str, str]  # source column -> native DuckDB type
    in_place: bool  # True: read from the Parquet file itself, no copy of the rows was made


def read_error(src: Source, exc: duckdb.Error) -> InputContractError:
    not_out_of_memory(exc)
    hint = "every line needs as many fields as the header" if src.kind == "csv" else "rewrite it"
    return contract_error(
        TABLES[src.table], f"source {src.display}", f"cannot be read ({first_line(exc, 3)}); {hint}", src.columns,
    )


def _load_raw(con: duckdb.DuckDBPyConnection, src: Source) -> Rows:
    """Copy the source as text into a temp table (insertion order = file order)."""
    raw = f"__raw_{src.table}"
    if src.kind == "csv":
        select = "*"
    else:
        select = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" for c in src.columns)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT {select} FROM {src.relation}")
    except duckdb.Error as exc:
        raise read_error(src, exc) from exc
    return Rows(f"{raw} r", "r.rowid", {c: "VARCHAR" for c in src.columns}, in_place=False)


def source_rows(con: duckdb.DuckDBPyConnection, src: Source) -> Rows:
    """Parquet is read in place with its native types; CSV and DuckDB tables are copied as text."""
    if src.kind != "parquet" or _PARQUET_ROW_NUMBER in (c.lower() for c in src.columns):
        return _load_raw(con, src)
    try:
        described = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {src.relation})")
        types = dict(described.fetchall())
    except duckdb.Error as exc:
        raise read_error(src, exc) from exc
    relation = f"read_parquet({quote_literal(src.file)}, file_row_number=true) r"
    return Rows(relation, f"r.{_PARQUET_ROW_NUMBER}", types, in_place=True)


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _iter_bytes(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        while chunk := handle.read(_NEWLINE_COUNT_CHUNK):
            yield chunk


def _physical_line_count(path: Path) -> int:
    """Number of lines in the file (a last line without newline counts)."""
    newlines, last = 0, b""
    for chunk in _iter_bytes(path):
        newlines += chunk.count(b"\n")
        last = chunk[-1:]
    return newlines + (1 if last not in (b"", b"\n") else 0)


def _csv_record_lines(path: Path, delimiter: str, n_columns: int) -> np.ndarray:
    """Physical line where each data record starts (slow path: quoted newlines, blank lines)."""
    starts: list[int] = []
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter, quotechar='"')
        next(reader, None)  # header
        previous_end = reader.line_num
        for row in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not row and n_columns > 1:
                continue  # DuckDB skips blank lines in multi-column files
            starts.append(start)
    return np.asarray(starts, dtype=np.int64)


def _csv_line_function(con: duckdb.DuckDBPyConnection, src: Source, n_rows: int) -> str:
    """SQL template ({rid} -> physical line) for a CSV file; maps rows to lines when they differ."""
    path = Path(src.file)
    if src.line_starts is not None:  # a cleaned copy: the scan noted where each kept record starts
        starts = src.line_starts
    elif _physical_line_count(path) == n_rows + 1:
        return "({rid} + 2)"
    else:
        # Quoted newlines or blank lines: the row number no longer gives the line; map it.
        delimiter, _ = csv_header(TABLES[src.table], path)
        starts = _csv_record_lines(path, delimiter, len(src.columns))
    if len(starts) != n_rows:
        logger.warning(
            "%s: could not map %d rows to physical lines (found %d records); quarantine "
            "lines are row numbers + 1", src.display, n_rows, len(starts),
        )
        return "({rid} + 2)"
    line_map = pd.DataFrame({"rid": np.arange(n_rows, dtype=np.int64), "line": starts})
    view = f"__lines_{src.table}"
    con.register(view, line_map)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {view}_t AS SELECT * FROM {view}")
    con.unregister(view)
    return f"(SELECT lm.line FROM {view}_t lm WHERE lm.rid = {{rid}})"


def line_number_sql(con: duckdb.DuckDBPyConnection, src: Source, n_rows: int) -> str:
    """Physical line for CSV; 1-based row number for Parquet and DuckDB (file order)."""
    # Only called when rows were quarantined: counting CSV lines reads the whole file.
    if src.kind == "csv":
        return _csv_line_function(con, src, n_rows)
    return "({rid} + 1)"
