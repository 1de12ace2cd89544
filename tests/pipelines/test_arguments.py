"""A run's arguments checked before any work, and its as-of date checked against the data's dates."""

from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace

import pytest

from pipelines.arguments import (
    AsOfOutsideDataError,
    RunArgumentError,
    check_as_of_within_data,
    check_horizon_days,
    parse_day,
)

# Transactions from 3 Jan 2024 (14:30) to 30 Jun 2026 (09:00): as-of dates 2024-01-04 .. 2026-07-01 are in range.
FIRST = datetime(2024, 1, 3, 14, 30)
LAST = datetime(2026, 6, 30, 9, 0)


@pytest.mark.parametrize(("text", "why"), [
    ("2026-13-45", "month must be in 1..12"),
    ("2026-02-30", "day is out of range for month"),
    ("yesterday", "use YYYY-MM-DD"),
    ("20260701", "use YYYY-MM-DD"),  # ISO basic form: Python accepts it, a user most likely mistyped
    ("2026-7-1", "use YYYY-MM-DD"),
])
def test_a_malformed_date_names_the_option_and_the_value(text, why):
    with pytest.raises(RunArgumentError) as caught:
        parse_day(text, "--as-of")
    message = str(caught.value)
    assert message.startswith(f"--as-of {text!r} is not a date") and why in message and "\n" not in message


def test_a_well_formed_date_and_an_absent_one_parse():
    assert parse_day("2024-02-29", "--as-of") == date(2024, 2, 29)
    assert parse_day(None, "--as-of") is None and parse_day("", "--as-of") is None


@pytest.mark.parametrize("days", [0, -30])
def test_a_horizon_below_one_day_is_refused(days):
    with pytest.raises(RunArgumentError, match=rf"^--churn-horizon-days {days} is not a horizon"):
        check_horizon_days(days, "--churn-horizon-days")


def test_a_horizon_of_one_day_or_none_passes():
    assert check_horizon_days(1, "--value-horizon-days") == 1
    assert check_horizon_days(None, "--value-horizon-days") is None


def test_as_of_dates_from_the_day_after_the_first_order_to_the_day_after_the_last_pass():
    for day in (date(2024, 1, 4), date(2025, 3, 1), date(2026, 6, 30), date(2026, 7, 1)):
        check_as_of_within_data(day, FIRST, LAST)


def test_an_as_of_after_the_day_after_the_data_ends_is_refused_with_the_data_span():
    with pytest.raises(AsOfOutsideDataError) as caught:
        check_as_of_within_data(date(2026, 7, 2), FIRST, LAST)
    message = str(caught.value)
    assert "as-of date 2026-07-02 is after the data" in message
    assert "from 2024-01-03 to 2026-06-30" in message and "latest as-of date is 2026-07-01" in message
    assert "--allow-future-as-of" in message and "\n" not in message


def test_a_future_as_of_passes_when_asked_for_explicitly():
    check_as_of_within_data(date(2099, 1, 1), FIRST, LAST, allow_future=True)


@pytest.mark.parametrize("day", [date(2020, 1, 1), date(2024, 1, 3)])
def test_an_as_of_with_no_transaction_before_it_is_refused_even_when_future_is_allowed(day):
    # 2024-01-03 itself: the first order is at 14:30 that day, and features see only ts < as-of midnight.
    with pytest.raises(AsOfOutsideDataError) as caught:
        check_as_of_within_data(day, FIRST, LAST, allow_future=True)
    message = str(caught.value)
    assert f"as-of date {day} is before the data" in message
    assert "from 2024-01-03 to 2026-06-30" in message and "from 2024-01-04 to 2026-07-01" in message


def test_data_without_any_accepted_transaction_has_nothing_to_score():
    with pytest.raises(AsOfOutsideDataError, match="no accepted transaction"):
        check_as_of_within_data(date(2026, 7, 1), None, None)


def test_a_run_request_refuses_a_malformed_as_of_or_horizon_before_any_work():
    from pipelines.runs import RunRequest

    with pytest.raises(RunArgumentError, match="^as_of '2026-02-30' is not a date"):
        RunRequest(as_of="2026-02-30")
    with pytest.raises(RunArgumentError, match="^value_horizon_days 0 is not a horizon"):
        RunRequest(value_horizon_days=0)


def test_a_run_defaults_to_the_day_after_the_data_and_honours_the_future_flag():
    from pipelines.runs import RunRequest, resolve_as_of

    data = SimpleNamespace(data_start=FIRST, data_end=LAST)
    assert resolve_as_of(RunRequest(), data) == date(2026, 7, 1)
    with pytest.raises(AsOfOutsideDataError):
        resolve_as_of(RunRequest(as_of="2099-01-01"), data)
    assert resolve_as_of(RunRequest(as_of="2099-01-01", allow_future_as_of=True), data) == date(2099, 1, 1)
