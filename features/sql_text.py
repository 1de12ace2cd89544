"""Names and values written into DuckDB SQL text, quoted so that any text from a file stays data."""

from __future__ import annotations

from datetime import datetime


def quote_ident(name: str) -> str:
    """A column or table name as a quoted SQL identifier (a name with a quote or a space is safe)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Text as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def timestamp_literal(moment: datetime) -> str:
    """A naive timestamp as a SQL TIMESTAMP literal, to the microsecond."""
    return f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
