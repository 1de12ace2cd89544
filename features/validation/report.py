"""What validation hands back: the accepted tables and their report, and the errors about the data as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import pandas as pd

from features.attributes import AttributeChoice
from features.contract import InputContractError
from features.io.source_files import shown
from features.safe_csv import safe_text_frame


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


def threshold_message(result: ValidatedData, limit: float) -> str | None:
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
