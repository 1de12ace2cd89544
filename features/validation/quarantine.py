"""The quarantine: every rejected row with its table, source, line, column, value, reason and raw row.

``line`` is the physical line in a CSV file and the 1-based row number otherwise; ``value`` is
the cell as found with each control character written ``\\xHH`` so the file stays printable;
``raw`` is the row as found, in JSON, with its exact text.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from features.io.rows import line_number_sql
from features.io.sources import Source
from features.sql_text import quote_ident, quote_literal
from features.validation.checks import Checked

QUARANTINE_COLUMNS: tuple[str, ...] = ("table", "source", "line", "column", "value", "reason", "raw")


_CONTROL_CODES = (*range(0x20), *range(0x7F, 0xA0))
_PRINTABLE_CONTROLS = {code: f"\\x{code:02x}" for code in _CONTROL_CODES}
# JSON already escapes C0; DEL and C1 are legal in JSON text but unprintable.
_JSON_ESCAPED_CONTROLS = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}


def printable(text: str) -> str:
    """The text with each control character written as \\xHH (C0, DEL, C1), the rest unchanged."""
    return text.translate(_PRINTABLE_CONTROLS)


def quarantine_frame(con: duckdb.DuckDBPyConnection, chk: Checked, dups: str, n_dups: int) -> pd.DataFrame:
    """Quarantined rows of one table with reason, column, raw value and the raw row as JSON."""
    src = chk.src
    empty = not chk.n_rejected and not n_dups
    # With nothing quarantined the source is not read (LIMIT 0) and lines are not counted,
    # yet the frame keeps the columns and types of a non-empty one.
    line = "({rid} + 1)" if empty else line_number_sql(con, src, chk.n_read)
    source_rows = f"(SELECT {chk.rows.rid} AS __src_rid, r.* FROM {chk.rows.relation}{' LIMIT 0' if empty else ''}) r"
    reason_case = " ".join(
        f"WHEN {i} THEN {quote_literal(r.reason)}" for i, r in enumerate(chk.rules)
    ) or "WHEN -1 THEN NULL"
    column_case = " ".join(
        f"WHEN {i} THEN {quote_literal(r.column)}" for i, r in enumerate(chk.rules)
    ) or "WHEN -1 THEN NULL"
    value_case = " ".join(
        f"WHEN {i} THEN CAST(r.{quote_ident(src.mapping[r_.column])} AS VARCHAR)" for i, r_ in enumerate(chk.rules)
    ) or "WHEN -1 THEN NULL"
    raw_json = ("json_object("
                + ", ".join(f"{quote_literal(c)}, CAST(r.{quote_ident(c)} AS VARCHAR)" for c in src.columns) + ")")
    first_line = line.format(rid="q.__first")
    # The raw text is taken after the join, so only the quarantined rows are cast to text.
    frame = con.execute(
        f"""
        SELECT {quote_literal(src.table)} AS "table", {quote_literal(src.display)} AS source,
               {line.format(rid="q.__rid")} AS line,
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


def with_set_aside(src: Source, quarantine: pd.DataFrame) -> pd.DataFrame:
    """The quarantine of a table with the records its CSV scan kept out of the read, in line order."""
    if not src.set_aside:
        return quarantine
    frame = pd.DataFrame(
        [{"table": src.table, "source": src.display, "line": r.line, "column": r.column, "value": r.value,
          "reason": r.reason, "raw": r.raw} for r in src.set_aside]
    ).astype({"line": "int64"})
    both = pd.concat([frame, quarantine], ignore_index=True) if len(quarantine) else frame
    return both.sort_values("line", kind="stable", ignore_index=True)
