"""`custscore prospects` flags and the run summary's prospects line (the command on a real run: test_prospects_end_to_end.py)."""

from __future__ import annotations

from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.cli_prospects import published_line

runner = CliRunner()


def test_the_summary_line_says_what_was_scored_or_why_not():
    scored = {"model_version": "2", "grade": "B", "scored": 1234, "potential": 247}
    assert published_line(scored) == ("prospects: 1,234 scored with prospect v2 (grade B), 247 potential accounts; "
                                      "`custscore prospects` lists them")
    assert published_line({"skipped": "the data has no customers table"}) == (
        "prospects: not scored, the data has no customers table")
    assert published_line(None) == "prospects: not scored"


def test_bad_flags_are_refused_before_the_store_is_opened(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    for args, word in ((["--top", "0"], "--top"), (["--lang", "fr"], "--lang"), (["--output", "x.xlsx"], "--output")):
        result = runner.invoke(app, ["prospects", *args])
        assert result.exit_code == 2 and word in result.output, result.output
    assert not (tmp_path / "home" / "store").exists()
