"""The command line as a user meets it: demo data, validate (table and JSON), features, errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo-data", "--customers", "150", "--out", str(out), "--seed", "5", "--format", "csv"])
    assert result.exit_code == 0, result.output
    return out


def test_demo_data_writes_all_four_tables_and_the_truth_apart(demo_dir):
    assert {p.name for p in demo_dir.iterdir()} >= {"transactions.csv", "customers.csv", "invoices.csv", "interactions.csv"}
    truth = pd.read_parquet(demo_dir / "_truth.parquet")
    assert len(truth) == 150 and set(truth["churn_driver"]) <= {"none", "payment", "service", "demand"}


def test_validate_json_reports_counts_per_table(demo_dir, home):
    result = runner.invoke(app, ["validate", "--data", str(demo_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # logs go to stderr
    assert set(report) == {"transactions", "customers", "invoices", "interactions"}
    for row in report.values():
        assert row["read"] == row["accepted"] + row["quarantined"]
        assert set(row) == {"read", "accepted", "quarantined", "reasons", "exact_duplicates_kept", "warnings"}


def test_validate_writes_quarantined_rows_with_reasons(demo_dir, home, tmp_path):
    data = tmp_path / "messy"
    data.mkdir()
    tx = pd.read_csv(demo_dir / "transactions.csv", dtype=str)
    tx.loc[0, "amount"] = "lots"
    tx.to_csv(data / "transactions.csv", index=False)
    out = tmp_path / "q.csv"
    result = runner.invoke(app, ["validate", "--data", str(data), "--quarantine-out", str(out)])
    assert result.exit_code == 0, result.output
    assert "non_numeric_amount" in result.output and str(out) in result.output.replace("\n", "")
    quarantined = pd.read_csv(out)
    assert quarantined.loc[0, "reason"] == "non_numeric_amount" and quarantined.loc[0, "line"] == 2
    assert quarantined.loc[0, "value"] == "lots" and quarantined.loc[0, "column"] == "amount"


def _order_with_a_copied_line(folder):
    folder.mkdir()
    (folder / "transactions.csv").write_text(
        "customer_id,order_id,ts,amount,product_id\n"
        "C1,O1,2024-03-01,5,P1\nC1,O1,2024-03-01,9,P1\nC1,O1,2024-03-01,5,P1\n", encoding="utf-8")
    return folder


def test_validate_counts_kept_exact_duplicates_in_json_and_table(home, tmp_path):
    data = _order_with_a_copied_line(tmp_path / "lines")
    report = json.loads(runner.invoke(app, ["validate", "--data", str(data), "--json"]).output)
    assert report["transactions"] == {"read": 3, "accepted": 3, "quarantined": 0, "reasons": {},
                                      "exact_duplicates_kept": 1, "warnings": []}
    result = runner.invoke(app, ["validate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "exact duplicates kept" in result.output and "drop_exact" in result.output


def test_validate_reads_the_duplicate_policy_from_the_config(home, tmp_path):
    data = _order_with_a_copied_line(tmp_path / "lines")
    config = tmp_path / "drop.yaml"
    config.write_text("data:\n  duplicate_lines: drop_exact\n  max_quarantine_share: 0.5\n")
    result = runner.invoke(app, ["validate", "--data", str(data), "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["transactions"] == {
        "read": 3, "accepted": 2, "quarantined": 1, "reasons": {"exact_duplicate": 1}, "exact_duplicates_kept": 0,
        "warnings": []}


def test_the_run_summary_line_names_kept_duplicates_and_quarantined_rows():
    from pipelines.cli import _validation_part

    row = {"read": 100, "accepted": 98, "quarantined": 2, "reasons": {}, "exact_duplicates_kept": 3}
    assert _validation_part("transactions", row) == "transactions: 98/100 accepted (3 exact duplicates kept, 2 quarantined)"
    clean = row | {"accepted": 100, "quarantined": 0, "exact_duplicates_kept": 0}
    assert _validation_part("transactions", clean) == "transactions: 100/100 accepted"


def test_validate_missing_column_names_file_and_columns(tmp_path, home):
    (tmp_path / "transactions.csv").write_text("customer_id,order_id,amount\n1,2,3\n")
    result = runner.invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "transactions.csv" in result.output and "ts" in result.output and "Found columns" in result.output


def test_features_command_writes_one_row_per_customer(demo_dir, home, tmp_path):
    out = tmp_path / "features.parquet"
    result = runner.invoke(app, ["features", "--data", str(demo_dir), "--as-of", "2026-06-01", "--output", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    tx = pd.read_csv(demo_dir / "transactions.csv", dtype={"customer_id": str}, parse_dates=["ts"])
    expected = set(tx.loc[tx["ts"] < "2026-06-01", "customer_id"])
    assert set(frame["customer_id"]) == expected and frame["customer_id"].is_unique
    assert {"days_since_last_order", "revenue_sum_90d", "invoice_on_time_rate_365d", "complaint_count_90d"} <= set(frame.columns)


def test_features_rejects_unknown_output_format(demo_dir, home, tmp_path):
    result = runner.invoke(app, ["features", "--data", str(demo_dir), "--as-of", "2026-06-01", "--output", str(tmp_path / "f.xlsx")])
    assert result.exit_code == 2 and ".xlsx" in result.output


def test_scores_export_without_any_run_says_so(home, tmp_path):
    result = runner.invoke(app, ["scores", "export", "--output", str(tmp_path / "s.csv")])
    assert result.exit_code == 2 and "run" in result.output.lower()


@pytest.mark.usefixtures("prefect_harness")
def test_run_out_of_duckdb_memory_names_the_setting_to_raise(demo_dir, home, tmp_path):
    config = tmp_path / "tiny-memory.yaml"
    config.write_text("data:\n  duckdb_memory_limit: 1MB\n")
    result = runner.invoke(app, ["run", "--data", str(demo_dir), "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "data.duckdb_memory_limit" in result.output and "memory cap" in result.output


def test_validate_names_a_header_only_optional_table_as_absent_and_keeps_json_parseable(tmp_path, home):
    data = _order_with_a_copied_line(tmp_path / "lines")
    (data / "customers.csv").write_text("customer_id,region\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert f"warning customers table, file {data / 'customers.csv'}: column names but no rows; treated as absent" \
        in result.output
    result = runner.invoke(app, ["validate", "--data", str(data), "--json"])
    assert result.exit_code == 0 and set(json.loads(result.stdout)) == {"transactions"}


def test_features_without_rows_in_customers_builds_without_attributes_and_says_why(demo_dir, home, tmp_path):
    data = tmp_path / "no-customers"
    data.mkdir()
    (data / "transactions.csv").write_bytes((demo_dir / "transactions.csv").read_bytes())
    (data / "customers.csv").write_text("customer_id,region\n", encoding="utf-8")
    out = tmp_path / "features.parquet"
    result = runner.invoke(app, ["features", "--data", str(data), "--as-of", "2026-06-01", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning customers table" in result.output and "treated as absent" in result.output
    assert not [c for c in pd.read_parquet(out).columns if c.startswith("attr_")]
