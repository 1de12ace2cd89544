"""CSV cells that a spreadsheet shows as text instead of running them as formulas.

A spreadsheet opening a CSV file evaluates a cell that begins with ``=``, ``+``, ``-`` or
``@`` (and some also after a leading tab or carriage return), so a customer id such as
``=1+1`` or ``@SUM(A1:A9)`` becomes a formula: at best a wrong value, at worst a command
(CSV injection). Quoting the cell does not help; the spreadsheet removes the quotes first.
Following OWASP's advice, every text cell that begins with one of those characters gets a
single quote ``'`` in front, which spreadsheets take as "this is text".

A text cell that already begins with ``'`` gets one too, so that the rule is reversible
without guessing: a cell read back from a CSV written here holds the original text after
removing exactly one leading ``'`` where there is one (:func:`original_text`). Only text
columns change: numbers in numeric columns (``-12.5``) stay numbers, and null stays null.
Parquet output needs none of this and is written as it is.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

QUOTE = "'"
# Characters that start a formula in Excel, LibreOffice or Google Sheets (OWASP's list),
# plus the quote itself so that removing one leading quote always gives the original.
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
QUOTED_STARTS: tuple[str, ...] = (*FORMULA_STARTS, QUOTE)


def safe_text(text: str) -> str:
    """The text as a CSV cell a spreadsheet does not evaluate (one quote in front when needed)."""
    return QUOTE + text if text.startswith(QUOTED_STARTS) else text


def original_text(cell: str) -> str:
    """The text a cell of a CSV written here stood for: one leading quote removed."""
    return cell[1:] if cell.startswith(QUOTE) else cell


def safe_text_table(table: pa.Table) -> pa.Table:
    """The table with every string cell made safe (other column types untouched)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(i, field, _safe_text_array(table.column(i)))
    return table


def _safe_text_array(column: pa.ChunkedArray) -> pa.ChunkedArray:
    first = pc.utf8_slice_codeunits(column, 0, 1)
    quoted = pc.is_in(first, value_set=pa.array(QUOTED_STARTS, type=column.type))
    # Most exports have no such cell: leave the column as it is rather than copying its texts.
    if not pc.any(quoted).as_py():
        return column
    prefixed = pc.binary_join_element_wise(pa.scalar(QUOTE, type=column.type), column, pa.scalar("", type=column.type))
    return pc.if_else(quoted, prefixed, column)


def safe_text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of the frame with every text cell made safe; numbers, dates and nulls unchanged."""
    out = frame.copy(deep=False)
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            # safe_text never maps two texts to one, so renamed categories stay distinct.
            renamed = {c: safe_text(c) for c in column.cat.categories if isinstance(c, str)}
            out[name] = column.cat.rename_categories(renamed)
        elif pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype):
            out[name] = column.map(_safe_cell)
    return out


def _safe_cell(value: object) -> object:
    return safe_text(value) if isinstance(value, str) else value
