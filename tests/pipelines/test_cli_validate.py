"""`custscore validate`: its config, its output file checked first, and no orchestration libraries on its path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _two_orders(folder: Path) -> Path:
    folder.mkdir()
    (folder / "transactions.csv").write_text(
        "customer_id,order_id,ts,amount\nC1,O1,2024-03-01,5\nC2,O2,2024-03-02,7\n", encoding="utf-8")
    return folder


def test_validate_reads_the_tables_the_config_names_when_data_is_not_given(home, tmp_path):
    data = _two_orders(tmp_path / "tables")
    config = tmp_path / "mine.yaml"
    config.write_text(f"data:\n  source: {data}\n")
    result = runner.invoke(app, ["validate", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["transactions"]["accepted"] == 2  # logs go to stderr


def test_validate_without_data_or_a_configured_source_says_how_to_give_one(home):
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "give --data DIR or set data.source" in result.output


def test_a_data_path_that_does_not_exist_is_one_line_before_the_home_is_made(home, tmp_path):
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "no-such-folder")])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (f"error: --data {tmp_path / 'no-such-folder'}: no such file or folder; "
                                               "give the folder of the tables or a DuckDB file")
    config = tmp_path / "mine.yaml"
    config.write_text(f"data:\n  source: {tmp_path / 'gone'}\n")
    result = runner.invoke(app, ["validate", "--config", str(config)])
    assert result.exit_code == 2
    assert f"data.source {tmp_path / 'gone'} of {config}: no such file or folder" in " ".join(result.output.split())
    assert not home.exists()


def test_an_unsupported_quarantine_file_is_refused_before_any_row_is_read(home, tmp_path):
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "no-such-folder"),
                                 "--quarantine-out", str(tmp_path / "rejected.xlsx")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--quarantine-out" in lines[0] and ".parquet or .csv or .csv.gz" in lines[0]
    assert not home.exists()  # refused before the home folder was prepared


def test_validate_imports_neither_prefect_nor_mlflow_nor_lightgbm(home, tmp_path):
    data = _two_orders(tmp_path / "tables")
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pipelines.cli import app\n"
        f"result = CliRunner().invoke(app, ['validate', '--data', {str(data)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'mlflow', 'lightgbm'}))\n"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT), "CUSTSCORE_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
