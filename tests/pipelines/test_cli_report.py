"""`custscore report` for a past run, as a user meets it, and the run summary's report line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.cli_report import report_lines
from tests.pipelines.report_runs import two_runs

runner = CliRunner()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    two_runs(tmp_path / "home" / "store")
    return tmp_path / "home"


def test_report_of_a_past_run_in_chinese_to_a_chosen_file(home, tmp_path):
    output = tmp_path / "first.html"
    result = runner.invoke(app, ["report", "--run-id", "run-first", "--lang", "zh", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert f"report of run run-first (as of 2026-06-30) written to {output}" in " ".join(result.output.split())
    html = output.read_text(encoding="utf-8")
    assert "custscore 运行报告" in html and "run-first" in html and "run-second" not in html


def test_report_without_flags_writes_the_latest_run_into_the_home(home):
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert (home / "reports" / "run-second.en.html").exists()


def test_report_of_an_unknown_run_is_one_line_naming_it(home):
    result = runner.invoke(app, ["report", "--run-id", "run-typo"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "run-typo" in lines[0]
    assert not (home / "reports").exists()


@pytest.mark.parametrize(("flags", "says"), [(["--lang", "fr"], "--lang 'fr'"), (["--output", "r.pdf"], "ending in .html")])
def test_report_refuses_bad_flags_before_any_work(home, flags, says):
    result = runner.invoke(app, ["report", *flags])
    assert result.exit_code == 2 and says in result.output


def test_the_run_summary_names_the_reports_or_why_there_is_none():
    assert report_lines({"run_id": "r", "reports": {"en": "/h/reports/r.en.html"}}) == ["[bold]report[/] /h/reports/r.en.html"]
    (line,) = report_lines({"run_id": "r", "report_error": "OSError: disk full"})
    assert "no report written: OSError: disk full" in line and "custscore report --run-id r" in line


def test_the_run_summary_prints_where_each_report_is():
    from pipelines.cli import _print_published, console

    published = {"as_of": "2026-07-01", "run_id": "r1", "summary": [], "rows": 10, "store": "/h/store",
                 "models": {"churn": {"version": "1", "grade": "A"}, "value": {"version": "2", "grade": "B"}},
                 "reports": {"en": "/h/reports/r1.en.html", "zh": "/h/reports/r1.zh.html"}}
    with console.capture() as captured:
        _print_published(published)
    lines = captured.get().splitlines()
    assert lines[-2:] == ["report /h/reports/r1.en.html", "report /h/reports/r1.zh.html"]
