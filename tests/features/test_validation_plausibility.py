"""Data that reads well but cannot be right: placeholder dates, mixed currencies, a stale table, a whale order."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from features.validation import (
    InputContractError,
    MixedCurrencyError,
    ValidatedData,
    load_and_validate,
)
from features.validation.plausibility import CurrencyConversion, PlausibilityRules, WhaleOrderRule

CLOCK = datetime(2025, 1, 1)


def write(directory: Path, name: str, lines: list[str]) -> Path:
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def validate(directory: Path, **kwargs) -> ValidatedData:
    kwargs.setdefault("clock", CLOCK)
    kwargs.setdefault("max_quarantine_share", 1.0)
    return load_and_validate(directory, **kwargs)


def quarantined(result: ValidatedData) -> list[tuple]:
    return [tuple(row) for row in result.quarantine[["table", "column", "value", "reason"]].itertuples(index=False)]


# ----------------------------------------------------------------------------- implausible dates


def test_placeholder_dates_are_quarantined_in_every_timestamp_column_of_every_table(tmp_path):
    write(tmp_path, "transactions.csv", [
        "customer_id,order_id,ts,amount",
        "C1,O1,1997-01-01,10",  # CDNOW's first day: a real date
        "C1,O2,1900-01-01,10",
        "C2,O3,1970-01-01 00:00:00,10",
        "C2,O4,0001-01-01,10",
        "C3,O5,2024-03-01,10",
    ])
    write(tmp_path, "customers.csv", ["customer_id,signup_date", "C1,1996-12-01", "C2,1970-01-01", "C3,2024-01-01"])
    write(tmp_path, "invoices.csv", [
        "customer_id,invoice_id,issued_at,due_at,amount,paid_at",
        "C1,I1,2024-01-01,2024-01-31,10,2024-01-20",
        "C1,I2,1900-01-01,2024-01-31,10,",
        "C1,I3,2024-01-01,0001-01-01,10,",  # before issue too, but the placeholder is what is wrong
        "C3,I4,2024-01-01,2024-01-31,10,1970-01-01",
    ])
    write(tmp_path, "interactions.csv", ["customer_id,ts,kind", "C1,2024-02-01,call", "C3,1970-01-01T00:00:00Z,call"])
    result = validate(tmp_path)
    assert quarantined(result) == [
        ("customers", "signup_date", "1970-01-01", "implausible_date"),
        ("transactions", "ts", "1900-01-01", "implausible_date"),
        ("transactions", "ts", "1970-01-01 00:00:00", "implausible_date"),
        ("transactions", "ts", "0001-01-01", "implausible_date"),
        ("invoices", "issued_at", "1900-01-01", "implausible_date"),
        ("invoices", "due_at", "0001-01-01", "implausible_date"),
        ("invoices", "paid_at", "1970-01-01", "implausible_date"),
        ("interactions", "ts", "1970-01-01T00:00:00Z", "implausible_date"),
    ]
    assert sorted(result.tables["transactions"].execute()["order_id"]) == ["O1", "O5"]
    assert result.data_start == datetime(1997, 1, 1)
    assert result.quarantine.loc[result.quarantine["table"] == "transactions", "line"].tolist() == [3, 4, 5]


def test_the_minimum_date_is_configurable(tmp_path):
    write(tmp_path, "transactions.csv", [
        "customer_id,order_id,ts,amount", "C1,O1,1900-01-01,1", "C1,O2,1970-01-01,1", "C1,O3,1997-06-30,1",
        "C1,O4,1998-01-01,1",
    ])
    kept = {day: sorted(validate(tmp_path, plausibility=PlausibilityRules(min_date=day))
                        .tables["transactions"].execute()["order_id"])
            for day in (date(1960, 1, 1), date(1998, 1, 1))}
    assert kept == {date(1960, 1, 1): ["O2", "O3", "O4"], date(1998, 1, 1): ["O4"]}


def test_placeholder_dates_in_native_parquet_timestamps_are_quarantined_by_row(tmp_path):
    stamps = [datetime(1, 1, 1), datetime(1970, 1, 1), datetime(2024, 1, 1), datetime(1899, 12, 31, 23, 59)]
    pq.write_table(pa.table({
        "customer_id": ["C1", "C2", "C3", "C4"], "order_id": ["O1", "O2", "O3", "O4"],
        "ts": pa.array(stamps, pa.timestamp("us")), "amount": [1.0, 2.0, 3.0, 4.0],
    }), tmp_path / "transactions.parquet")
    result = validate(tmp_path)
    assert result.quarantine[["line", "reason"]].values.tolist() == [
        [1, "implausible_date"], [2, "implausible_date"], [4, "implausible_date"]]
    assert result.tables["transactions"].execute()["order_id"].tolist() == ["O3"]


# ----------------------------------------------------------------------------- currencies


def test_amounts_in_two_currencies_are_refused_in_one_line_naming_each_with_its_rows(tmp_path):
    write(tmp_path, "transactions.csv", [
        "customer_id,order_id,ts,amount,currency",
        "C1,O1,2024-03-01,10,EUR", "C1,O2,2024-03-02,10,EUR", "C1,O3,2024-03-03,10, eur",
        "C2,O4,2024-03-04,10,USD", "C2,O5,2024-03-05,10,usd", "C2,O6,2024-03-06,10,",
    ])
    with pytest.raises(MixedCurrencyError) as caught:
        validate(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{tmp_path / 'transactions.csv'}: EUR 3 rows, USD 2 rows" in message
    assert "data.currency: {base: EUR, rates: {USD: <EUR per USD>}}" in message
    assert isinstance(caught.value, InputContractError)  # the CLI's one-line error and exit code 2


def test_invoices_in_another_currency_than_the_transactions_are_refused(tmp_path):
    write(tmp_path, "transactions.csv", ["customer_id,order_id,ts,amount,currency", "C1,O1,2024-03-01,10,EUR"])
    write(tmp_path, "invoices.csv", [
        "customer_id,invoice_id,issued_at,due_at,amount,currency", "C1,I1,2024-03-01,2024-03-31,10,GBP"])
    with pytest.raises(MixedCurrencyError, match=r"transactions.csv: EUR 1 row; .*invoices.csv: GBP 1 row"):
        validate(tmp_path)


def test_one_currency_with_some_empty_cells_is_accepted_unchanged(tmp_path):
    write(tmp_path, "transactions.csv", [
        "customer_id,order_id,ts,amount,currency", "C1,O1,2024-03-01,10.5,USD", "C1,O2,2024-03-02,7,"])
    result = validate(tmp_path)
    frame = result.tables["transactions"].execute().sort_values("order_id")
    assert frame["amount"].tolist() == [10.5, 7.0]
    assert frame["currency"].iloc[0] == "USD" and pd.isna(frame["currency"].iloc[1])


EUR = PlausibilityRules(currency=CurrencyConversion(base="EUR", rates={"usd": 0.92, "CHF": 1.05}))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_conversion_turns_every_money_column_into_the_base_and_quarantines_a_currency_without_a_rate(tmp_path, fmt):
    tx = pd.DataFrame({
        "customer_id": ["C1", "C1", "C2", "C2", "C3"], "order_id": ["O1", "O2", "O3", "O4", "O5"],
        "ts": pd.to_datetime(["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05"]),
        "amount": [100.0, 50.0, 200.0, 30.0, 10.0], "margin": [40.0, 10.0, None, 5.0, 1.0],
        "discount": [0.0, 5.0, 20.0, 0.0, 0.0], "currency": ["EUR", "USD", "chf", "GBP", None],
    })
    invoices = pd.DataFrame({
        "customer_id": ["C1", "C2"], "invoice_id": ["I1", "I2"],
        "issued_at": pd.to_datetime(["2024-03-01", "2024-03-03"]), "due_at": pd.to_datetime(["2024-03-31"] * 2),
        "amount": [50.0, 200.0], "paid_at": pd.to_datetime(["2024-03-10", None]),
        "paid_amount": pd.Series([None, None], dtype="float64"),
        "currency": ["USD", "CHF"],
    })
    for name, frame in (("transactions", tx), ("invoices", invoices)):
        if fmt == "csv":
            frame.to_csv(tmp_path / f"{name}.csv", index=False)
        else:
            frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    result = validate(tmp_path, plausibility=EUR, default_margin_rate=0.3)
    assert quarantined(result) == [("transactions", "currency", "GBP", "unknown_currency")]
    got = result.tables["transactions"].execute().sort_values("order_id")
    # USD 50 x 0.92 = 46 (margin 10 -> 9.2, discount 5 -> 4.6); CHF 200 x 1.05 = 210, its margin
    # is the default rate of the converted amount (63); an empty currency is the base.
    assert got["order_id"].tolist() == ["O1", "O2", "O3", "O5"]
    assert got["amount"].tolist() == pytest.approx([100.0, 46.0, 210.0, 10.0])
    assert got["margin"].tolist() == pytest.approx([40.0, 9.2, 63.0, 1.0])
    assert got["discount"].tolist() == pytest.approx([0.0, 4.6, 21.0, 0.0])
    assert got["currency"].tolist() == ["EUR"] * 4
    inv = result.tables["invoices"].execute().sort_values("invoice_id")
    # A paid invoice without paid_amount was paid in full: 46 EUR, as its amount.
    assert inv["amount"].tolist() == pytest.approx([46.0, 210.0])
    assert inv["paid_amount"].iloc[0] == pytest.approx(46.0) and pd.isna(inv["paid_amount"].iloc[1])


def test_a_conversion_that_rates_its_own_base_or_a_negative_rate_is_a_config_error():
    with pytest.raises(ValidationError, match="base currency EUR"):
        CurrencyConversion(base="eur", rates={"EUR": 0.9})
    with pytest.raises(ValidationError):
        CurrencyConversion(base="EUR", rates={"USD": -1})
    with pytest.raises(ValidationError, match="given twice"):
        CurrencyConversion(base="EUR", rates={"USD": 0.9, "usd": 0.91})


# ----------------------------------------------------------------------------- stale tables


def _tables_ending(tmp_path: Path, invoices_end: str, interactions_end: str) -> Path:
    write(tmp_path, "transactions.csv", [
        "customer_id,order_id,ts,amount", "C1,O1,2024-01-05,10", "C1,O2,2024-07-01,10"])
    write(tmp_path, "invoices.csv", [
        "customer_id,invoice_id,issued_at,due_at,amount,paid_at",
        "C1,I1,2024-01-05,2024-02-05,10,2024-01-20", f"C1,I2,{invoices_end},2024-12-31,10,"])
    write(tmp_path, "interactions.csv", ["customer_id,ts,kind", "C1,2024-01-10,call", f"C1,{interactions_end},call"])
    return tmp_path


def test_a_table_ending_months_before_the_others_is_named_with_a_warning(tmp_path):
    result = validate(_tables_ending(tmp_path, invoices_end="2024-04-01", interactions_end="2024-06-20"))
    assert result.report["transactions"].warnings == () and result.report["interactions"].warnings == ()
    (warning,) = result.report["invoices"].warnings
    # 2024-04-01 to 2024-07-01: 91 days, above the default limit of 60.
    assert "last row is dated 2024-04-01, 91 days before the last of transactions (2024-07-01)" in warning
    assert "data.max_source_lag_days = 60" in warning
    assert result.report_json()["invoices"]["warnings"] == [warning]
    assert result.quarantine.empty and result.report["invoices"].accepted == 2  # a warning, nothing rejected


def test_the_stale_limit_is_configurable_and_can_be_switched_off(tmp_path):
    _tables_ending(tmp_path, invoices_end="2024-04-01", interactions_end="2024-06-20")
    strict = validate(tmp_path, plausibility=PlausibilityRules(max_source_lag_days=10))
    assert [t for t, rep in strict.report.items() if rep.warnings] == ["invoices", "interactions"]
    assert "11 days before" in strict.report["interactions"].warnings[0]
    off = validate(tmp_path, plausibility=PlausibilityRules(max_source_lag_days=None))
    assert not any(rep.warnings for rep in off.report.values())


def test_the_last_payment_keeps_an_invoices_table_fresh(tmp_path):
    # Invoices issued until April but paid until June: the extract is current, the business invoices less.
    _tables_ending(tmp_path, invoices_end="2024-04-01", interactions_end="2024-06-20")
    invoices = tmp_path / "invoices.csv"
    invoices.write_text(invoices.read_text().replace("2024-12-31,10,\n", "2024-12-31,10,2024-06-15\n"))
    assert validate(tmp_path).report["invoices"].warnings == ()


# ----------------------------------------------------------------------------- whale orders


def _orders_with_a_whale(tmp_path: Path, n_orders: int = 150) -> Path:
    # Orders of 20, 21, ..., 169 and one order of 50,000 in two lines, then partly returned.
    lines = [f"C{i % 40:02d},O{i:03d},2024-{i % 12 + 1:02d}-10,{20 + i}" for i in range(n_orders)]
    whale = ["C07,WHALE,2024-05-02 10:00:00,30000", "C07,WHALE,2024-05-02 10:00:00,21000",
             "C07,WHALE,2024-05-03,-1000"]
    write(tmp_path, "transactions.csv", ["customer_id,order_id,ts,amount", *lines, *whale])
    return tmp_path


def test_a_whale_order_is_named_with_its_order_customer_and_amount_and_kept(tmp_path):
    result = validate(_orders_with_a_whale(tmp_path))
    (warning,) = result.report["transactions"].warnings
    # 151 orders: the 99th percentile lies between the 149th and 150th smallest (168, 169): 168.5.
    # 50,000 / 168.5 = 297x; 50,000 / (20 + ... + 169 = 14,175, + 50,000) = 77.9% of revenue.
    assert warning.startswith("whale order WHALE of customer C07 on 2024-05-02: amount 50,000.00, 297x the "
                              "99th percentile of 151 orders (168.50) and 77.9% of all order revenue; kept")
    assert result.quarantine.empty
    whale = result.tables["transactions"].execute().query("order_id == 'WHALE'")
    assert whale["amount"].sum() == 50_000


def test_ordinary_orders_and_too_few_orders_raise_no_whale_warning(tmp_path):
    lines = [f"C{i % 40:02d},O{i:03d},2024-{i % 12 + 1:02d}-10,{20 + i}" for i in range(150)]
    write(tmp_path, "transactions.csv", ["customer_id,order_id,ts,amount", *lines])
    assert validate(tmp_path).report["transactions"].warnings == ()
    few = tmp_path / "few"
    few.mkdir()
    _orders_with_a_whale(few, n_orders=60)  # 61 orders, fewer than min_orders (100)
    assert validate(few).report["transactions"].warnings == ()
    rule = PlausibilityRules(whale_order=WhaleOrderRule(min_orders=50))
    assert "whale order WHALE" in validate(few, plausibility=rule).report["transactions"].warnings[0]


def test_the_revenue_share_rule_finds_whales_the_percentile_hides_and_only_five_are_named(tmp_path):
    # Seven equal whales among 150 orders lift the 99th percentile to their own level; each is
    # 10,000 of 84,175 = 11.9% of revenue, so only the share rule (set to 10%) finds them.
    lines = [f"C{i % 40:02d},O{i:03d},2024-{i % 12 + 1:02d}-10,{20 + i}" for i in range(150)]
    whales = [f"B{k},W{k},2024-06-0{k + 1},10000" for k in range(7)]
    write(tmp_path, "transactions.csv", ["customer_id,order_id,ts,amount", *lines, *whales])
    assert validate(tmp_path).report["transactions"].warnings == ()
    rule = PlausibilityRules(whale_order=WhaleOrderRule(revenue_share=0.1))
    warnings = validate(tmp_path, plausibility=rule).report["transactions"].warnings
    assert [w.split(" of customer")[0] for w in warnings[:5]] == [f"whale order W{k}" for k in range(5)]
    assert warnings[5] == "2 more whale orders (the largest 5 are named above)"
    assert "11.9% of all order revenue" in warnings[0]
    assert validate(tmp_path, plausibility=PlausibilityRules(whale_order=None)).report["transactions"].warnings == ()
