"""What every score sink's readers share: the as-of date a request names, and its equality filters."""

from __future__ import annotations

import datetime as dt
from typing import Any


def as_of_date(value: dt.date | str) -> dt.date:
    """The day a request names, from a date, a datetime or text beginning YYYY-MM-DD."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise ValueError(f"as_of {value!r} is not a date; use YYYY-MM-DD") from exc


def equality_filters(**conditions: Any) -> list[tuple[str, str, Any]]:
    """(column, "=", text) for one value, (column, "in", [texts]) for several; None means no filter."""
    out = []
    for column, value in conditions.items():
        if value is None:
            continue
        if isinstance(value, str):
            out.append((column, "=", value))
        else:
            out.append((column, "in", [str(v) for v in value]))
    return out
