"""The command line names every customers column that is no feature, and why, and leaves it out."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def test_features_command_leaves_out_email_and_outcome_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    made = runner.invoke(app, ["demo-data", "--customers", "120", "--out", str(data), "--seed", "3", "--format", "csv"])
    assert made.exit_code == 0, made.output
    customers = pd.read_csv(data / "customers.csv", dtype=str)
    customers["email"] = [f"{c}@example.com" for c in customers["customer_id"]]
    customers["churned"] = ["1", "0"] * (len(customers) // 2) + ["0"] * (len(customers) % 2)
    customers.to_csv(data / "customers.csv", index=False)
    out = tmp_path / "features.parquet"
    result = runner.invoke(app, ["features", "--data", str(data), "--as-of", "2026-06-01", "--output", str(out)],
                           terminal_width=400)
    assert result.exit_code == 0, result.output
    assert f"email (personal data: {len(customers)} values look like e-mail addresses)" in result.output
    assert "churned (name looks like an outcome ('churned' is on the leakage list)" in result.output
    columns = set(pd.read_parquet(out).columns)
    assert {"attr_industry", "attr_region"} <= columns and not {"attr_email", "attr_churned"} & columns


def test_the_attributes_line_lists_kept_and_excluded_columns():
    from pipelines.cli import _print_attributes, console

    with console.capture() as captured:
        _print_attributes({"kept": ["industry"], "excluded": {"email": "personal data by name ('email')"}})
    assert captured.get().strip() == "attributes kept: industry; not features: email (personal data by name ('email'))"
