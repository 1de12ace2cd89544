"""Finding the tables of a source and checking what can be checked before a row is read.

A source is a folder of table files (``<table>.csv``, ``.csv.gz`` or ``.parquet``, names
ignoring case) or a DuckDB file holding tables or views named after the contract's tables.
`discover_sources` opens each one, checks its format, its required columns (names matched
ignoring case and surrounding spaces; two names that mean one column are refused) and that it
has rows, and describes it as a `Source`: the SQL relation DuckDB reads it through and the map
from the contract's column names to the source's. Every problem is an `InputContractError`
naming the file, raised before anything is written but cleaned copies of CSV files.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from features.contract import (
    CSV_SUFFIXES,
    DATABASE_SUFFIXES,
    FILE_SUFFIXES,
    TABLES,
    InputContractError,
    TableSpec,
)
from features.io.source_files import (
    DEFAULT_MAX_FIELD_BYTES,
    CsvRecordError,
    CsvScan,
    SetAside,
    link_leaving_folder,
    read_header_line,
    scan_csv,
    shown,
    unbounded_csv_fields,
)
from features.sql_text import quote_ident, quote_literal

logger = logging.getLogger(__name__)

_CSV_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class Source:
    """Where one table comes from and how its columns map onto the contract."""

    table: str
    display: str  # file path, or database path:table
    kind: str  # "csv", "parquet" or "duckdb"
    relation: str  # SQL FROM-clause that reads it
    columns: tuple[str, ...]  # column names as found in the source
    mapping: dict[str, str]  # contract or attribute name -> source column name
    database: str = ""  # DuckDB file to attach as __src (kind "duckdb" only)
    file: str = ""  # the file read (kind "csv" or "parquet"): the source, its snapshot or cleaned copy
    # CSV records kept out of the read (undecodable bytes, a field over the limit): quarantined as they are.
    set_aside: tuple[SetAside, ...] = ()
    # Physical line of each row of `file` in the source, when `file` is a cleaned copy (else None).
    line_starts: np.ndarray | None = field(default=None, compare=False)

    @property
    def line_kind(self) -> str:
        """'line' for CSV (physical line), 'row' otherwise (1-based row number)."""
        return "line" if self.kind == "csv" else "row"


def _expected_columns_text(spec: TableSpec) -> str:
    text = f"required: {', '.join(spec.required_columns)}; optional: {', '.join(spec.optional_columns)}"
    if spec.allows_extra_columns:
        text += "; any other attribute"
    return text


_SHOWN_COLUMN_NAMES = 40


def contract_error(spec: TableSpec, where: str, problem: str, found: Sequence[str] | None) -> InputContractError:
    # Column names come from the file: shown escaped and cut, so the message stays one short line.
    names = [shown(str(name), 40) for name in (found or ())[:_SHOWN_COLUMN_NAMES]]
    if found and len(found) > _SHOWN_COLUMN_NAMES:
        names.append(f"... ({len(found):,} columns)")
    found_text = ", ".join(names) if names else "(none)"
    return InputContractError(
        f"{spec.name} table, {where}: {problem}. Expected columns ({_expected_columns_text(spec)}). "
        f"Found columns: {found_text}."
    )


def _table_file_name(path: Path) -> tuple[str, str] | None:
    """(table, suffix) when the file name is <table><known suffix>, ignoring case."""
    lower = path.name.lower()
    for suffix in sorted(FILE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            stem = lower[: -len(suffix)]
            if stem in TABLES:
                return stem, suffix
    return None


def _discover_directory(directory: Path) -> dict[str, tuple[Path, str]]:
    """Map table -> (file, suffix) for the files in `directory` named after tables."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for path in sorted(directory.iterdir()):
        match = _table_file_name(path)
        if match is None:
            continue
        if link_leaving_folder(path, directory):
            raise InputContractError(
                f"{match[0]} table, file {path}: a symbolic link that leads out of the data folder "
                f"{directory}; refused (links are followed only within the folder). Copy the file into "
                "the folder instead."
            )
        if not path.is_file():
            continue
        found.setdefault(match[0], []).append((path, match[1]))
    for table, files in found.items():
        if len(files) > 1:
            names = ", ".join(str(p) for p, _ in files)
            raise contract_error(
                TABLES[table], f"directory {directory}",
                f"two or more files for the same table ({names}); keep exactly one", None,
            )
    return {table: files[0] for table, files in found.items()}


def _describe(probe: duckdb.DuckDBPyConnection, relation: str) -> tuple[list[str], bool]:
    """Column names of a relation and whether it has at least one row."""
    cursor = probe.execute(f"SELECT * FROM {relation} LIMIT 1")
    names = [d[0] for d in cursor.description]
    has_rows = len(cursor.fetchall()) > 0
    return names, has_rows


def _map_columns(spec: TableSpec, where: str, columns: Sequence[str]) -> dict[str, str]:
    """Contract (and, for customers, attribute) name -> source column; checks required ones."""
    _check_distinct_column_names(spec, where, columns)
    normalised = {col.strip().lower(): col for col in columns}
    missing = [c for c in spec.required_columns if c not in normalised]
    if missing:
        raise contract_error(
            spec, where,
            f"required column(s) missing: {', '.join(missing)} (names match ignoring case "
            "and spaces; rename the columns in the source)", columns,
        )
    mapping = {c: normalised[c] for c in spec.column_names if c in normalised}
    extras = [k for k in normalised if k not in mapping]
    if spec.allows_extra_columns:
        mapping.update({k: normalised[k] for k in extras if k and not k.startswith("__")})
    elif extras:
        logger.info("%s: ignoring columns not in the contract: %s", where, ", ".join(extras))
    return mapping


def _parquet_column_names(path: Path) -> list[str]:
    """Top-level column names as the file stores them (DuckDB renames repeated ones); [] if unreadable."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError):  # pyarrow's errors derive from these
        return []  # DuckDB reports the unreadable file in its own words


def _without_rows(spec: TableSpec, where: str, columns: Sequence[str], warnings: list[str]) -> None:
    """A table with a header and no row: an error for transactions, an absent table (and a warning) otherwise."""
    if spec.required:
        raise contract_error(spec, where, "the table has no rows", columns)
    warning = (f"{spec.name} table, {where}: column names but no rows; treated as absent (features from "
               f"{spec.name} are left out). Remove it or fill it.")
    logger.warning(warning)
    warnings.append(warning)


def _scan_csv(spec: TableSpec, path: Path, delimiter: str, header: list[str], max_field_bytes: int,
              scratch: Callable[[], Path]) -> CsvScan:
    try:
        return scan_csv(path, delimiter, header, max_field_bytes, scratch)
    except CsvRecordError as exc:
        raise contract_error(spec, f"file {path}", f"{exc}; every line needs as many fields as the header",
                              header) from exc
    except (OSError, EOFError) as exc:
        raise contract_error(spec, f"file {path}", f"cannot be read ({exc})", header) from exc


def _probe_file(
    probe: duckdb.DuckDBPyConnection, table: str, path: Path, suffix: str, *, max_field_bytes: int,
    scratch: Callable[[], Path], warnings: list[str],
) -> Source | None:
    """Open one file, check format, required columns and that it has rows (None: no rows, left out)."""
    spec = TABLES[table]
    where = f"file {path}"
    if path.stat().st_size == 0:
        raise contract_error(spec, where, "the file is empty (no header, no rows)", None)
    header: list[str] | None = None
    read, set_aside, line_starts = path, (), None
    if suffix in CSV_SUFFIXES:
        delimiter, header = csv_header(spec, path)
        scan = _scan_csv(spec, path, delimiter, header, max_field_bytes, scratch)
        read, set_aside, line_starts = scan.file, scan.set_aside, scan.line_starts
        kind, relation = "csv", _csv_relation(read, delimiter, header, scan.longest_record_bytes)
        hint = "every line needs as many fields as the header"
    else:
        _check_distinct_column_names(spec, where, _parquet_column_names(path))
        kind, relation = "parquet", f"read_parquet({quote_literal(str(path))})"
        hint = f"write it as {' or '.join(FILE_SUFFIXES)}"
    try:
        columns, has_rows = _describe(probe, relation)
    except duckdb.Error as exc:
        not_out_of_memory(exc)
        raise contract_error(
            spec, where, f"cannot be read as {kind.upper()} ({first_line(exc, 3)}); {hint}", header,
        ) from exc
    mapping = _map_columns(spec, where, columns)
    if not has_rows and not set_aside:
        _without_rows(spec, where, columns, warnings)
        return None
    return Source(table, str(path), kind, relation, tuple(columns), mapping, file=str(read),
                  set_aside=set_aside, line_starts=line_starts)


def first_line(exc: BaseException, max_lines: int = 1) -> str:
    """The informative head of a DuckDB error (its 'Possible fixes' are about DuckDB options)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    head = []
    for line in lines[:max_lines]:
        if line.startswith("Possible fixes"):
            break
        # DuckDB quotes the offending line of the file: keep its start only.
        head.append(shown(line, 200))
    return "; ".join(head) or type(exc).__name__


def not_out_of_memory(exc: duckdb.Error) -> duckdb.Error:
    """Re-raise DuckDB running out of its memory cap: that is the machine's limit, not a bad file."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        raise exc
    return exc


def csv_header(spec: TableSpec, path: Path) -> tuple[str, list[str]]:
    """Delimiter and column names, from the header line (the first line of the file)."""
    try:
        first = read_header_line(path)
    except UnicodeDecodeError as exc:
        raise contract_error(
            spec, f"file {path}", f"the header line is not UTF-8 (byte {exc.start + 1}); save it as UTF-8 CSV", None
        ) from exc
    except (OSError, EOFError) as exc:
        raise contract_error(
            spec, f"file {path}", f"cannot be read as UTF-8 CSV ({exc}); save it as UTF-8 CSV", None
        ) from exc
    delimiter = max(_CSV_DELIMITERS, key=first.count) if first else ","
    with unbounded_csv_fields():  # a long header name is judged by the contract, not by csv
        found = next(csv.reader([first], delimiter=delimiter), [])
    _check_distinct_column_names(spec, f"file {path}", found)
    names = [name.strip() or f"column{i}" for i, name in enumerate(found)]
    return delimiter, names


def _check_distinct_column_names(spec: TableSpec, where: str, found: Sequence[str]) -> None:
    """Two names that mean the same column (ignoring case and spaces) are one line naming both."""
    # DuckDB's names are case-insensitive: left to it, 'amount' and 'AMOUNT' give a binder error
    # in a CSV file, and in a Parquet file the second silently becomes 'AMOUNT_1'.
    seen: dict[str, str] = {}
    for name in found:
        key = name.strip().lower()
        if not key:
            continue
        if key in seen:
            raise InputContractError(
                f"{spec.name} table, {where}: columns {shown(seen[key], 40)!r} and {shown(name, 40)!r} "
                f"both mean {shown(key, 40)!r} (names match ignoring case and surrounding spaces); "
                "keep one of them."
            )
        seen[key] = name


_DUCKDB_DEFAULT_MAX_LINE_SIZE = 2_000_000


def _csv_relation(path: Path, delimiter: str, names: Sequence[str], longest_record_bytes: int = 0) -> str:
    """read_csv with the dialect fixed from the header: every line is a row, nothing skipped."""
    # DuckDB's sniffer may skip leading lines or pick the widest row as header; a fixed
    # dialect instead turns a malformed line into an error that names it.
    columns = "{" + ", ".join(f"{quote_literal(n)}: 'VARCHAR'" for n in names) + "}"
    # A cleaned file may keep a record of several long fields, each within the field limit.
    line_size = (f", max_line_size={longest_record_bytes + 1}"
                 if longest_record_bytes >= _DUCKDB_DEFAULT_MAX_LINE_SIZE else "")
    return (
        f"read_csv({quote_literal(str(path))}, auto_detect=false, header=true, delim={quote_literal(delimiter)}, "
        f"quote='\"', escape='\"', columns={columns}{line_size})"
    )


def _probe_database(probe: duckdb.DuckDBPyConnection, path: Path, warnings: list[str]) -> dict[str, Source]:
    """Find the contract tables in a DuckDB file (attached read-only as __src)."""
    spec = TABLES["transactions"]
    try:
        probe.execute(f"ATTACH {quote_literal(str(path))} AS __src (READ_ONLY)")
    except duckdb.Error as exc:
        not_out_of_memory(exc)
        raise contract_error(
            spec, f"database {path}", f"cannot be opened as a DuckDB database ({first_line(exc)})", None,
        ) from exc
    rows = probe.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = '__src' "
        "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
        "WHERE database_name = '__src' AND NOT internal"
    ).fetchall()
    found: dict[str, list[tuple[str, str]]] = {}
    for schema, name in rows:
        if name.lower() in TABLES:
            found.setdefault(name.lower(), []).append((schema, name))
    sources: dict[str, Source] = {}
    for table, candidates in found.items():
        where = f"database {path}"
        if len(candidates) > 1:
            names = ", ".join(f"{s}.{n}" for s, n in candidates)
            raise contract_error(TABLES[table], where, f"two or more tables for {table} ({names}); keep one", None)
        schema, name = candidates[0]
        relation = f"__src.{quote_ident(schema)}.{quote_ident(name)}"
        columns, has_rows = _describe(probe, relation)
        where = f"database {path}, table {schema}.{name}"
        mapping = _map_columns(TABLES[table], where, columns)
        if not has_rows:
            _without_rows(TABLES[table], where, columns, warnings)
            continue
        sources[table] = Source(table, f"{path}:{name}", "duckdb", relation, tuple(columns), mapping, str(path))
    return sources


def discover_sources(
    source: Path, warnings: list[str], *, scratch: Callable[[], Path], max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> dict[str, Source]:
    """All file-level checks: raises InputContractError before anything but `scratch()` is written.

    `scratch()` gives the folder for cleaned copies of CSV files (see `scan_csv`). Header-only
    optional tables are left out, each with a line in `warnings`.
    """
    transactions = TABLES["transactions"]
    if not source.exists():
        raise contract_error(transactions, f"source {source}", "the path does not exist", None)
    probe = duckdb.connect()
    try:
        probe.execute("SET TimeZone = 'UTC'")
        if source.is_dir():
            files = _discover_directory(source)
            probed = {t: _probe_file(probe, t, path, suffix, max_field_bytes=max_field_bytes, scratch=scratch,
                                     warnings=warnings)
                      for t, (path, suffix) in files.items()}
            sources = {t: src for t, src in probed.items() if src is not None}
            expected_files = ", ".join(f"transactions{s}" for s in FILE_SUFFIXES)
            where = f"directory {source}"
        elif source.suffix.lower() in DATABASE_SUFFIXES:
            sources = _probe_database(probe, source, warnings)
            expected_files = "a table named transactions"
            where = f"database {source}"
        else:
            raise contract_error(
                transactions, f"source {source}",
                f"not a directory of table files nor a DuckDB file ({', '.join(DATABASE_SUFFIXES)})", None,
            )
    finally:
        probe.close()
    if "transactions" not in sources:
        present = sorted(p.name for p in source.iterdir()) if source.is_dir() else []
        raise contract_error(
            transactions, where,
            f"no transactions table (expected {expected_files}); files present: "
            f"{', '.join(present) if present else '(none)'}", None,
        )
    return {t: sources[t] for t in TABLES if t in sources}
