"""`custscore changes` on two published runs, as a user meets it."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving.store import ScoreStore
from tests.serving.test_changes import _after, _before, _publish

runner = CliRunner()


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return ScoreStore(tmp_path / "home" / "store")


def _text(output: str) -> str:
    """The output with table borders and line breaks removed (wrapped cells joined up)."""
    return re.sub(r"[\s│┃|]", "", output)


def test_changes_prints_the_matrix_and_the_movers_with_why(store):
    _publish(store, _before())
    _publish(store, _after())
    result = runner.invoke(app, ["changes", "--top", "1"])
    assert result.exit_code == 0, result.output
    assert "changes from run r1 (as of 2024-01-01) to run r2 (as of 2024-02-01): 2 customers in both, 1 new, 1 gone" in result.output
    matrix_row = next(line for line in result.output.splitlines() if line.strip("│ ").startswith("regular"))
    assert "1 (50%)" in matrix_row
    text = _text(result.output)
    assert _text("p_churn rose 0.20 -> 0.70: no order for 84 days (+0.95)") in text
    assert "top movers by p_churn" in result.output and "top movers by CLV" in result.output


def test_changes_in_chinese_for_one_segment(store):
    _publish(store, _before())
    _publish(store, _after())
    result = runner.invoke(app, ["changes", "--segment", "at_risk", "--lang", "zh", "--from", "r1", "--to", "r2"])
    assert result.exit_code == 0, result.output
    assert _text("流失概率由 0.20 上升至 0.70：已84天未下单 (+0.95)") in _text(result.output)
    assert "C2" not in result.output  # regular in both runs: not in the at_risk view


def test_changes_with_one_run_or_a_bad_flag_is_one_line(store):
    _publish(store, _before())
    result = runner.invoke(app, ["changes"])
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if line.strip()] == [
        "error: run r1 has no run published before it to compare with (a rerun of the same as-of, data and models "
        "replaces its run); publish a run of another date, or name one to compare with"]
    assert runner.invoke(app, ["changes", "--top", "0"]).exit_code == 2
    assert runner.invoke(app, ["changes", "--segment", "vip"]).exit_code == 2
    result = runner.invoke(app, ["changes", "--to", "nope"])
    assert result.exit_code == 1 and "to run nope: no such published run" in result.output
    result = runner.invoke(app, ["changes", "--from", "r1", "--to", "r1"])
    assert result.exit_code == 1 and "compared with itself has no changes" in result.output
