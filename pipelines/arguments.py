"""Check a run's arguments before any work: dates, horizons, and the as-of date against the data.

Standard library only (and pipelines.faults, itself light): the command line checks its flags here before it prepares the
environment or imports Prefect, so a typo costs milliseconds and one line, not a traceback
after the API server has booted.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from pipelines.faults import looks_like_url, redacted

# The languages every reason, sentence and report is written in, and the files a command can write rows to.
LANGUAGES = ("en", "zh")
OUTPUT_SUFFIXES = (".csv", ".parquet")

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class RunArgumentError(ValueError):
    """A flag or flow parameter is malformed or out of range; the message names it and its value."""


class AsOfOutsideDataError(ValueError):
    """The as-of date lies after the data ends or before it starts, so a run would publish nonsense."""


def parse_day(text: str | date | None, option: str) -> date | None:
    """A YYYY-MM-DD value as a date (None or empty: None), or RunArgumentError naming the option."""
    if not text:  # an empty flag or parameter means "the default", as an absent one
        return None
    if isinstance(text, date):
        return text
    if not _ISO_DAY.fullmatch(text):
        raise RunArgumentError(f"{option} {text!r} is not a date; use YYYY-MM-DD, e.g. 2026-07-01")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:  # e.g. "month must be in 1..12", "day is out of range for month"
        raise RunArgumentError(f"{option} {text!r} is not a date ({exc}); use YYYY-MM-DD, e.g. 2026-07-01") from None


def check_horizon_days(value: int | None, option: str) -> int | None:
    """A horizon given as an override must be at least one day (None: the config's value)."""
    if value is not None and value < 1:
        raise RunArgumentError(f"{option} {value} is not a horizon; give a whole number of days, at least 1")
    return value


def earliest_as_of(data_start: datetime) -> date:
    """The first as-of date with at least one transaction before it (features see ts < as-of)."""
    return data_start.date() + timedelta(days=1)


def latest_as_of(data_end: datetime) -> date:
    """The day after the last transaction: the default as-of, and the latest one without a flag."""
    return data_end.date() + timedelta(days=1)


def check_as_of_within_data(as_of: date, data_start: datetime | None, data_end: datetime | None,
                            *, allow_future: bool = False) -> None:
    """Refuse an as-of date the data cannot score: before its first transaction, or after its end.

    After the end, every customer would look inactive for the days the data does not cover
    (an as-of decades ahead scores everyone as long gone), so that needs `allow_future`.
    """
    if data_start is None or data_end is None:
        raise AsOfOutsideDataError(
            f"as-of date {as_of}: the data has no accepted transaction, so there is nothing to score; "
            "check the validation report and the quarantine file")
    span = f"the data's transactions run from {data_start.date()} to {data_end.date()}"
    first, last = earliest_as_of(data_start), latest_as_of(data_end)
    if as_of < first:
        raise AsOfOutsideDataError(
            f"as-of date {as_of} is before the data: {span}, so no customer has an order before it; "
            f"use an as-of date from {first} to {last}")
    if as_of > last and not allow_future:
        raise AsOfOutsideDataError(
            f"as-of date {as_of} is after the data: {span}, so the latest as-of date is {last} (the default); "
            "a later one counts the days without data as days without orders. "
            "Pass --allow-future-as-of (flow parameter allow_future_as_of) to score at a later date anyway")


def check_local_source(data: str | None) -> None:
    """A data source is a local folder or DuckDB file; a URL (a database DSN) is refused, its password hidden."""
    if data is not None and looks_like_url(str(data)):
        shown = re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*):/(?!/)", r"\1://", str(data))  # as typed, before pathlib's `//` -> `/`
        raise RunArgumentError(
            f"data source {redacted(shown)} is a URL; custscore reads a local folder of CSV/Parquet tables or a "
            "DuckDB file: export the tables to one (e.g. with DuckDB's postgres extension) and pass its path")


def check_choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    """A flag limited to a few names (a language, a segment) must be one of them (None: the default)."""
    if value is not None and value not in allowed:
        raise RunArgumentError(f"{option} {value!r} is not one of {', '.join(allowed)}; use one of those")
    return value


def check_at_least(value: int | None, minimum: int, option: str) -> int | None:
    """A count given on the command line (rows to show, say) must be at least `minimum`."""
    if value is not None and value < minimum:
        raise RunArgumentError(f"{option} {value} is too small; give a whole number of at least {minimum}")
    return value


# What a feature table or any written frame may be (pipelines.publishing.write_frame).
FRAME_SUFFIXES = (".parquet", ".csv")


def check_output_suffix(path: object, suffixes: tuple[str, ...], option: str) -> None:
    """An output file's type is known from its name before any work is done for it (case ignored)."""
    if path is None:
        return
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1].lower()
    if not name.endswith(suffixes):
        raise RunArgumentError(f"{option} {path}: unsupported file type; use a file name ending in "
                               f"{' or '.join(suffixes)}")


def check_share(value: float | None, option: str) -> float | None:
    """A share such as a save rate lies in (0, 1]: above zero (else nothing is gained) and at most all of it."""
    if value is not None and not 0 < value <= 1:
        raise RunArgumentError(f"{option} {value} is not a share; give a number above 0 and at most 1, e.g. 0.2 for 20%")
    return value


def check_not_negative(value: float | None, option: str) -> float | None:
    """An amount of money paid (an offer's cost) is zero or more."""
    if value is not None and not value >= 0:  # `not >=` also refuses NaN
        raise RunArgumentError(f"{option} {value} is negative; give an amount of zero or more")
    return value


def check_budget(value: float | None, kind: str, option: str) -> float | None:
    """A budget is above zero; counted in customers it is a whole number."""
    if value is None:
        return value
    if not value > 0:
        raise RunArgumentError(f"{option} {value} is not a budget; give a number above 0")
    if kind == "count" and value != int(value):
        raise RunArgumentError(f"{option} {value} is not a whole number of customers; give one, "
                               "or add --budget-kind money for an amount of money")
    return value
