"""`run`, `train` (and `features`) refuse a missing data path or a config that does not load before any work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return "\n".join(lines)


@pytest.mark.parametrize("command", ["run", "train", "features"])
def test_a_data_path_that_does_not_exist_is_one_line_before_the_home_is_made(home, tmp_path, command):
    extra = ["--as-of", "2026-07-01", "--output", str(tmp_path / "f.csv")] if command == "features" else []
    result = runner.invoke(app, [command, "--data", str(tmp_path / "tabels"), *extra])
    assert result.exit_code == 2
    text = _error_line(result)
    assert f"--data {tmp_path / 'tabels'}: no such file or folder" in text and len(text.splitlines()) == 1
    assert not home.exists()


@pytest.mark.parametrize("command", ["run", "train"])
def test_a_config_with_an_unknown_key_is_refused_before_the_home_is_made(home, tmp_path, command):
    config = tmp_path / "mine.yaml"
    config.write_text("scoring:\n  chunk_sise: 1000\n")
    result = runner.invoke(app, [command, "--config", str(config)])
    assert result.exit_code == 2
    assert "chunk_sise" in _error_line(result)
    assert not home.exists()
