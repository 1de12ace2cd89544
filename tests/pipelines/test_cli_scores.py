"""`custscore scores show` and `scores export` as a user meets them: readable reasons, flags refused at once."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving.store import ScoreStore
from tests.serving.test_store import make_explanations, make_scores, metadata, publish, scored_run

runner = CliRunner()
LONG_ZH = ("推高流失风险：已120天未下单；付款平均逾期35天；近90天投诉比前90天多3次；近90天收入比上一个90天下降62%；"
           "最近一年的订单间隔比以前长得多；服务成本在过去180天内翻了一番。")
LONG_EN = ("Raises churn risk: no order for 120 days; invoices paid 35 days late on average; three more complaints "
           "in the last 90 days than the 90 before; revenue of the last 90 days fell 62% from the 90 before.")


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return ScoreStore(tmp_path / "home" / "store")


def _cells_text(output: str) -> str:
    """The table's text with borders, padding and line breaks removed (wrapped cells joined up)."""
    return re.sub(r"[\s│┃|]", "", output)


def _publish_long_reasons(store: ScoreStore) -> None:
    scores = make_scores(3).assign(reason_text_zh=LONG_ZH, reason_text_en=LONG_EN)
    store.publish(metadata("r1"), scored_run(scores, make_explanations(scores)))


@pytest.mark.parametrize("lang,text", [("zh", LONG_ZH), ("en", LONG_EN)])
def test_show_wraps_long_reasons_in_both_languages_instead_of_cutting_them(store, lang, text):
    _publish_long_reasons(store)
    result = runner.invoke(app, ["scores", "show", "--lang", lang, "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert re.sub(r"\s", "", text) in _cells_text(result.output)


def test_show_limit_counts_customers_highest_clv_first(store):
    publish(store, "r1", n=30)
    result = runner.invoke(app, ["scores", "show", "--limit", "2"])
    assert result.exit_code == 0, result.output
    shown = re.findall(r"c\d{5}", result.output)
    assert shown == ["c00029", "c00028"]  # make_scores gives customer i a CLV of 200 + i


@pytest.mark.parametrize("flags,expected", [
    (["--segment", "at-risk"], "--segment 'at-risk' is not one of most_valuable, growth, at_risk, negative_value, new, regular"),
    (["--lang", "fr"], "--lang 'fr' is not one of en, zh"),
    (["--limit", "0"], "--limit 0 is too small; give a whole number of at least 1"),
    (["--as-of", "2026-02-30"], "--as-of '2026-02-30' is not a date"),
])
def test_show_refuses_a_bad_flag_in_one_line_before_reading_the_store(store, flags, expected):
    publish(store, "r1")
    result = runner.invoke(app, ["scores", "show", *flags])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.output


def test_show_of_a_valid_segment_without_customers_names_it(store):
    publish(store, "r1")
    result = runner.invoke(app, ["scores", "show", "--segment", "growth"])
    assert result.exit_code == 1
    assert "no customer of run r1 (as of " in result.output and "matches segment growth" in result.output


def test_export_refuses_an_unsupported_file_type_before_touching_the_store(store, tmp_path):
    result = runner.invoke(app, ["scores", "export", "--output", str(tmp_path / "scores.xlsx")])
    assert result.exit_code == 2
    assert "unsupported file type" in result.output and ".csv or .parquet" in result.output
    assert not store.root.exists()  # the command stopped before preparing the home


def test_as_of_help_of_show_and_export_names_the_latest_run_as_default():
    for command in ("show", "export"):
        result = runner.invoke(app, ["scores", command, "--help"], terminal_width=200)
        text = " ".join(result.output.split())
        assert "default: the latest run" in text and "day after the last transaction" not in text
