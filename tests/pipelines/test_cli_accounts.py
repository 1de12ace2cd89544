"""`custscore accounts` on a published run: the graded accounts shown, filtered, exported safely, refusals."""

from __future__ import annotations

import csv
import datetime as dt
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.safe_csv import original_text
from pipelines.cli import app
from serving.scorecard import ACCOUNT_GRADE_COLUMNS, ScorecardRules, account_grades, scorecard_inputs
from serving.scored_run import ScoredRun
from serving.store import RunMetadata, ScoreStore
from tests.pipelines.test_cli_actions import explanation_rows, score_rows
from tests.serving.test_scorecard import features, numbers

runner = CliRunner()
# The five customers of tests/serving/test_scorecard.py, graded there by hand, e renamed to a formula:
# c key 77.6, a key 76.7, b regular 53.75, d potential 25.5, e potential 18.3
FORMULA = "=1+2"


def _renamed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(customer_id=frame["customer_id"].replace({"e": FORMULA}))


def _publish(store: ScoreStore, run_id: str, with_grades: bool) -> None:
    scores = score_rows().assign(customer_id=["a", "b", "c", "d", FORMULA])
    run = ScoredRun.from_tables(scores, explanation_rows(scores))
    if with_grades:
        card = account_grades(scorecard_inputs(_renamed(numbers()), _renamed(features())), ScorecardRules())
        run.tables["account_grades"] = card
    metadata = RunMetadata(run_id=run_id, as_of=dt.date(2026, 9, 30), churn_model_version="1", value_model_version="1")
    store.publish(metadata, run)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A home whose store holds a run published before the scorecard (old) and one with its grades (r1, the latest)."""
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    store = ScoreStore(tmp_path / "home" / "store")
    _publish(store, "old", with_grades=False)
    _publish(store, "r1", with_grades=True)
    return tmp_path


def _listed(output: str) -> list[str]:
    return [m.group(1) for line in output.splitlines() if (m := re.match(r"^│ (\S+)\s+│ (key|regular|potential)", line))]


def test_the_accounts_are_listed_best_first_with_their_grade_and_why(home):
    result = runner.invoke(app, ["accounts"])
    assert result.exit_code == 0, result.output
    assert _listed(result.output) == ["c", "a", "b", "d", FORMULA]
    assert "decided by value 75 and growth 100" in result.output
    assert "run r1: 2 key, 1 regular, 2 potential; 5 of 5 accounts shown" in result.output
    assert re.search(r"│ c +│ key account +│ +77 │", result.output)  # cut to whole points, as in the sentence


def test_one_grade_exported_to_csv_keeps_formulas_as_text(home):
    out = home / "key.csv"
    result = runner.invoke(app, ["accounts", "--grade", "potential", "--output", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [original_text(r["customer_id"]) for r in rows] == ["d", FORMULA]
    assert rows[1]["customer_id"] == "'" + FORMULA  # a spreadsheet shows it, does not run it
    assert set(ACCOUNT_GRADE_COLUMNS) <= set(rows[0]) and {r["account_grade"] for r in rows} == {"potential"}
    assert "2 accounts of run r1" in result.output


def test_chinese_sentences_on_request(home):
    result = runner.invoke(app, ["accounts", "--lang", "zh", "--grade", "key", "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "重点客户（综合得分 77/100；70 分起为重点）" in result.output
    assert "key account" not in result.output and "run r1: 2 key; 1 of 2 accounts shown" in result.output


@pytest.mark.parametrize("flags, message", [
    (["--grade", "gold"], "--grade 'gold' is not one of key, regular, potential"),
    (["--output", "x.xlsx"], "--output x.xlsx: unsupported file type"),
    (["--run-id", "old"], "run old (as of 2026-09-30) has no account_grades table"),
])
def test_refusals_are_one_line(home, flags, message):
    result = runner.invoke(app, ["accounts", *flags])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
