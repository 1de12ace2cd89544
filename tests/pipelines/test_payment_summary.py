"""The run summary grades the payment-risk model beside churn and value, or says why a run has none."""

from __future__ import annotations

from pipelines.run_outcome import RunOutcome
from pipelines.run_summary import NO_PAYMENT_MODEL, summary_markdown


def _trained(version: str, grade: str, promoted: bool = True, reason: str = "") -> dict:
    return {"version": version, "grade": grade, "promoted": promoted, "reason": reason}


def test_a_trained_payment_model_is_a_row_with_its_grade_and_gate():
    outcome = RunOutcome("train", name="train 2026-09-30 demo", as_of="2026-09-30", source="demo")
    markdown = summary_markdown(outcome, "completed", {"training": {
        "churn": _trained("3", "A"), "value": _trained("3", "B"),
        "payment": _trained("2", "C", promoted=False, reason="does not beat the baseline")}})
    assert "| churn | v3 | A | promoted |" in markdown
    assert "| payment | v2 | C | not promoted: does not beat the baseline |" in markdown
    assert NO_PAYMENT_MODEL.split(":")[0] not in markdown


def test_a_run_without_payment_risk_says_why():
    outcome = RunOutcome("score", name="score 2026-09-30 demo", as_of="2026-09-30", source="demo")
    markdown = summary_markdown(outcome, "completed", {"published": {
        "run_id": "r", "rows": 5, "store": "/s", "summary": [],
        "models": {"churn": {"version": "1", "grade": "A"}, "value": {"version": "1", "grade": "A"}}}})
    assert "| churn | v1 | A | scored this run |" in markdown
    assert "| payment | - | - | no payment risk this run: no invoices, payment\\_risk.enabled false, or no champion yet |" in markdown
