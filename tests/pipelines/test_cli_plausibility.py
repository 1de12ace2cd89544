"""Plausibility at the command line: mixed currencies refused in one line, stale tables and whale orders warned."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import ConfigError, load_config

runner = CliRunner()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _stale_invoices_and_a_whale(folder: Path) -> Path:
    """150 ordinary orders to 2024-12-10 and one of 50,000; invoices that stop in June."""
    folder.mkdir()
    orders = [f"C{i % 40:02d},O{i:03d},2024-{i % 12 + 1:02d}-10,{20 + i}" for i in range(150)]
    _write(folder / "transactions.csv", ["customer_id,order_id,ts,amount", *orders, "C07,WHALE,2024-05-02,50000"])
    _write(folder / "invoices.csv", ["customer_id,invoice_id,issued_at,due_at,amount",
                                     "C01,I1,2024-05-01,2024-05-31,10", "C02,I2,2024-06-01,2024-06-30,10"])
    return folder


def test_validate_names_a_stale_table_and_a_whale_order_and_keeps_every_row(home, tmp_path):
    data = _stale_invoices_and_a_whale(tmp_path / "data")
    result = runner.invoke(app, ["validate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in _lines(result.output) if line.startswith("warning ")]
    assert len(warnings) == 2, result.output
    # 2024-06-01 to 2024-12-10: 192 days.
    assert warnings[0].startswith("warning transactions: whale order WHALE of customer C07 on 2024-05-02: amount 50,000.00")
    assert warnings[1].startswith("warning invoices: stale: its last row is dated 2024-06-01, 192 days before the last "
                                  "of transactions (2024-12-10)")
    report = json.loads(runner.invoke(app, ["validate", "--data", str(data), "--json"]).output)
    assert report["transactions"]["quarantined"] == 0 and report["transactions"]["accepted"] == 151
    assert [len(report[t]["warnings"]) for t in ("transactions", "invoices")] == [1, 1]


def test_validate_refuses_mixed_currencies_in_one_line_and_converts_with_the_configured_rates(home, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "transactions.csv", ["customer_id,order_id,ts,amount,currency",
                                       "C1,O1,2024-03-01,100,EUR", "C1,O2,2024-03-02,50,USD", "C2,O3,2024-03-03,20,EUR",
                                       "C2,O4,2024-03-04,10,JPY"])
    refused = runner.invoke(app, ["validate", "--data", str(data)])
    assert refused.exit_code == 2
    (line,) = _lines(refused.output)
    assert line.startswith("error: amounts in 3 currencies") and "EUR 2 rows, JPY 1 row, USD 1 row" in line
    config = tmp_path / "eur.yaml"
    config.write_text("data:\n  currency: {base: EUR, rates: {USD: 0.92}}\n  max_quarantine_share: 0.5\n")
    converted = runner.invoke(app, ["validate", "--data", str(data), "--json", "--config", str(config)])
    assert converted.exit_code == 0, converted.output
    report = json.loads(converted.output)["transactions"]
    assert (report["accepted"], report["reasons"]) == (3, {"unknown_currency": 1})


def test_features_prints_the_warnings_with_its_summary(home, tmp_path):
    data = _stale_invoices_and_a_whale(tmp_path / "data")
    result = runner.invoke(app, ["features", "--data", str(data), "--as-of", "2024-12-11",
                                 "--output", str(tmp_path / "f.parquet")])
    assert result.exit_code == 0, result.output
    assert "warning transactions: whale order WHALE" in result.output
    assert "warning invoices: stale" in result.output


def test_the_run_summary_prints_each_warning_under_the_data_line(capsys):
    from pipelines.cli import _print_validation_line

    report = {"transactions": {"read": 3, "accepted": 3, "quarantined": 0, "reasons": {}, "exact_duplicates_kept": 0,
                               "warnings": ["whale order O9 of customer C1 on 2024-05-02: amount 9,000.00"]},
              "invoices": {"read": 2, "accepted": 2, "quarantined": 0, "reasons": {}, "exact_duplicates_kept": 0,
                           "warnings": ["stale: its last row is dated 2024-01-01"]}}
    _print_validation_line(report)
    assert _lines(capsys.readouterr().out) == [
        "data transactions: 3/3 accepted; invoices: 2/2 accepted",
        "warning transactions: whale order O9 of customer C1 on 2024-05-02: amount 9,000.00",
        "warning invoices: stale: its last row is dated 2024-01-01",
    ]


def test_the_plausibility_keys_load_from_yaml_and_mistakes_name_their_key(tmp_path):
    default = load_config().data
    assert default.min_date == date(1990, 1, 1) and default.currency is None
    assert default.max_source_lag_days == 60 and default.whale_order.multiple == 10
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  min_date: 1995-01-01\n  max_source_lag_days: null\n  whale_order: null\n"
                    "  currency:\n    base: eur\n    rates: {usd: 0.92}\n")
    rules = load_config(path).data.plausibility()
    assert rules.min_date == date(1995, 1, 1) and rules.max_source_lag_days is None and rules.whale_order is None
    assert rules.currency.base == "EUR" and rules.currency.factor("Usd") == 0.92 and rules.currency.factor("GBP") is None
    path.write_text("data:\n  whale_order: {multiple: 10, percentil: 99}\n")
    with pytest.raises(ConfigError, match="data.whale_order.percentil"):
        load_config(path)
