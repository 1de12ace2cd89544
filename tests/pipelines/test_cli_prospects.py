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


def test_too_few_prospects_or_a_single_outcome_is_refused_with_the_reason():
    import pandas as pd

    from pipelines.prospects import too_few_prospects

    def frame(n_train: int, n_valid: int, valid_labels: list[int] | None = None) -> pd.DataFrame:
        labels = [i % 2 for i in range(n_train)] + (valid_labels or [i % 2 for i in range(n_valid)])
        return pd.DataFrame({
            "customer_id": [f"t{i}" for i in range(n_train)] + [f"v{i}" for i in range(n_valid)],
            "as_of": [pd.Timestamp("2026-01-01")] * n_train + [pd.Timestamp("2026-04-01")] * n_valid,
            "label_first_order": labels, "is_validation": [False] * n_train + [True] * n_valid})

    assert too_few_prospects(frame(60, 60)) is None
    assert too_few_prospects(frame(60, 10)) == ("the validation snapshot(s) 2026-04-01 hold 10 prospects, fewer than 50")
    assert too_few_prospects(frame(60, 60, [0] * 60)) == (
        "every prospect of the validation snapshot(s) 2026-04-01 has the same outcome")
    assert too_few_prospects(frame(0, 60)) == "the history holds no training snapshot before the validation one"
