"""`load_and_validate`: find the source's tables, check each, and hand back the accepted ones.

Tables are checked in contract order (transactions, customers, invoices, interactions), so
invoices and interactions are checked against the customers accepted before them. Then the
accepted tables are checked as a whole: amounts in several currencies without a conversion
stop the run, and stale tables and whale orders become warnings.
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
import weakref
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from features.contract import InputContractError
from features.io.rows import source_rows
from features.io.source_files import DEFAULT_MAX_FIELD_BYTES
from features.io.sources import Source, discover_sources
from features.io.work_folder import Scratch, close_and_remove, connect, make_work_folder, snapshot_files
from features.sql_text import quote_ident, quote_literal
from features.validation.checks import accepted_hash_sum, check_rows, drop_scratch, keep_accepted
from features.validation.duplicates import find_duplicates
from features.validation.plausibility import (
    PlausibilityRules,
    currency_counts,
    last_event_times,
    mixed_currency_message,
    stale_source_warnings,
    whale_orders,
    whale_warnings,
)
from features.validation.quarantine import QUARANTINE_COLUMNS, quarantine_frame, with_set_aside
from features.validation.report import (
    MixedCurrencyError,
    QuarantineThresholdError,
    TableReport,
    ValidatedData,
    threshold_message,
)

logger = logging.getLogger(__name__)

_CHECKED_FOR_UNKNOWN_CUSTOMER = ("invoices", "interactions")
# What to do with exact copies of a transaction line that has no line id (the package docstring).
DUPLICATE_LINE_POLICIES: tuple[str, ...] = ("keep", "drop_exact")


def _to_naive_utc(moment: datetime | date) -> datetime:
    """Naive datetimes are UTC already; aware ones are converted; dates mean midnight UTC."""
    if not isinstance(moment, datetime):
        return datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _validate_table(
    con: duckdb.DuckDBPyConnection, src: Source, limit: datetime, known: str | None, margin_rate: float,
    duplicate_lines: str, plausibility: PlausibilityRules,
) -> tuple[TableReport, pd.DataFrame, int]:
    """Check and accept one table; returns its report, its quarantined rows and its row-hash sum."""
    rows = source_rows(con, src)
    chk = check_rows(con, src, rows, limit, known, margin_rate, plausibility)
    # The policy is about order lines only; a copied invoice, customer or interaction is a fault.
    drop_unkeyed_copies = src.table != "transactions" or duplicate_lines == "drop_exact"
    dups, kept_copies = find_duplicates(con, chk, drop_unkeyed_copies)
    n_dups = con.execute(f"SELECT count(*) FROM {dups}").fetchall()[0][0]
    quarantine = with_set_aside(src, quarantine_frame(con, chk, dups, n_dups))
    accepted, hash_sum = accepted_hash_sum(con, chk, dups)
    keep_accepted(con, chk, dups, n_dups)
    drop_scratch(con, src.table)
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


def _known_customers(con: duckdb.DuckDBPyConnection, present: Sequence[str]) -> str:
    """Create the view of customers that invoices and interactions may refer to."""
    origin = "customers" if "customers" in present else "transactions"
    con.execute(f"CREATE OR REPLACE TEMP VIEW __known_customers AS SELECT DISTINCT customer_id FROM {origin}")
    return "__known_customers"


def _refuse_mixed_currencies(con: duckdb.DuckDBPyConnection, sources: dict[str, Source],
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
        described = con.execute(f"DESCRIBE {quote_ident(table)}").fetchall()
        count, total = counts_and_sums[table]
        schema = ",".join(f"{row[0]}:{row[1]}" for row in described)
        digest.update(f"{table}|{schema}|{count}|{total}\n".encode())
    return digest.hexdigest()


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
    (see the package docstring). `plausibility`: the minimum date, the currency conversion and
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
    scratch = Scratch(Path(work_dir) if work_dir is not None else None)
    try:
        return _load_and_validate(source, scratch, clock=clock, data_end=data_end,
                                  max_quarantine_share=max_quarantine_share, default_margin_rate=default_margin_rate,
                                  database=database, work_dir=work_dir, memory_limit=memory_limit,
                                  duplicate_lines=duplicate_lines, plausibility=plausibility,
                                  max_field_bytes=max_field_bytes)
    finally:
        scratch.remove()


def _load_and_validate(
    source: Path, scratch: Scratch, *, clock: datetime, data_end: datetime | None, max_quarantine_share: float,
    default_margin_rate: float, database: str | Path | None, work_dir: str | Path | None, memory_limit: str | None,
    duplicate_lines: str, plausibility: PlausibilityRules | None, max_field_bytes: int,
) -> ValidatedData:
    warnings: list[str] = []
    sources = discover_sources(source, warnings, max_field_bytes=max_field_bytes, scratch=scratch.folder)
    limit = _to_naive_utc(clock)
    if data_end is not None:
        limit = min(limit, _to_naive_utc(data_end))
    folder = make_work_folder(Path(work_dir)) if work_dir is not None else None
    if folder is not None:
        sources = snapshot_files(sources, folder)
        database = database if database is not None else folder / "validated.duckdb"
    database_existed = database is not None and Path(database).exists()
    con = connect(database, memory_limit, folder / "spill" if folder is not None else None)
    if folder is not None:
        # Bound to the backend, which every Ibis table of the result references.
        weakref.finalize(con, close_and_remove, con.con, folder)
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
    message = threshold_message(result, max_quarantine_share)
    if message is not None:
        raise QuarantineThresholdError(message, result)
    return result


def _validate_all(
    con: Any, sources: dict[str, Source], limit: datetime, margin_rate: float, duplicate_lines: str,
    plausibility: PlausibilityRules,
) -> ValidatedData:
    """Validate the tables in contract order and assemble the result."""
    raw_con: duckdb.DuckDBPyConnection = con.con
    databases = {src.database for src in sources.values() if src.database}
    for database in databases:  # at most one: a source is one directory or one database
        raw_con.execute(f"ATTACH {quote_literal(database)} AS __src (READ_ONLY)")
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
