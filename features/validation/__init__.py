"""Read the input tables, check them against the contract, and quarantine bad rows.

Everything row-level runs as DuckDB SQL (no Python loop over rows): one pass per table
parses every column, finds the first rule each row breaks and hashes the row; duplicates
are then searched among the few rows whose hashes repeat. Millions of rows are checked in
seconds and every rejected row keeps its file, line, column, value and reason.

Row rules, in the order they are tried (a row gets the reason of the first that fires):

0. CSV records DuckDB is not given (``features.io.source_files``): ``undecodable_text`` (bytes
   that are not UTF-8), ``field_too_long`` (a field over ``max_field_bytes``);
1. missing identifiers: ``missing_customer_id``, ``missing_order_id``,
   ``missing_invoice_id``, ``missing_kind``; an identifier that reads as a missing value
   (``null``, ``none``, ``nan``, ``na``, ``n/a``, ``#n/a``, ``<na>``, in any case, after
   trimming: what SQL, Python, pandas, R and Excel write for "no value") is missing too;
   then ``invalid_characters``: an identifier (customer_id, order_id, invoice_id, and
   line_id and product_id where present) holding a control character, i.e. C0 (0x00-0x1f:
   NUL, tab, newline, carriage return...), DEL (0x7f) or C1 (0x80-0x9f). No real id has
   one, and each breaks something downstream (a NUL ends the text in C tools, a newline
   or tab splits a line of a report). The quarantine shows such a value escaped
   (``C\\x001``) so it stays printable; its ``raw`` JSON keeps the exact text. This check
   is one regular expression per identifier value, the dearest rule per row (about 65 ns
   each on one core). With it and the missing-value words, validating 50,000 demo
   customers (1.7M rows, Parquet) took 1.6-2.1 CPU s against 1.0-1.2 before, on a shared
   machine; the regular expression alone accounted for about 0.4 s of that;
2. timestamps: ``missing_timestamp`` (required column empty), ``bad_timestamp`` (not
   ISO 8601), ``implausible_date`` (before ``PlausibilityRules.min_date``, config
   ``data.min_date``: the 1900-01-01, 1970-01-01 or 0001-01-01 a system writes for "no
   date"; every timestamp column of every table); columns in contract order;
3. amounts: ``missing_amount``, ``non_numeric_amount``, ``non_finite_amount`` (NaN, inf);
   other numeric columns: ``non_numeric_value``, ``non_finite_value``;
4. table rules: ``negative_discount`` (transactions), ``negative_cost`` (interactions),
   ``due_before_issued`` and ``paid_before_issued`` (invoices, compared by calendar day),
   ``unknown_currency`` (transactions, invoices: a currency with no rate in the configured
   conversion, see below);
5. ``future_timestamp``: after the run's clock, or after ``data_end`` when given
   (transactions.ts, interactions.ts, invoices.issued_at and paid_at,
   customers.signup_date);
6. ``unknown_customer`` (invoices, interactions): the customer is not in the accepted
   customers table when there is one, else not among the accepted transactions' customers;
7. ``exact_duplicate``: same values in every column as an earlier line (the first is kept);
8. ``conflicting_duplicate``: rows with the same key and different values; all rows of
   such a group are quarantined. Keys: invoices invoice_id, customers customer_id,
   transactions order_id + line_id (only where the optional line_id column is given and
   filled in); interactions have none.

Currencies (``features.validation.plausibility``). Amounts of the transactions and invoices are added up,
so they must be in one currency: when their currency columns (case ignored, empty cells not
counted) name more than one, validation stops with one line naming each currency and its rows
(MixedCurrencyError), unless a conversion (``data.currency``) is given; then the money columns
(amount, margin, discount, paid_amount) of the accepted rows are converted into the base
currency, the currency column reads the base, an empty currency is taken as the base, and a
currency without a rate is quarantined as ``unknown_currency``.

Warnings, not quarantine (``TableReport.warnings``): an event table whose last timestamp lies
more than ``max_source_lag_days`` before the latest table's (a stale extract), and whale
orders, far above the rest (``PlausibilityRules.whale_order``): they can be real, so they
are kept and named for a person to check.

A transaction row is an order line. Without a line id nothing tells two lines of one order
apart, so the same product twice in an order, at the same or a different quantity, is two
ordinary lines: no conflict is looked for. Exact copies of such a line follow
``duplicate_lines``: ``keep`` accepts them and counts them in
``TableReport.exact_duplicates_kept`` (a real order log has identical lines by design, e.g.
an item scanned twice); ``drop_exact`` quarantines them as ``exact_duplicate``. A copy of a
line with a line id, and an exact copy in any other table, is always ``exact_duplicate``.

Duplicates are compared after normalisation (trimmed text, parsed numbers and UTC
timestamps), so the same data gives the same answer from CSV, Parquet or DuckDB.
Negative amounts are returns, not errors. Naive timestamps are UTC; timestamps with an
offset or zone are converted to UTC; accepted timestamps are naive UTC. Identifiers are
text: whitespace trimmed, leading zeros kept. Column names are matched ignoring case and
surrounding spaces. Empty cells in optional columns stay null (and so do the missing-value
words above in the optional identifiers line_id and product_id), except ``margin``
(amount x default margin rate) and invoice ``paid_amount`` (amount when paid_at is set).

CSV files need a header line; the delimiter (comma, semicolon, tab or pipe) is taken from
it, quotes are double quotes. A line with the wrong number of fields, an unreadable file, a
missing required column, two columns whose names differ only in case or spaces, an empty
transactions table, two files for one table and a file that is a symbolic link leading out
of the data folder are file-level errors (InputContractError), raised before anything is
written. An optional table with columns and no row is left out with a line in
``ValidatedData.warnings``.

In the quarantine, ``line`` is the physical line in a CSV file (the header is line 1);
for Parquet files and DuckDB tables there are no lines and ``line`` is the 1-based row
number (``ValidatedData.line_kind`` says which). Its ``value`` is the cell as found with
every control character written ``\\xHH`` (whatever the reason), so the file and the
one-line threshold error stay printable; ``raw``, the row as found in JSON, keeps the exact
text. Written as CSV, its text cells are made safe for spreadsheets (``features.safe_csv``).

Where the accepted rows live: CSV files and DuckDB tables are read as text and the
accepted rows stored as DuckDB tables. Parquet files are read in place with their native
types (timestamps and doubles skip parsing; types whose conversion could differ from their
text, such as REAL, DECIMAL or nanosecond timestamps, take the text route); when every
timestamp and number column is native, the accepted table is a view over the file that
leaves out the quarantined rows, so no copy of the data is held in memory and the result is
the same as the stored table would be. With ``work_dir`` the files are copied first, so the
view cannot see a later rewrite of the source.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import ibis
import numpy as np
import pandas as pd

from features.attributes import AttributeChoice
from features.contract import (
    CSV_SUFFIXES,
    DATABASE_SUFFIXES,
    FILE_SUFFIXES,
    TABLES,
    LogicalType,
    TableSpec,
)
from features.validation.plausibility import (
    MONEY_COLUMNS,
    PlausibilityRules,
    currency_counts,
    currency_factor_sql,
    last_event_times,
    mixed_currency_message,
    stale_source_warnings,
    unknown_currency_sql,
    whale_orders,
    whale_warnings,
)
from features.safe_csv import safe_text_frame
from features.io.source_files import (
    DEFAULT_MAX_FIELD_BYTES,
    FIELD_TOO_LONG,
    UNDECODABLE_TEXT,
    CsvRecordError,
    CsvScan,
    SetAside,
    link_leaving_folder,
    read_header_line,
    scan_csv,
    shown,
    unbounded_csv_fields,
)

logger = logging.getLogger(__name__)

QUARANTINE_COLUMNS: tuple[str, ...] = ("table", "source", "line", "column", "value", "reason", "raw")

# Reason names used outside the per-column rules (see the module docstring for the order).
EXACT_DUPLICATE = "exact_duplicate"
CONFLICTING_DUPLICATE = "conflicting_duplicate"
UNKNOWN_CUSTOMER = "unknown_customer"
FUTURE_TIMESTAMP = "future_timestamp"
INVALID_CHARACTERS = "invalid_characters"
IMPLAUSIBLE_DATE = "implausible_date"
UNKNOWN_CURRENCY = "unknown_currency"

# Identifiers: text that names a customer, order, invoice, line or product (module docstring).
IDENTIFIER_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "invoice_id", "line_id", "product_id")
# Words an identifier cell holds when the tool that wrote it meant "no value" (lower case).
MISSING_ID_TEXTS: tuple[str, ...] = ("null", "none", "nan", "na", "n/a", "#n/a", "<na>")
# Control characters (Unicode category Cc): C0, DEL and C1, as an RE2 class for DuckDB.
_CONTROL_CHARACTER_CLASS = r"[\x00-\x1f\x7f-\x9f]"
_CONTROL_CODES = (*range(0x20), *range(0x7F, 0xA0))
_PRINTABLE_CONTROLS = {code: f"\\x{code:02x}" for code in _CONTROL_CODES}
# JSON already escapes C0; DEL and C1 are legal in JSON text but unprintable.
_JSON_ESCAPED_CONTROLS = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}

# Every reason a row can be quarantined for, in the order rules are tried.
QUARANTINE_REASONS: tuple[str, ...] = (
    UNDECODABLE_TEXT, FIELD_TOO_LONG,
    "missing_customer_id", "missing_order_id", "missing_invoice_id", "missing_kind", INVALID_CHARACTERS,
    "missing_timestamp", "bad_timestamp", IMPLAUSIBLE_DATE,
    "missing_amount", "non_numeric_amount", "non_finite_amount", "non_numeric_value", "non_finite_value",
    "negative_discount", "negative_cost", "due_before_issued", "paid_before_issued", UNKNOWN_CURRENCY,
    FUTURE_TIMESTAMP, UNKNOWN_CUSTOMER, EXACT_DUPLICATE, CONFLICTING_DUPLICATE,
)

_FUTURE_CHECKED: dict[str, tuple[str, ...]] = {
    "transactions": ("ts",),
    "interactions": ("ts",),
    "invoices": ("issued_at", "paid_at"),
    "customers": ("signup_date",),
}
_CHECKED_FOR_UNKNOWN_CUSTOMER = ("invoices", "interactions")
_CSV_DELIMITERS = (",", ";", "\t", "|")

# What to do with exact copies of a transaction line that has no line id (module docstring).
DUPLICATE_LINE_POLICIES: tuple[str, ...] = ("keep", "drop_exact")
_NEWLINE_COUNT_CHUNK = 1 << 24


class InputContractError(ValueError):
    """A file-level problem: the input cannot be read as the contract describes."""


class MixedCurrencyError(InputContractError):
    """Amounts in more than one currency and no conversion configured (data.currency)."""


class QuarantineThresholdError(ValueError):
    """Too many rows of a table were quarantined; `.result` still holds report and quarantine."""

    def __init__(self, message: str, result: ValidatedData) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class TableReport:
    """Counts for one table: rows read = accepted + quarantined.

    `exact_duplicates_kept`: accepted rows that are exact copies of an earlier row (transaction
    lines without a line id under ``duplicate_lines="keep"``); they are part of `accepted`.
    `warnings`: what a person should check although every row passed (a stale table, whale orders).
    """

    read: int
    accepted: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    exact_duplicates_kept: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def quarantined_share(self) -> float:
        """Share of rows read that went to quarantine (0 when nothing was read)."""
        return self.quarantined / self.read if self.read else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: read, accepted, quarantined, reasons, exact_duplicates_kept, warnings."""
        return {
            "read": self.read,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "reasons": dict(self.reasons),
            "exact_duplicates_kept": self.exact_duplicates_kept,
            "warnings": list(self.warnings),
        }


@dataclass
class ValidatedData:
    """Accepted tables on an embedded DuckDB (via Ibis), with the report and the quarantine."""

    con: Any  # ibis DuckDB backend
    tables: dict[str, ibis.Table]
    report: dict[str, TableReport]
    quarantine: pd.DataFrame
    data_hash: str
    data_start: datetime | None
    data_end: datetime | None
    sources: dict[str, str] = field(default_factory=dict)
    line_kind: dict[str, str] = field(default_factory=dict)  # "line" (CSV) or "row"
    # The customers columns chosen as attributes, and the excluded ones with their reason, once
    # `features.attributes.choose_attributes` has been applied (None before, or without customers).
    attributes: AttributeChoice | None = None
    # Things a user should know that stopped nothing, one line each (e.g. a header-only table left out).
    warnings: list[str] = field(default_factory=list)

    def present_columns(self, table: str) -> tuple[str, ...]:
        """Columns of an accepted table (empty when the table is absent)."""
        if table not in self.tables:
            return ()
        return tuple(self.tables[table].columns)

    def report_json(self) -> dict[str, dict[str, Any]]:
        """{table: {read, accepted, quarantined, reasons: {reason: count}, exact_duplicates_kept, warnings}}."""
        return {name: rep.to_dict() for name, rep in self.report.items()}

    def write_quarantine(self, path: str | Path) -> Path:
        """Write the quarantined rows to .parquet or .csv (by suffix); returns the path.

        In CSV, text a spreadsheet would run as a formula gets a leading ``'`` (features.safe_csv).
        """
        path = Path(path)
        suffixes = "".join(path.suffixes).lower()
        if suffixes.endswith(".parquet"):
            self.quarantine.to_parquet(path, index=False)
        elif suffixes.endswith((".csv", ".csv.gz")):
            safe_text_frame(self.quarantine).to_csv(path, index=False)
        else:
            raise ValueError(
                f"quarantine file {path}: unknown format {path.suffix!r}; use .parquet or .csv"
            )
        return path


# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Source:
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


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ts_lit(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def _to_naive_utc(moment: datetime | date) -> datetime:
    """Naive datetimes are UTC already; aware ones are converted; dates mean midnight UTC."""
    if not isinstance(moment, datetime):
        return datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _expected_columns_text(spec: TableSpec) -> str:
    text = f"required: {', '.join(spec.required_columns)}; optional: {', '.join(spec.optional_columns)}"
    if spec.allows_extra_columns:
        text += "; any other attribute"
    return text


_SHOWN_COLUMN_NAMES = 40


def _contract_error(spec: TableSpec, where: str, problem: str, found: Sequence[str] | None) -> InputContractError:
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
            raise _contract_error(
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
        raise _contract_error(
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


class _Scratch:
    """A temporary folder for cleaned copies of CSV files, made on first use and removed after validation."""

    def __init__(self, parent: Path | None) -> None:
        self.parent = parent
        self.path: Path | None = None

    def folder(self) -> Path:
        if self.path is None:
            if self.parent is not None:
                self.parent.mkdir(parents=True, exist_ok=True)
            # Named like a work folder, so one left by a killed process is removed by the next run.
            self.path = Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-csv-", dir=self.parent))
        return self.path

    def remove(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


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
        raise _contract_error(spec, where, "the table has no rows", columns)
    warning = (f"{spec.name} table, {where}: column names but no rows; treated as absent (features from "
               f"{spec.name} are left out). Remove it or fill it.")
    logger.warning(warning)
    warnings.append(warning)


def _scan_csv(spec: TableSpec, path: Path, delimiter: str, header: list[str], max_field_bytes: int,
              scratch: _Scratch) -> CsvScan:
    try:
        return scan_csv(path, delimiter, header, max_field_bytes, scratch.folder)
    except CsvRecordError as exc:
        raise _contract_error(spec, f"file {path}", f"{exc}; every line needs as many fields as the header",
                              header) from exc
    except (OSError, EOFError) as exc:
        raise _contract_error(spec, f"file {path}", f"cannot be read ({exc})", header) from exc


def _probe_file(
    probe: duckdb.DuckDBPyConnection, table: str, path: Path, suffix: str, *, max_field_bytes: int,
    scratch: _Scratch, warnings: list[str],
) -> _Source | None:
    """Open one file, check format, required columns and that it has rows (None: no rows, left out)."""
    spec = TABLES[table]
    where = f"file {path}"
    if path.stat().st_size == 0:
        raise _contract_error(spec, where, "the file is empty (no header, no rows)", None)
    header: list[str] | None = None
    read, set_aside, line_starts = path, (), None
    if suffix in CSV_SUFFIXES:
        delimiter, header = _csv_header(spec, path)
        scan = _scan_csv(spec, path, delimiter, header, max_field_bytes, scratch)
        read, set_aside, line_starts = scan.file, scan.set_aside, scan.line_starts
        kind, relation = "csv", _csv_relation(read, delimiter, header, scan.longest_record_bytes)
        hint = "every line needs as many fields as the header"
    else:
        _check_distinct_column_names(spec, where, _parquet_column_names(path))
        kind, relation = "parquet", f"read_parquet({_lit(str(path))})"
        hint = f"write it as {' or '.join(FILE_SUFFIXES)}"
    try:
        columns, has_rows = _describe(probe, relation)
    except duckdb.Error as exc:
        _not_out_of_memory(exc)
        raise _contract_error(
            spec, where, f"cannot be read as {kind.upper()} ({_first_line(exc, 3)}); {hint}", header,
        ) from exc
    mapping = _map_columns(spec, where, columns)
    if not has_rows and not set_aside:
        _without_rows(spec, where, columns, warnings)
        return None
    return _Source(table, str(path), kind, relation, tuple(columns), mapping, file=str(read),
                   set_aside=set_aside, line_starts=line_starts)


def _first_line(exc: BaseException, max_lines: int = 1) -> str:
    """The informative head of a DuckDB error (its 'Possible fixes' are about DuckDB options)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    head = []
    for line in lines[:max_lines]:
        if line.startswith("Possible fixes"):
            break
        # DuckDB quotes the offending line of the file: keep its start only.
        head.append(shown(line, 200))
    return "; ".join(head) or type(exc).__name__


def _csv_header(spec: TableSpec, path: Path) -> tuple[str, list[str]]:
    """Delimiter and column names, from the header line (the first line of the file)."""
    try:
        first = read_header_line(path)
    except UnicodeDecodeError as exc:
        raise _contract_error(
            spec, f"file {path}", f"the header line is not UTF-8 (byte {exc.start + 1}); save it as UTF-8 CSV", None
        ) from exc
    except (OSError, EOFError) as exc:
        raise _contract_error(
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
    columns = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
    # A cleaned file may keep a record of several long fields, each within the field limit.
    line_size = (f", max_line_size={longest_record_bytes + 1}"
                 if longest_record_bytes >= _DUCKDB_DEFAULT_MAX_LINE_SIZE else "")
    return (
        f"read_csv({_lit(str(path))}, auto_detect=false, header=true, delim={_lit(delimiter)}, "
        f"quote='\"', escape='\"', columns={columns}{line_size})"
    )


def _probe_database(probe: duckdb.DuckDBPyConnection, path: Path, warnings: list[str]) -> dict[str, _Source]:
    """Find the contract tables in a DuckDB file (attached read-only as __src)."""
    spec = TABLES["transactions"]
    try:
        probe.execute(f"ATTACH {_lit(str(path))} AS __src (READ_ONLY)")
    except duckdb.Error as exc:
        _not_out_of_memory(exc)
        raise _contract_error(
            spec, f"database {path}", f"cannot be opened as a DuckDB database ({_first_line(exc)})", None,
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
    sources: dict[str, _Source] = {}
    for table, candidates in found.items():
        where = f"database {path}"
        if len(candidates) > 1:
            names = ", ".join(f"{s}.{n}" for s, n in candidates)
            raise _contract_error(TABLES[table], where, f"two or more tables for {table} ({names}); keep one", None)
        schema, name = candidates[0]
        relation = f"__src.{_ident(schema)}.{_ident(name)}"
        columns, has_rows = _describe(probe, relation)
        where = f"database {path}, table {schema}.{name}"
        mapping = _map_columns(TABLES[table], where, columns)
        if not has_rows:
            _without_rows(TABLES[table], where, columns, warnings)
            continue
        sources[table] = _Source(table, f"{path}:{name}", "duckdb", relation, tuple(columns), mapping, str(path))
    return sources


def _discover_sources(
    source: Path, warnings: list[str], *, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
    scratch: _Scratch | None = None,
) -> dict[str, _Source]:
    """All file-level checks: raises InputContractError before anything but `scratch` is written.

    Header-only optional tables are left out, each with a line in `warnings`.
    """
    transactions = TABLES["transactions"]
    if not source.exists():
        raise _contract_error(transactions, f"source {source}", "the path does not exist", None)
    scratch = scratch if scratch is not None else _Scratch(None)
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
            raise _contract_error(
                transactions, f"source {source}",
                f"not a directory of table files nor a DuckDB file ({', '.join(DATABASE_SUFFIXES)})", None,
            )
    finally:
        probe.close()
    if "transactions" not in sources:
        present = sorted(p.name for p in source.iterdir()) if source.is_dir() else []
        raise _contract_error(
            transactions, where,
            f"no transactions table (expected {expected_files}); files present: "
            f"{', '.join(present) if present else '(none)'}", None,
        )
    return {t: sources[t] for t in TABLES if t in sources}


# ----------------------------------------------------------------------------- reading rows

# Native types whose values convert to the normalised type exactly as their text would, so
# that Parquet columns of these types skip the round trip through text. Others (DECIMAL,
# REAL, TIMESTAMP_NS, DATE...) go through their text, as CSV does, to keep identical results.
_DIRECT_FLOAT_TYPES = frozenset({
    "DOUBLE", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT",
})
_DIRECT_TIMESTAMP_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP WITH TIME ZONE"})
_PARQUET_ROW_NUMBER = "file_row_number"


@dataclass(frozen=True)
class _Rows:
    """How the checks read one table: a FROM clause aliased r, its row id, and native column types."""

    relation: str
    rid: str  # SQL for the 0-based row position in the source (file order)
    types: dict[str, str]  # source column -> native DuckDB type
    in_place: bool  # True: read from the Parquet file itself, no copy of the rows was made


def _not_out_of_memory(exc: duckdb.Error) -> duckdb.Error:
    """Re-raise DuckDB running out of its memory cap: that is the machine's limit, not a bad file."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        raise exc
    return exc


def _read_error(src: _Source, exc: duckdb.Error) -> InputContractError:
    _not_out_of_memory(exc)
    hint = "every line needs as many fields as the header" if src.kind == "csv" else "rewrite it"
    return _contract_error(
        TABLES[src.table], f"source {src.display}", f"cannot be read ({_first_line(exc, 3)}); {hint}", src.columns,
    )


def _load_raw(con: duckdb.DuckDBPyConnection, src: _Source) -> _Rows:
    """Copy the source as text into a temp table (insertion order = file order)."""
    raw = f"__raw_{src.table}"
    if src.kind == "csv":
        select = "*"
    else:
        select = ", ".join(f"CAST({_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in src.columns)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT {select} FROM {src.relation}")
    except duckdb.Error as exc:
        raise _read_error(src, exc) from exc
    return _Rows(f"{raw} r", "r.rowid", {c: "VARCHAR" for c in src.columns}, in_place=False)


def _rows(con: duckdb.DuckDBPyConnection, src: _Source) -> _Rows:
    """Parquet is read in place with its native types; CSV and DuckDB tables are copied as text."""
    if src.kind != "parquet" or _PARQUET_ROW_NUMBER in (c.lower() for c in src.columns):
        return _load_raw(con, src)
    try:
        types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {src.relation})").fetchall())
    except duckdb.Error as exc:
        raise _read_error(src, exc) from exc
    relation = f"read_parquet({_lit(src.file)}, file_row_number=true) r"
    return _Rows(relation, f"r.{_PARQUET_ROW_NUMBER}", types, in_place=True)


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


def _csv_line_function(con: duckdb.DuckDBPyConnection, src: _Source, n_rows: int) -> str:
    """SQL template ({rid} -> physical line) for a CSV file; maps rows to lines when they differ."""
    path = Path(src.file)
    if src.line_starts is not None:  # a cleaned copy: the scan noted where each kept record starts
        starts = src.line_starts
    elif _physical_line_count(path) == n_rows + 1:
        return "({rid} + 2)"
    else:
        # Quoted newlines or blank lines: the row number no longer gives the line; map it.
        delimiter, _ = _csv_header(TABLES[src.table], path)
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


def _line_function(con: duckdb.DuckDBPyConnection, src: _Source, n_rows: int) -> str:
    """Physical line for CSV; 1-based row number for Parquet and DuckDB (file order)."""
    # Only called when rows were quarantined: counting CSV lines reads the whole file.
    if src.kind == "csv":
        return _csv_line_function(con, src, n_rows)
    return "({rid} + 1)"


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class _Rule:
    """A row rule: reason, the contract column it looks at, and a SQL condition on parsed columns."""

    reason: str
    column: str
    condition: str


def _trimmed_text(column_sql: str) -> str:
    """Text without surrounding spaces, empty -> null; trims only when needed (saves a copy)."""
    return (
        f"CASE WHEN {column_sql} = '' THEN NULL WHEN starts_with({column_sql}, ' ') OR "
        f"ends_with({column_sql}, ' ') THEN nullif(trim({column_sql}), '') ELSE {column_sql} END"
    )


def _text(col: str) -> str:
    """The column as found: trimmed text (empty -> null), or the native value on the direct route."""
    return f"{_ident(col + '__s')}"


def _reads_as_missing(text_sql: str) -> str:
    """SQL: trimmed text is one of the words tools write for a missing value (MISSING_ID_TEXTS)."""
    lengths = [len(word) for word in MISSING_ID_TEXTS]
    words = ", ".join(_lit(word) for word in MISSING_ID_TEXTS)
    # The byte length test is free and rules out almost every real id; only CASE makes DuckDB
    # skip lower() for those rows (with AND it lowered every id: 3x the CPU, measured).
    return (f"(CASE WHEN strlen({text_sql}) BETWEEN {min(lengths)} AND {max(lengths)} "
            f"THEN lower({text_sql}) IN ({words}) ELSE false END)")


def _has_control_character(text_sql: str) -> str:
    return f"regexp_matches({text_sql}, {_lit(_CONTROL_CHARACTER_CLASS)})"


def printable(text: str) -> str:
    """The text with each control character written as \\xHH (C0, DEL, C1), the rest unchanged."""
    return text.translate(_PRINTABLE_CONTROLS)


def _column_rules(spec: TableSpec, present: Sequence[str], min_date: date) -> list[_Rule]:
    """Rules about single columns, in the documented order: ids, timestamps, numbers."""
    ids, characters, stamps, numbers = [], [], [], []
    for col in spec.column_names:
        if col not in present:
            continue
        c, s = spec.column(col), _text(col)
        if col in IDENTIFIER_COLUMNS:
            characters.append(_Rule(INVALID_CHARACTERS, col, f"{s} IS NOT NULL AND {_has_control_character(s)}"))
        if col in IDENTIFIER_COLUMNS and c.required:
            ids.append(_Rule(f"missing_{col}", col, f"{s} IS NULL OR {_reads_as_missing(s)}"))
        elif c.type is LogicalType.STRING and c.required:
            ids.append(_Rule(f"missing_{col}", col, f"{s} IS NULL"))
        elif c.type is LogicalType.TIMESTAMP:
            if c.required:
                stamps.append(_Rule("missing_timestamp", col, f"{s} IS NULL"))
            stamps.append(_Rule("bad_timestamp", col, f"{s} IS NOT NULL AND {_ident(col)} IS NULL"))
            stamps.append(_implausible_date_rule(col, min_date))
        elif c.type is LogicalType.FLOAT:
            suffix = col if col == "amount" else "value"
            if c.required:
                numbers.append(_Rule(f"missing_{suffix}", col, f"{s} IS NULL"))
            numbers.append(_Rule(f"non_numeric_{suffix}", col, f"{s} IS NOT NULL AND {_ident(col)} IS NULL"))
            numbers.append(_Rule(f"non_finite_{suffix}", col, f"NOT isfinite({_ident(col)})"))
    return ids + characters + stamps + numbers


def _implausible_date_rule(col: str, min_date: date) -> _Rule:
    """A timestamp before the minimum date: a placeholder for "no date" (1900-01-01, 1970-01-01, 0001-01-01)."""
    # Accepted, such a date turns into decades of tenure and "an order every 184,957 days".
    return _Rule(IMPLAUSIBLE_DATE, col, f"{_ident(col)} < TIMESTAMP '{min_date.isoformat()}'")


def _table_rules(table: str, present: Sequence[str], plausibility: PlausibilityRules) -> list[_Rule]:
    """Rules across columns of one row that only make sense for one table."""
    rules: list[_Rule] = []
    if table == "transactions" and "discount" in present:
        rules.append(_Rule("negative_discount", "discount", "discount < 0"))
    if table == "interactions" and "cost" in present:
        rules.append(_Rule("negative_cost", "cost", "cost < 0"))
    if table == "invoices":
        rules.append(_Rule("due_before_issued", "due_at", "CAST(due_at AS DATE) < CAST(issued_at AS DATE)"))
        if "paid_at" in present:
            rules.append(_Rule("paid_before_issued", "paid_at", "CAST(paid_at AS DATE) < CAST(issued_at AS DATE)"))
    if table in MONEY_COLUMNS and "currency" in present and plausibility.currency is not None:
        rules.append(_Rule(UNKNOWN_CURRENCY, "currency", unknown_currency_sql(plausibility.currency, "currency")))
    return rules


def _future_rules(table: str, present: Sequence[str], limit: datetime) -> list[_Rule]:
    return [
        _Rule(FUTURE_TIMESTAMP, col, f"{_ident(col)} > {_ts_lit(limit)}")
        for col in _FUTURE_CHECKED.get(table, ())
        if col in present
    ]


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


def _logical_type(spec: TableSpec, col: str, attribute_types: dict[str, LogicalType]) -> LogicalType:
    return spec.column(col).type if col in spec.column_names else attribute_types[col]


def _is_direct(logical: LogicalType, native: str) -> bool:
    """True when a native column converts to its logical type without going through text."""
    if logical is LogicalType.FLOAT:
        return native in _DIRECT_FLOAT_TYPES
    if logical is LogicalType.TIMESTAMP:
        return native in _DIRECT_TIMESTAMP_TYPES
    return False


def _found_expression(column_sql: str, logical: LogicalType, native: str) -> str:
    """The value as found: native on the direct route, else trimmed text (empty -> null)."""
    if _is_direct(logical, native):
        return column_sql
    return _trimmed_text(column_sql if native == "VARCHAR" else f"CAST({column_sql} AS VARCHAR)")


def _parse_expression(spec: TableSpec, col: str, logical: LogicalType, native: str) -> str:
    """SQL turning the found value of a column into its normalised type."""
    s = _text(col)
    if _is_direct(logical, native):
        # Under TimeZone UTC this gives the UTC wall time, as the text route does.
        return f"CAST({s} AS {'DOUBLE' if logical is LogicalType.FLOAT else 'TIMESTAMP'})"
    if logical is LogicalType.TIMESTAMP:
        return _timestamp_expression(s)
    if logical is LogicalType.FLOAT:
        return f"try_cast({s} AS DOUBLE)"
    if spec.name == "interactions" and col == "kind":
        return f"lower({s})"
    if col in IDENTIFIER_COLUMNS and col in spec.column_names and not spec.column(col).required:
        return f"CASE WHEN {_reads_as_missing(s)} THEN NULL ELSE {s} END"
    return s


def _attribute_types(con: duckdb.DuckDBPyConnection, rows: _Rows, src: _Source) -> dict[str, LogicalType]:
    """Customer attributes outside the contract: float64 when every value is a plain number."""
    spec = TABLES[src.table]
    extras = [k for k in src.mapping if k not in spec.column_names]
    types: dict[str, LogicalType] = {}
    for name in extras:
        col = f"CAST(r.{_ident(src.mapping[name])} AS VARCHAR)"
        numeric = con.execute(
            f"SELECT count(v) > 0 AND bool_and(isfinite(try_cast(v AS DOUBLE)) AND NOT "
            f"regexp_matches(v, '^[+-]?0[0-9]')) FROM (SELECT nullif(trim({col}), '') AS v FROM {rows.relation})"
        ).fetchall()[0][0]
        types[name] = LogicalType.FLOAT if numeric else LogicalType.STRING
    return types


# ----------------------------------------------------------------------------- checking


@dataclass
class _Checked:
    """Intermediate state of one table while it is being checked."""

    src: _Source
    rows: _Rows
    checked: str  # table: __rid, __rule, __hr, __hk (+ the accepted columns when materialised)
    normalised: str  # SQL WITH-clause defining p: __rid plus the parsed columns of every row
    served: str  # the same, trimming only the columns that need it (for the view)
    outputs: list[str]  # SELECT list over p giving the accepted columns
    columns: list[str]  # accepted columns, in output order (margin included for transactions)
    rules: list[_Rule]
    materialised: bool  # accepted columns stored in `checked` (else a view reads the Parquet file)
    n_read: int = 0
    n_rejected: int = 0


def _in_place(rows: _Rows, spec: TableSpec, columns: Sequence[str], attribute_types: dict[str, LogicalType],
              mapping: dict[str, str]) -> bool:
    """Serve the accepted rows as a view over the Parquet file when reading it again is cheap."""
    # Parsing timestamps or numbers from text on every feature query costs more than storing
    # the parsed table once; native timestamps and numbers cost nothing to read again.
    if not rows.in_place:
        return False
    for col in columns:
        logical = _logical_type(spec, col, attribute_types)
        if logical is not LogicalType.STRING and not _is_direct(logical, rows.types[mapping[col]]):
            return False
    return True


def _check_rows(
    con: duckdb.DuckDBPyConnection,
    src: _Source,
    rows: _Rows,
    limit: datetime,
    known_customers: str | None,
    margin_rate: float,
    plausibility: PlausibilityRules,
) -> _Checked:
    """One pass: parse every column, mark each row with the first rule it breaks, hash it."""
    spec = TABLES[src.table]
    attribute_types = _attribute_types(con, rows, src)
    columns = list(src.mapping)
    rules = (_column_rules(spec, columns, plausibility.min_date) + _table_rules(spec.name, columns, plausibility)
             + _future_rules(spec.name, columns, limit))
    known_join = ""
    if known_customers is not None:
        rules.append(_Rule(UNKNOWN_CUSTOMER, "customer_id", "k.customer_id IS NULL"))
        known_join = f"LEFT JOIN {known_customers} k ON k.customer_id = p.customer_id"
    materialised = not _in_place(rows, spec, columns, attribute_types, src.mapping)
    normalised = _normalised_sql(src, rows, attribute_types, flag_untrimmed=not materialised)
    case = " ".join(f"WHEN {rule.condition} THEN {i}" for i, rule in enumerate(rules))
    rule_sql = f"CASE {case} END" if rules else "NULL"
    outputs = _finalise_expressions(spec.name, columns, margin_rate, prefix="p.", plausibility=plausibility)
    final_columns = columns + (["margin"] if spec.name == "transactions" and "margin" not in columns else [])
    key = _duplicate_key(spec, final_columns)
    # Row and key hashes are taken here, while the values are at hand: they find duplicates
    # and their sum over accepted rows is the data hash.
    row_hash = f"hash({', '.join(_ident(c) for c in final_columns)})"
    key_hash = f"CASE WHEN {_key_filled(key)} THEN hash({', '.join(key)}) END" if key else "NULL"
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
            raise _read_error(src, exc) from exc
        raise
    n_read, n_rejected = con.execute(f"SELECT count(*), count(__rule) FROM {checked}").fetchall()[0]
    served = normalised
    if not materialised:
        served = _normalised_sql(src, rows, attribute_types, trimmed=_untrimmed_columns(con, checked, columns))
    return _Checked(src, rows, checked, normalised, served, outputs, final_columns, rules, materialised,
                    n_read, n_rejected)


# Text columns tracked one bit each in __untrimmed (a BIGINT); further ones are always trimmed.
_MAX_TRACKED_TEXT_COLUMNS = 62


def _needs_trimming(text_sql: str) -> str:
    return f"coalesce({text_sql} = '' OR starts_with({text_sql}, ' ') OR ends_with({text_sql}, ' '), false)"


def _normalised_sql(
    src: _Source,
    rows: _Rows,
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
        logical, native = _logical_type(spec, c, attribute_types), rows.types[src.mapping[c]]
        column_sql = f"r.{_ident(src.mapping[c])}"
        text_sql = column_sql if native == "VARCHAR" else f"CAST({column_sql} AS VARCHAR)"
        direct = _is_direct(logical, native)
        tracked = not direct and i < _MAX_TRACKED_TEXT_COLUMNS
        if trimmed is not None and tracked and c not in trimmed:
            found.append(f"{text_sql} AS {_text(c)}")
        else:
            found.append(f"{_found_expression(column_sql, logical, native)} AS {_text(c)}")
        parsed.append(f"{_parse_expression(spec, c, logical, native)} AS {_ident(c)}")
        if flag_untrimmed and tracked:
            flags.append(f"(CAST({_needs_trimming(text_sql)} AS BIGINT) << {i})")
    if flag_untrimmed:
        found.append(f"{' | '.join(flags) if flags else 'CAST(0 AS BIGINT)'} AS __untrimmed")
    return (
        f"WITH t AS (SELECT {rows.rid} AS __rid, {', '.join(found)} FROM {rows.relation}), "
        f"p AS (SELECT *, {', '.join(parsed)} FROM t)"
    )


def _untrimmed_columns(con: duckdb.DuckDBPyConnection, checked: str, columns: Sequence[str]) -> set[str]:
    """Text columns where some value is empty or space-padded (from the __untrimmed bits)."""
    mask = con.execute(f"SELECT coalesce(bit_or(__untrimmed), 0) FROM {checked}").fetchall()[0][0]
    return {c for i, c in enumerate(columns) if i < _MAX_TRACKED_TEXT_COLUMNS and (mask >> i) & 1}


def _duplicate_key(spec: TableSpec, columns: Sequence[str]) -> list[str]:
    """SQL expressions identifying one logical row, or [] when conflicts cannot be judged."""
    if not spec.key or not all(k in columns for k in spec.key):
        return []
    return [_ident(k) for k in spec.key]


def _key_filled(key: Sequence[str]) -> str:
    """SQL: the row has a key (an empty optional key column, such as line_id, means it has none)."""
    return " AND ".join(f"{k} IS NOT NULL" for k in key) if key else "false"


def _candidate_rows(chk: _Checked, candidates: str) -> str:
    """FROM clause: accepted columns and row hash (__h) of the candidate rows only."""
    if chk.materialised:
        return f"(SELECT c.*, c.__hr AS __h FROM {chk.checked} c WHERE c.__rid IN (SELECT __rid FROM {candidates}))"
    # Read the Parquet file again, but only when some rows may be duplicates.
    return (
        f"({chk.normalised} SELECT p.__rid, {', '.join(chk.outputs)}, c.__hr AS __h FROM p "
        f"JOIN {chk.checked} c ON c.__rid = p.__rid WHERE p.__rid IN (SELECT __rid FROM {candidates}))"
    )


def _find_duplicates(con: duckdb.DuckDBPyConnection, chk: _Checked, drop_unkeyed_copies: bool) -> tuple[str, int]:
    """Temp table of the duplicates to quarantine among rule-passing rows, and the copies kept.

    A copy of a row that has a key is always quarantined; a copy of a row without one only
    when `drop_unkeyed_copies` (otherwise it stays accepted and is counted).
    """
    spec = TABLES[chk.src.table]
    cols = ", ".join(_ident(c) for c in chk.columns)
    key = _duplicate_key(spec, chk.columns)
    candidates = _duplicate_candidates(con, chk, key)
    dups = f"__dup_{chk.src.table}"
    if key:
        partition = ", ".join(key)
        conflict = (f"{_key_filled(key)} AND min(__h) OVER (PARTITION BY {partition}) <> "
                    f"max(__h) OVER (PARTITION BY {partition})")
        key_text = " || '|' || ".join(f"coalesce(CAST({k} AS VARCHAR), '')" for k in key)
        key_names = ",".join(spec.key)
    else:
        conflict, key_text, key_names = "false", "''", ""
    if not con.execute(f"SELECT count(*) FROM {candidates}").fetchall()[0][0]:
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE {dups} (__rid BIGINT, reason VARCHAR, "column" VARCHAR, '
            "value VARCHAR, __first BIGINT, __kept BOOLEAN)"
        )
        con.execute(f"DROP TABLE IF EXISTS {candidates}")
        return dups, 0
    # Exact comparison, but only over the few rows whose hashes collide (see candidates).
    # __first is the row id of the first copy; it becomes a line number in the quarantine.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {dups} AS
        SELECT __rid,
               CASE WHEN __rn > 1 THEN '{EXACT_DUPLICATE}' ELSE '{CONFLICTING_DUPLICATE}' END AS reason,
               CASE WHEN __rn > 1 THEN '(whole row)' ELSE {_lit(key_names)} END AS "column",
               CASE WHEN __rn > 1 THEN NULL ELSE __key END AS value,
               CASE WHEN __rn > 1 THEN __first END AS __first,
               NOT __conflict AND NOT __keyed AND {"false" if drop_unkeyed_copies else "true"} AS __kept
        FROM (
            SELECT __rid,
                   row_number() OVER (PARTITION BY {cols} ORDER BY __rid) AS __rn,
                   min(__rid) OVER (PARTITION BY {cols}) AS __first,
                   coalesce({conflict}, false) AS __conflict,
                   coalesce({_key_filled(key)}, false) AS __keyed,
                   {key_text} AS __key
            FROM {_candidate_rows(chk, candidates)}
        )
        WHERE __rn > 1 OR __conflict
        """
    )
    con.execute(f"DROP TABLE IF EXISTS {candidates}")
    kept = con.execute(f"SELECT count(*) FROM {dups} WHERE __kept").fetchall()[0][0]
    if kept:
        con.execute(f"DELETE FROM {dups} WHERE __kept")
    return dups, int(kept)


def _duplicate_candidates(con: duckdb.DuckDBPyConnection, chk: _Checked, key: list[str]) -> str:
    """Rows that may be duplicates: their key (or, for a row without a key, its row hash) repeats."""
    # Grouping by 64-bit hashes is much cheaper than windows over every column of every row;
    # a hash collision only adds a candidate, which the exact pass then clears. Two copies of
    # a row share its key, so with a key one grouping finds exact and conflicting duplicates.
    candidates = f"__cand_{chk.src.table}"
    by = "coalesce(__hk, __hr)" if key else "__hr"
    repeated = _repeated_hashes(con, chk.checked, by)
    if len(repeated):
        hashes = f"__rep_{chk.src.table}"
        con.register(hashes, pd.DataFrame({"h": repeated}))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {candidates} AS SELECT __rid FROM {chk.checked} "
            f"WHERE {by} IN (SELECT h FROM {hashes})"
        )
        con.unregister(hashes)
    else:  # the usual case: no repeated hash, no need to scan the rows again
        con.execute(f"CREATE OR REPLACE TEMP TABLE {candidates} (__rid BIGINT)")
    return candidates


def _repeated_hashes(con: duckdb.DuckDBPyConnection, checked: str, by: str) -> np.ndarray:
    """Hash values that occur more than once among the rule-passing rows."""
    # Sorting the 64-bit hashes in numpy takes about a seventh of the CPU of DuckDB's
    # GROUP BY over millions of distinct values, and less memory than its hash table.
    hashes = np.asarray(con.execute(f"SELECT {by} AS h FROM {checked} WHERE __rule IS NULL").fetchnumpy()["h"])
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


def _finalise_expressions(table: str, columns: Sequence[str], margin_rate: float, prefix: str,
                          plausibility: PlausibilityRules | None = None) -> list[str]:
    """SELECT list for the accepted columns: normalised columns plus derived defaults, money in one currency."""
    margin, amount = f'{prefix}"margin"', f'{prefix}"amount"'
    paid_amount, paid_at = f'{prefix}"paid_amount"', f'{prefix}"paid_at"'
    exprs: dict[str, str] = {}
    for col in columns:
        if table == "transactions" and col == "margin":
            exprs[col] = f"coalesce({margin}, {amount} * {margin_rate!r})"
        elif table == "invoices" and col == "paid_amount" and "paid_at" in columns:
            exprs[col] = f"CASE WHEN {paid_amount} IS NULL AND {paid_at} IS NOT NULL THEN {amount} ELSE {paid_amount} END"
        else:
            exprs[col] = f"{prefix}{_ident(col)}"
    if table == "transactions" and "margin" not in columns:
        exprs["margin"] = f"{amount} * {margin_rate!r}"
    conversion = plausibility.currency if plausibility is not None else None
    if conversion is not None and table in MONEY_COLUMNS and "currency" in columns:
        factor = currency_factor_sql(conversion, f'{prefix}"currency"')
        for col in MONEY_COLUMNS[table]:
            if col in exprs:
                exprs[col] = f"({exprs[col]}) * {factor}"
        exprs["currency"] = _lit(conversion.base)
    return [f"{sql} AS {_ident(col)}" for col, sql in exprs.items()]


def _accepted_hash_sum(con: duckdb.DuckDBPyConnection, chk: _Checked, dups: str) -> tuple[int, int]:
    """Rows accepted and the sum of their row hashes (the table's part of the data hash)."""
    count, total = con.execute(
        f"SELECT count(*), coalesce(sum(CAST(__hr AS HUGEINT)), 0) FROM {chk.checked} "
        f"WHERE __rule IS NULL AND __rid NOT IN (SELECT __rid FROM {dups})"
    ).fetchall()[0]
    return int(count), int(total)


def _keep_accepted(con: duckdb.DuckDBPyConnection, chk: _Checked, dups: str, n_dups: int) -> None:
    """Make the accepted rows available under the table's name (a table, or a view on the file)."""
    table = _ident(chk.src.table)
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


def _quarantine_frame(con: duckdb.DuckDBPyConnection, chk: _Checked, dups: str, n_dups: int) -> pd.DataFrame:
    """Quarantined rows of one table with reason, column, raw value and the raw row as JSON."""
    src = chk.src
    empty = not chk.n_rejected and not n_dups
    # With nothing quarantined the source is not read (LIMIT 0) and lines are not counted,
    # yet the frame keeps the columns and types of a non-empty one.
    line = "({rid} + 1)" if empty else _line_function(con, src, chk.n_read)
    source_rows = f"(SELECT {chk.rows.rid} AS __src_rid, r.* FROM {chk.rows.relation}{' LIMIT 0' if empty else ''}) r"
    reason_case = " ".join(f"WHEN {i} THEN {_lit(r.reason)}" for i, r in enumerate(chk.rules)) or "WHEN -1 THEN NULL"
    column_case = " ".join(f"WHEN {i} THEN {_lit(r.column)}" for i, r in enumerate(chk.rules)) or "WHEN -1 THEN NULL"
    value_case = " ".join(
        f"WHEN {i} THEN CAST(r.{_ident(src.mapping[r_.column])} AS VARCHAR)" for i, r_ in enumerate(chk.rules)
    ) or "WHEN -1 THEN NULL"
    raw_json = "json_object(" + ", ".join(f"{_lit(c)}, CAST(r.{_ident(c)} AS VARCHAR)" for c in src.columns) + ")"
    first_line = line.format(rid="q.__first")
    # The raw text is taken after the join, so only the quarantined rows are cast to text.
    frame = con.execute(
        f"""
        SELECT {_lit(src.table)} AS "table", {_lit(src.display)} AS source, {line.format(rid="q.__rid")} AS line,
               coalesce(q.dup_column, CASE q.__rule {column_case} END) AS "column",
               CASE WHEN q.dup_reason IS NULL THEN CASE q.__rule {value_case} END
                    WHEN q.__first IS NOT NULL THEN 'same as {src.line_kind} ' || {first_line}
                    ELSE q.dup_value END AS value,
               coalesce(q.dup_reason, CASE q.__rule {reason_case} END) AS reason,
               CAST({raw_json} AS VARCHAR) AS raw
        FROM (
            SELECT __rid, __rule, NULL AS dup_reason, NULL AS dup_column, NULL AS dup_value,
                   CAST(NULL AS BIGINT) AS __first
            FROM {chk.checked} WHERE __rule IS NOT NULL
            UNION ALL
            SELECT __rid, NULL, reason, "column", value, __first FROM {dups}
        ) q JOIN {source_rows} ON r.__src_rid = q.__rid
        ORDER BY q.__rid
        """
    ).df()
    frame["line"] = frame["line"].astype("int64")
    # Control characters are shown escaped so the quarantine file and messages stay printable.
    frame["value"] = frame["value"].map(printable, na_action="ignore")
    frame["raw"] = frame["raw"].map(lambda raw: raw.translate(_JSON_ESCAPED_CONTROLS), na_action="ignore")
    return frame


def _drop_scratch(con: duckdb.DuckDBPyConnection, table: str) -> None:
    for prefix in ("__raw_", "__chk_", "__dup_", "__lines_"):
        con.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
    con.execute(f"DROP TABLE IF EXISTS __lines_{table}_t")


def _validate_table(
    con: duckdb.DuckDBPyConnection, src: _Source, limit: datetime, known: str | None, margin_rate: float,
    duplicate_lines: str, plausibility: PlausibilityRules,
) -> tuple[TableReport, pd.DataFrame, int]:
    """Check and accept one table; returns its report, its quarantined rows and its row-hash sum."""
    rows = _rows(con, src)
    chk = _check_rows(con, src, rows, limit, known, margin_rate, plausibility)
    # The policy is about order lines only; a copied invoice, customer or interaction is a fault.
    drop_unkeyed_copies = src.table != "transactions" or duplicate_lines == "drop_exact"
    dups, kept_copies = _find_duplicates(con, chk, drop_unkeyed_copies)
    n_dups = con.execute(f"SELECT count(*) FROM {dups}").fetchall()[0][0]
    quarantine = _with_set_aside(src, _quarantine_frame(con, chk, dups, n_dups))
    accepted, hash_sum = _accepted_hash_sum(con, chk, dups)
    _keep_accepted(con, chk, dups, n_dups)
    _drop_scratch(con, src.table)
    reasons = {str(k): int(v) for k, v in quarantine["reason"].value_counts().items()}
    report = TableReport(chk.n_read + len(src.set_aside), accepted, len(quarantine), reasons, kept_copies)
    if report.accepted + report.quarantined != report.read:
        raise RuntimeError(
            f"{src.display}: internal error, {report.read} rows read but {report.accepted} accepted "
            f"+ {report.quarantined} quarantined; please report this with the input file"
        )
    logger.info("%s: read %d, accepted %d (%d exact copies kept), quarantined %d %s", src.display,
                report.read, report.accepted, kept_copies, report.quarantined, reasons)
    return report, quarantine, hash_sum


def _with_set_aside(src: _Source, quarantine: pd.DataFrame) -> pd.DataFrame:
    """The quarantine of a table with the records its CSV scan kept out of the read, in line order."""
    if not src.set_aside:
        return quarantine
    frame = pd.DataFrame(
        [{"table": src.table, "source": src.display, "line": r.line, "column": r.column, "value": r.value,
          "reason": r.reason, "raw": r.raw} for r in src.set_aside]
    ).astype({"line": "int64"})
    both = pd.concat([frame, quarantine], ignore_index=True) if len(quarantine) else frame
    return both.sort_values("line", kind="stable", ignore_index=True)


def _known_customers(con: duckdb.DuckDBPyConnection, present: Sequence[str]) -> str:
    """Create the view of customers that invoices and interactions may refer to."""
    origin = "customers" if "customers" in present else "transactions"
    con.execute(f"CREATE OR REPLACE TEMP VIEW __known_customers AS SELECT DISTINCT customer_id FROM {origin}")
    return "__known_customers"


# ----------------------------------------------------------------------------- results


def _refuse_mixed_currencies(con: duckdb.DuckDBPyConnection, sources: dict[str, _Source],
                             plausibility: PlausibilityRules) -> None:
    """Amounts in several currencies would be added up as one: refuse unless a conversion is configured."""
    if plausibility.currency is not None:
        return
    displays = {table: src.display for table, src in sources.items()}
    message = mixed_currency_message(currency_counts(con, displays), displays)
    if message is not None:
        raise MixedCurrencyError(message)


def _with_plausibility_warnings(con: duckdb.DuckDBPyConnection, reports: dict[str, TableReport],
                                plausibility: PlausibilityRules) -> dict[str, TableReport]:
    """The reports with the warnings about stale tables and whale orders added to their table's."""
    warnings: dict[str, list[str]] = {table: [] for table in reports}
    stale = stale_source_warnings(last_event_times(con, list(reports)), plausibility.max_source_lag_days)
    for table, warning in stale.items():
        warnings[table].append(warning)
    whales, figures = whale_orders(con, plausibility.whale_order)
    warnings["transactions"] += whale_warnings(whales, figures, plausibility.whale_order)
    # Logged at info only: the report carries them, and the CLI prints them once with its summary.
    for table, lines in warnings.items():
        for line in lines:
            logger.info("%s: %s", table, line)
    return {table: replace(rep, warnings=rep.warnings + tuple(warnings[table])) for table, rep in reports.items()}


def _data_hash(con: duckdb.DuckDBPyConnection, counts_and_sums: dict[str, tuple[int, int]]) -> str:
    """Order-independent hash of the accepted content (sum of row hashes per table)."""
    # DuckDB's hash() is deterministic for a given DuckDB version (pinned), not across versions.
    # The row hashes were summed while checking, so the accepted rows are not read again.
    digest = hashlib.sha256()
    for table in sorted(counts_and_sums):
        described = con.execute(f"DESCRIBE {_ident(table)}").fetchall()
        count, total = counts_and_sums[table]
        schema = ",".join(f"{row[0]}:{row[1]}" for row in described)
        digest.update(f"{table}|{schema}|{count}|{total}\n".encode())
    return digest.hexdigest()


def _first_quarantined(result: ValidatedData, table: str) -> str:
    """'first: <source> line 7, column customer_id, value 'C\\x001' (invalid_characters)'."""
    rows = result.quarantine[result.quarantine["table"] == table]
    if rows.empty:
        return ""
    row = rows.iloc[0]
    value = "(empty)" if pd.isna(row["value"]) else f"'{shown(row['value'])}'"
    kind = result.line_kind.get(table, "line")
    return (f"; first: {row['source']} {kind} {row['line']}, column {row['column']}, "
            f"value {value} ({row['reason']})")


def _threshold_message(result: ValidatedData, limit: float) -> str | None:
    """Message naming each table above the quarantine limit, or None when all are within it."""
    parts = []
    for table, rep in result.report.items():
        if rep.quarantined_share <= limit:
            continue
        top = sorted(rep.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        parts.append(
            f"{table}: {rep.quarantined_share:.1%} of rows quarantined ({rep.quarantined:,} of "
            f"{rep.read:,} read), above the limit of {limit:.1%}; top reasons: "
            + ", ".join(f"{reason} {count:,}" for reason, count in top)
            + _first_quarantined(result, table)
        )
    if not parts:
        return None
    return (
        "too many rows quarantined. " + "; ".join(parts) + ". The quarantine lists each row "
        "with its source, line (row number for Parquet/DuckDB), column, value and reason: fix "
        "the source, or raise the limit with max_quarantine_share (a share between 0 and 1, "
        f"now {limit})."
    )


# ----------------------------------------------------------------------------- the run's work folder

_WORK_PREFIX = "validated-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_work(work_dir: Path) -> None:
    """Remove work folders left by runs whose process is gone (killed, crashed)."""
    for folder in work_dir.glob(f"{_WORK_PREFIX}*"):
        pid_text = folder.name[len(_WORK_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(folder, ignore_errors=True)


def _make_work_folder(work_dir: Path) -> Path:
    """A fresh folder for this validation, named after the process so stale ones can be found."""
    work_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(work_dir)
    return Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-", dir=work_dir))


def _close_and_remove(raw_con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Close the validated database and delete the work folder (its database, spill and snapshots)."""
    try:
        raw_con.close()
    except duckdb.Error:  # already closed
        pass
    shutil.rmtree(folder, ignore_errors=True)


def _snapshot_files(sources: dict[str, _Source], folder: Path) -> dict[str, _Source]:
    """Copy Parquet sources into the work folder: views read the copy, so a rewrite cannot leak in."""
    # The accepted rows of a Parquet file are a view over it (see _in_place); reading a copy
    # keeps the validated data fixed for the run even if the source is rewritten meanwhile.
    snapped = {}
    for table, src in sources.items():
        if src.kind == "parquet":
            copy = folder / "sources" / f"{table}.parquet"
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(src.file, copy)
            src = replace(src, file=str(copy), relation=f"read_parquet({_lit(str(copy))})")
        snapped[table] = src
    return snapped


def _connect(database: str | Path | None, memory_limit: str | None, spill: Path | None) -> Any:
    """Ibis DuckDB backend in memory, or on disk for data larger than memory."""
    con = ibis.duckdb.connect() if database is None else ibis.duckdb.connect(database=str(database))
    con.con.execute("SET TimeZone = 'UTC'")
    if memory_limit is not None:
        con.con.execute(f"SET memory_limit = {_lit(memory_limit)}")
    if spill is not None:
        con.con.execute(f"SET temp_directory = {_lit(str(spill))}")
    return con


def load_and_validate(
    source: str | Path,
    *,
    clock: datetime,
    data_end: datetime | None = None,
    max_quarantine_share: float = 0.05,
    default_margin_rate: float = 0.3,
    database: str | Path | None = None,
    work_dir: str | Path | None = None,
    memory_limit: str | None = None,
    duplicate_lines: str = "keep",
    plausibility: PlausibilityRules | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> ValidatedData:
    """Read `source` (directory of table files or DuckDB file), validate it and quarantine bad rows.

    Accepted Parquet tables with native timestamp and number columns are views over the file
    (no copy in memory); other tables are stored in DuckDB: in memory, or in `database`.
    `work_dir`: a fresh folder is made inside it for this run's DuckDB file (unless `database`
    is given), spill files and a copy of the Parquet sources; it is removed when the
    connection is released or the process exits, and folders of dead processes are removed
    on the next call. Without it Parquet files are read in place and must not change while
    the result is in use. `memory_limit` (e.g. "2GB") caps DuckDB's memory for validation
    and for the feature queries run later on the same connection. `duplicate_lines` ("keep"
    or "drop_exact"): what happens to exact copies of a transaction line without a line id
    (see the module docstring). `plausibility`: the minimum date, the currency conversion and
    the limits of the stale-table and whale-order warnings (default: `PlausibilityRules()`).
    `max_field_bytes`: a CSV field longer than this (in UTF-8 bytes) quarantines its row as
    ``field_too_long``.

    Raises InputContractError for file-level problems (before anything is written), its
    subclass MixedCurrencyError for amounts in several currencies without a conversion, and
    QuarantineThresholdError when a table's quarantined share exceeds
    `max_quarantine_share` (its `.result` holds the report and the quarantine).
    """
    if not 0 <= max_quarantine_share <= 1 or not math.isfinite(max_quarantine_share):
        raise ValueError(f"max_quarantine_share must be between 0 and 1, got {max_quarantine_share}")
    if duplicate_lines not in DUPLICATE_LINE_POLICIES:
        raise ValueError(
            f"duplicate_lines must be one of {', '.join(DUPLICATE_LINE_POLICIES)}, got {duplicate_lines!r}"
        )
    if max_field_bytes < 1:
        raise ValueError(f"max_field_bytes must be at least 1, got {max_field_bytes}")
    source = Path(source)
    # Cleaned copies of CSV files are read into DuckDB during validation, then no longer needed.
    scratch = _Scratch(Path(work_dir) if work_dir is not None else None)
    try:
        return _load_and_validate(source, scratch, clock=clock, data_end=data_end,
                                  max_quarantine_share=max_quarantine_share, default_margin_rate=default_margin_rate,
                                  database=database, work_dir=work_dir, memory_limit=memory_limit,
                                  duplicate_lines=duplicate_lines, plausibility=plausibility,
                                  max_field_bytes=max_field_bytes)
    finally:
        scratch.remove()


def _load_and_validate(
    source: Path, scratch: _Scratch, *, clock: datetime, data_end: datetime | None, max_quarantine_share: float,
    default_margin_rate: float, database: str | Path | None, work_dir: str | Path | None, memory_limit: str | None,
    duplicate_lines: str, plausibility: PlausibilityRules | None, max_field_bytes: int,
) -> ValidatedData:
    warnings: list[str] = []
    sources = _discover_sources(source, warnings, max_field_bytes=max_field_bytes, scratch=scratch)
    limit = _to_naive_utc(clock)
    if data_end is not None:
        limit = min(limit, _to_naive_utc(data_end))
    folder = _make_work_folder(Path(work_dir)) if work_dir is not None else None
    if folder is not None:
        sources = _snapshot_files(sources, folder)
        database = database if database is not None else folder / "validated.duckdb"
    database_existed = database is not None and Path(database).exists()
    con = _connect(database, memory_limit, folder / "spill" if folder is not None else None)
    if folder is not None:
        # Bound to the backend, which every Ibis table of the result references.
        weakref.finalize(con, _close_and_remove, con.con, folder)
    try:
        result = _validate_all(con, sources, limit, default_margin_rate, duplicate_lines,
                               plausibility if plausibility is not None else PlausibilityRules())
        result.warnings.extend(warnings)
    except InputContractError:
        con.disconnect()
        if database is not None and not database_existed:
            Path(database).unlink(missing_ok=True)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    message = _threshold_message(result, max_quarantine_share)
    if message is not None:
        raise QuarantineThresholdError(message, result)
    return result


def _validate_all(
    con: Any, sources: dict[str, _Source], limit: datetime, margin_rate: float, duplicate_lines: str,
    plausibility: PlausibilityRules,
) -> ValidatedData:
    """Validate the tables in contract order and assemble the result."""
    raw_con: duckdb.DuckDBPyConnection = con.con
    databases = {src.database for src in sources.values() if src.database}
    for database in databases:  # at most one: a source is one directory or one database
        raw_con.execute(f"ATTACH {_lit(database)} AS __src (READ_ONLY)")
    reports: dict[str, TableReport] = {}
    frames: list[pd.DataFrame] = []
    sums: dict[str, tuple[int, int]] = {}
    done: list[str] = []
    for table, src in sources.items():
        known = _known_customers(raw_con, done) if table in _CHECKED_FOR_UNKNOWN_CUSTOMER else None
        reports[table], frame, hash_sum = _validate_table(raw_con, src, limit, known, margin_rate, duplicate_lines,
                                                          plausibility)
        sums[table] = (reports[table].accepted, hash_sum)
        frames.append(frame)
        done.append(table)
    raw_con.execute("DROP VIEW IF EXISTS __known_customers")
    if databases:
        raw_con.execute("DETACH __src")
    _refuse_mixed_currencies(raw_con, sources, plausibility)
    reports = _with_plausibility_warnings(raw_con, reports, plausibility)
    quarantine = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    start, end = raw_con.execute("SELECT min(ts), max(ts) FROM transactions").fetchall()[0]
    return ValidatedData(
        con=con,
        tables={t: con.table(t) for t in done},
        report=reports,
        quarantine=quarantine[list(QUARANTINE_COLUMNS)],
        data_hash=_data_hash(raw_con, sums),
        data_start=start,
        data_end=end,
        sources={t: s.display for t, s in sources.items()},
        line_kind={t: s.line_kind for t, s in sources.items()},
    )
