"""The HTML run report: every section from a published run, both languages, and the sentences of what a run lacks."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from pipelines.report import (
    ReportInputs,
    ReportOptions,
    Validation,
    read_inputs,
    realised_calibration,
    render_report,
    top_movers,
    transition_matrix,
    write_report,
)
from pipelines.report_plots import pareto_points
from pipelines.report_text import TEXT
from tests.pipelines.report_runs import first_only, two_runs

SECTIONS = ("data-quality", "models", "segments", "pareto", "calibration", "distributions", "drift", "transitions",
            "backtest", "actions", "waterfalls")


class Page(HTMLParser):
    """The sections of a report page: their notes (absent-sentences), images, tables and text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self._current: str | None = None
        self._in_note = False
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._current = attrs["id"]
            self.sections[self._current] = {"notes": [], "images": [], "tables": 0, "text": ""}
        elif self._current and tag == "img":
            self.sections[self._current]["images"].append(attrs["src"])
        elif self._current and tag == "table":
            self.sections[self._current]["tables"] += 1
        elif tag == "p" and attrs.get("class") == "note":
            self._in_note = True
        for name in ("src", "href"):
            if attrs.get(name):
                self.links.append(attrs[name])

    def handle_endtag(self, tag):
        if tag == "section":
            self._current = None
        elif tag == "p":
            self._in_note = False

    def handle_data(self, data):
        if self._current:
            self.sections[self._current]["text"] += data
            if self._in_note:
                self.sections[self._current]["notes"].append(data)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return two_runs(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def later(store) -> ReportInputs:
    validation = {"churn": Validation({"roc_auc": (0.78, 0.70), "brier": (0.15, 0.18)}, calibration_png=_png()),
                  "value": Validation({"normalized_gini": (0.61, 0.52)})}
    return read_inputs(store, "run-second", validation=validation, options=ReportOptions(at_risk_waterfalls=3))


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> ReportInputs:
    return read_inputs(first_only(tmp_path_factory.mktemp("first")), "run-first", options=ReportOptions(at_risk_waterfalls=2))


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def test_the_two_languages_have_the_same_words():
    assert TEXT["en"].keys() == TEXT["zh"].keys()


def test_a_run_with_every_table_fills_every_section_in_english(later):
    page = Page(render_report(later, "en", ReportOptions(at_risk_waterfalls=3)))
    assert tuple(page.sections) == SECTIONS
    for key in ("data-quality", "models", "segments", "drift", "transitions", "backtest"):
        assert page.sections[key]["tables"] >= 1, key
    # the only section this run has nothing for is the action list (no ranking was computed)
    assert {k for k, s in page.sections.items() if any("Not measured" in n for n in s["notes"])} == {"actions"}
    images = {k: len(s["images"]) for k, s in page.sections.items() if s["images"]}
    assert images == {"pareto": 1, "calibration": 2, "distributions": 2, "drift": 1, "waterfalls": 3}
    assert all(src.startswith("data:image/png;base64,") for s in page.sections.values() for src in s["images"])
    assert page.sections["distributions"]["notes"] == [] and "run-first" in page.sections["distributions"]["text"]
    assert "negative_quantity: 7" in page.sections["data-quality"]["text"]
    assert "0.780" in page.sections["models"]["text"] and "0.700" in page.sections["models"]["text"]


def test_the_page_fetches_nothing_from_a_network(later):
    page = Page(render_report(later, "en"))
    assert all(link.startswith(("data:", "#")) for link in page.links)
    assert "http://" not in render_report(later, "en").replace("http://www.w3.org", "")


def test_the_chinese_report_has_chinese_headings_and_the_chinese_reasons(later):
    html = render_report(later, "zh", ReportOptions(at_risk_waterfalls=3))
    page = Page(html)
    assert '<html lang="zh-CN">' in html
    assert "数据质量" in page.sections["data-quality"]["text"] and "价值集中度" in page.sections["pareto"]["text"]
    sentences = later.tables["score_changes"]
    moved = sentences.loc[sentences["p_churn_delta"].abs().idxmax()]
    assert moved["sentence_zh"] in page.sections["transitions"]["text"] and moved["sentence_en"] not in html
    assert "Not measured" not in html and "本次运行未测量" in page.sections["actions"]["text"]


def test_a_first_run_says_plainly_what_it_lacks_and_why(first):
    page = Page(render_report(first, "en", ReportOptions(at_risk_waterfalls=2)))
    notes = {k: " ".join(s["notes"]) for k, s in page.sections.items()}
    assert "no drift table" in notes["drift"]
    assert "needs a previous run" in notes["transitions"]
    assert "custscore backtest --run-id run-first" in notes["backtest"]
    assert "first published run" in notes["distributions"]
    assert "not readable here" in notes["models"] and "not readable here" in notes["calibration"]
    assert "horizon has not passed" in notes["calibration"]
    # what the run does have is still drawn
    assert len(page.sections["distributions"]["images"]) == 2 and len(page.sections["waterfalls"]["images"]) == 2


def test_the_waterfalls_are_the_at_risk_accounts_of_highest_value(later):
    at_risk = later.scores[later.scores["segment"] == "at_risk"].nlargest(3, "clv")
    page = Page(render_report(later, "en", ReportOptions(at_risk_waterfalls=3)))
    text = page.sections["waterfalls"]["text"]
    assert [c for c in re.findall(r"customer (C\d{4})", text)] == at_risk["customer_id"].tolist()


def test_a_run_without_at_risk_customers_says_so(later):
    calm = ReportInputs(**{**later.__dict__, "scores": later.scores.assign(segment="regular")})
    page = Page(render_report(calm, "en"))
    assert page.sections["waterfalls"]["images"] == []
    assert "no customer is in the at_risk segment" in " ".join(page.sections["waterfalls"]["notes"])


def test_pareto_points_by_hand():
    # values 6, 3, 1 and a negative one: the top customer (a quarter) brings 60% of the positive value
    customers, value = pareto_points(pd.Series([1.0, -5.0, 6.0, 3.0]))
    assert customers.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert np.allclose(value, [0.0, 0.6, 0.9, 1.0, 1.0])


def test_the_pareto_curve_and_its_tier_shares_count_only_customers_with_a_tier(monkeypatch):
    from types import SimpleNamespace

    from pipelines import report, report_plots

    drawn = {}

    def pareto_curve(values, tier_shares, cuts, lang):
        drawn.update(customers=len(values), shares=tier_shares)
        return "data:image/png;base64,"

    monkeypatch.setattr(report_plots, "pareto_curve", pareto_curve)
    # four scored customers (A, A, B, C) and four without history: these have no value and no tier
    scores = pd.DataFrame({"clv": [50.0, 30.0, 10.0, 0.0] + [np.nan] * 4,
                           "value_tier": ["A", "A", "B", "C"] + [None] * 4})
    report.pareto_section(SimpleNamespace(scores=scores), TEXT["en"], "en", ReportOptions())
    assert drawn == {"customers": 4, "shares": {"A": 0.5, "B": 0.25, "C": 0.25}}


def test_transition_matrix_puts_from_in_rows_and_to_in_columns():
    table = pd.DataFrame({"from_segment": ["regular", "regular", "at_risk"], "to_segment": ["at_risk", "regular", "at_risk"],
                          "customers": [4, 10, 2]})
    matrix = transition_matrix(table)
    assert matrix.loc["regular", "at_risk"] == 4 and matrix.loc["regular", "regular"] == 10
    assert matrix.loc["at_risk", "regular"] == 0 and matrix.loc["at_risk", "at_risk"] == 2


def test_top_movers_are_the_largest_changes_of_churn_risk_either_way():
    changes = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "status": ["both", "both", "both", "new"],
                            "segment_before": "regular", "segment_after": "regular",
                            "p_churn_before": [0.1, 0.8, 0.5, None], "p_churn_after": [0.2, 0.1, 0.9, 0.99],
                            "p_churn_delta": [0.1, -0.7, 0.4, None],
                            "sentence_en": ["x", "y", "z", "w"], "sentence_zh": ["甲", "乙", "丙", "丁"]})
    movers = top_movers(changes, "zh", 2)  # d is new: it has no change to rank
    assert movers["customer_id"].tolist() == ["b", "c"] and movers["sentence_zh"].tolist() == ["乙", "丙"]
    assert "sentence_en" not in movers


def test_realised_calibration_reads_the_measured_backtest_deciles_in_order():
    rows = pd.DataFrame({"score": "churn", "group_by": "decile", "group": ["10", "02", "01"], "status": "measured",
                         "predicted": [0.9, 0.2, 0.1], "realised": [0.7, 0.3, 0.0]})
    predicted, observed = realised_calibration(rows)
    assert predicted.tolist() == [0.1, 0.2, 0.9] and observed.tolist() == [0.0, 0.3, 0.7]
    assert realised_calibration(rows.assign(status="pending")) is None


def test_the_report_shows_the_latest_backtest_of_an_earlier_run(later):
    page = Page(render_report(later, "en"))
    assert "The scores of run run-first" in page.sections["backtest"]["text"]
    assert later.backtest_of.run_id == "run-first"


def test_write_report_leaves_no_partial_file(later, tmp_path):
    path = write_report(later, "en", tmp_path / "out" / "r.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]



def test_the_action_list_is_shown_when_there_is_one(store):
    def ranked(sink, run_id):
        assert run_id == "run-first"
        return pd.DataFrame({"customer_id": ["C0007", "C0003"], "expected_gain": [120.5, 80.25], "reason": ["no order", "fewer orders"]})

    inputs = read_inputs(store, "run-first", action_list=ranked, options=ReportOptions(at_risk_waterfalls=0))
    section = Page(render_report(inputs, "en", ReportOptions(at_risk_waterfalls=0))).sections["actions"]
    assert section["notes"] == [] and section["tables"] == 1
    assert section["text"].index("C0007") < section["text"].index("C0003") and "120.50" in section["text"]


def test_a_constant_feature_is_listed_last_in_the_drift_table(later):
    from pipelines.report import drift_section
    from pipelines.report_text import text_for

    section = drift_section(later, text_for("en"), "en")
    table = section.tables[0][1]
    assert table.index("days_since_last_order") < table.index("p_churn") < table.index("season_share_next_90d")
    assert len(section.images) == 1  # the chart of the others


class Cells(HTMLParser):
    """The text of every table header cell and data cell of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.data: list[str] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "td"):
            self._cell = self.headers if tag == "th" else self.data
            self._cell.append("")

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[-1] += data.strip()


# The English a Chinese page must not show: the stored column names of the tables it shows, the report's
# English headings of its own tables, and the codes of segments, tiers, drift levels, dimensions, scores.
STORED_COLUMNS = ("name", "kind", "psi", "level", "missing_ref", "missing_now", "new_categories", "vanished_categories",
                  "customers", "score", "metric", "group_by", "group", "status", "predicted", "realised", "value",
                  "validation", "horizon_days", "window_end", "data_end", "customer_id", "segment_before", "segment_after",
                  "p_churn_before", "p_churn_after", "sentence_zh", "rank", "p_churn", "value_at_stake", "save_rate",
                  "offer_cost", "expected_saved_value", "expected_gain", "cumulative_offer_cost", "cumulative_gain",
                  "value_tier", "segment", "churn_reason_features", "reason_to_call_zh")
REPORT_HEADINGS = ("table", "read", "accepted", "duplicates_kept", "quarantined", "reasons", "warnings", "kind", "version",
                   "grade", "metric", "model_value", "baseline_value", "segment", "label", "n_customers", "share",
                   "share_current", "share_predicted", "mean_p_churn", "this_run", "feature")
# (Model grades A/B/C stay letters in both languages: the Chinese caption explains them as such.)
CODES = ("most_valuable", "growth", "at_risk", "negative_value", "new", "regular", "ok", "warn", "severe",
         "constant", "all", "decile", "churn", "value", "measured", "pending", "feature", "transactions",
         "roc_auc", "brier", "churn_rate", "p_churn mean", "clv median", "days_since_last_order")


def test_a_chinese_page_has_no_english_table_header_or_category_code_left(later):
    from dataclasses import replace

    from serving.actions import ACTION_COLUMNS

    actions = pd.DataFrame({c: ["C0001"] if c == "customer_id" else [1] for c in ACTION_COLUMNS if c != "reason_to_call_en"})
    actions = actions.assign(value_tier="A", segment="at_risk", churn_reason_features="days_since_last_order, order_count_90d",
                             reason_to_call_zh="已120天未下单", owner="王")
    inputs = replace(later, actions=actions)
    english = Cells(render_report(inputs, "en", ReportOptions(at_risk_waterfalls=0)))
    chinese = Cells(render_report(inputs, "zh", ReportOptions(at_risk_waterfalls=0)))
    known = set(STORED_COLUMNS) | {TEXT["en"][k] for k in REPORT_HEADINGS if TEXT["en"][k] != TEXT["zh"][k]}
    assert known & set(english.headers), "the English page shows these headers: the check below must be able to fail"
    assert not known & set(chinese.headers), f"English headers on the Chinese page: {sorted(known & set(chinese.headers))}"
    assert set(CODES) & set(english.data) and "at_risk" in english.headers  # the transition matrix names segments
    assert not set(CODES) & set(chinese.data + chinese.headers), sorted(set(CODES) & set(chinese.data + chinese.headers))
    assert "流失预警客户" in chinese.headers and "严重" in chinese.data and "距上次下单天数" in chinese.data
    assert "A 级" in chinese.data and "A" in english.data  # value tiers
    assert "距上次下单天数、近90天订单数" in chinese.data  # the features of a call's reasons, in words
