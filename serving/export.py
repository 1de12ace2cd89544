"""What a team exports from a run: some segments or tiers, some columns, and a CSV a spreadsheet opens well.

The export streams the run one scoring part at a time (flat memory at millions of customers):
each part is filtered (segment, value tier), cut to the asked columns and written before the
next is read. `excel` writes the CSV the way Excel reads it best: a UTF-8 byte-order mark
first (without it Excel on Windows reads the Chinese texts as mojibake), numbers rounded to
what a reader uses (probabilities to 4 decimals, money to 2), and text cells that a
spreadsheet would run as formulas escaped (features.safe_csv, as every CSV custscore writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.safe_csv import safe_text_table
from serving.score_table import SCORE_COLUMNS

UTF8_BOM = b"\xef\xbb\xbf"
# Decimals kept by an Excel-friendly CSV: probabilities read in hundredths (4 keeps the ranking),
# money in cents; any other float column keeps 4.
PROBABILITY_DECIMALS = 4
MONEY_DECIMALS = 2
PROBABILITY_COLUMNS = ("p_churn",)
MONEY_COLUMNS = ("expected_revenue", "expected_margin", "cost_to_serve", "net_value", "clv", "value_p10", "value_p90")


class ExportOptionError(ValueError):
    """An export option names a column the score table does not have, or mixes options that do not go together."""


@dataclass(frozen=True)
class ExportOptions:
    """Which rows and columns of a run an export writes, and whether the CSV is made for Excel."""

    segments: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # empty: every contract column, in contract order
    excel: bool = False

    def rows_of(self, table: pa.Table) -> pa.Table:
        """The rows of a score part in the asked segments and tiers."""
        for column, wanted in (("segment", self.segments), ("value_tier", self.tiers)):
            if wanted:
                table = table.filter(pc.fill_null(pc.is_in(table.column(column), value_set=pa.array(wanted, pa.string())), False))
        return table

    def shaped(self, table: pa.Table) -> pa.Table:
        """A filtered part cut to the asked columns, rounded for Excel when asked."""
        table = table.select(list(self.columns)) if self.columns else table
        return rounded_for_excel(table) if self.excel else table


def parse_columns(text: str | None) -> tuple[str, ...]:
    """`--columns a,b,c` as contract column names, or an error naming the unknown one and the valid ones."""
    if text is None:
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ExportOptionError(f"--columns {text!r}: no column named; valid columns: {', '.join(SCORE_COLUMNS)}")
    for name in names:
        if name not in SCORE_COLUMNS:
            raise ExportOptionError(f"--columns: unknown column {name!r}; valid columns: {', '.join(SCORE_COLUMNS)}")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ExportOptionError(f"--columns: {', '.join(duplicated)} named twice; name each column once")
    return names


def check_export_target(path: Path, options: ExportOptions) -> None:
    """An Excel-friendly export is a CSV file."""
    if options.excel and path.suffix.lower() != ".csv":
        raise ExportOptionError(f"{path}: --excel writes a CSV file; name the output .csv")


def rounded_for_excel(table: pa.Table) -> pa.Table:
    """Float columns rounded: probabilities to PROBABILITY_DECIMALS, money to MONEY_DECIMALS, others to 4."""
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            decimals = MONEY_DECIMALS if field.name in MONEY_COLUMNS else PROBABILITY_DECIMALS
            table = table.set_column(i, field, pc.round(table.column(i), decimals))
    return table


def write_export(parts: Iterator[pa.Table], target: Path, suffix: str, options: ExportOptions) -> int:
    """Write the filtered, shaped parts to `target` (.csv or .parquet), one part at a time; the rows written."""
    writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    handle = None
    rows = 0
    try:
        for part in parts:
            table = options.shaped(options.rows_of(part))
            if suffix == ".csv":
                table = safe_text_table(table)
            if writer is None:
                if suffix == ".parquet":
                    writer = pq.ParquetWriter(target, table.schema, compression="zstd")
                else:
                    handle = open(target, "wb")  # noqa: SIM115 - closed in finally, after the writer
                    if options.excel:
                        handle.write(UTF8_BOM)
                    writer = pacsv.CSVWriter(handle, table.schema)
            for batch in table.to_batches(max_chunksize=65_536):
                writer.write_batch(batch)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
        if handle is not None:
            handle.close()
    return rows
