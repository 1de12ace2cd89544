"""`custscore credit` on a published run: payment risk riskiest first, one grade, the open invoices, safe CSV, refusals."""

from __future__ import annotations

import csv
import datetime as dt
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.safe_csv import original_text
from pipelines.cli import app
from serving.payment_risk import (
    NO_INVOICE_EN,
    OPEN_INVOICE_TABLE,
    PAYMENT_RISK_SCHEMA,
    PAYMENT_RISK_TABLE,
    open_invoice_risk,
)
from serving.scored_run import ScoredRun
from serving.store import RunMetadata, ScoreStore
from tests.pipelines.test_cli_actions import explanation_rows, score_rows

runner = CliRunner()
FORMULA = "=1+2"
AS_OF = dt.date(2026, 9, 30)


def _risk() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["c1", "c2", "c3", FORMULA, "c5"], "payment_model_version": ["2", "2", "2", "2", None],
        "p_pay_late": [0.05, 0.62, 0.30, 0.12, None], "credit_grade": ["A", "D", "C", "B", None],
        "overdue_open_amount": [0.0, 1200.0, 80.0, 0.0, 0.0], "open_invoice_amount": [10.0, 1500.0, 80.0, 5.0, 0.0],
        "reason_text_en": ["Lowers late-payment risk: never paid late in the last 180 days.",
                           "Raises late-payment risk: paid up to 41 days late in the last 180 days.",
                           "Raises late-payment risk: overdue unpaid invoices of 80.",
                           "Raises late-payment risk: paid 3 days late on average in the last 90 days.", NO_INVOICE_EN],
        "reason_text_zh": ["降低逾期付款风险：近180天从未逾期付款。", "推高逾期付款风险：近180天最长逾期41天付款。",
                           "推高逾期付款风险：逾期未付发票金额80。", "推高逾期付款风险：近90天平均逾期3天付款。", "评分日前无发票。"],
    })


def _publish(store: ScoreStore, run_id: str, with_credit: bool) -> None:
    scores = score_rows().assign(customer_id=["c1", "c2", "c3", FORMULA, "c5"])
    run = ScoredRun.from_tables(scores, explanation_rows(scores))
    if with_credit:
        import pyarrow as pa

        risk = pa.Table.from_pandas(_risk(), schema=PAYMENT_RISK_SCHEMA, preserve_index=False)
        invoices = pd.DataFrame({"invoice_id": ["i1", "i2", "i3"], "customer_id": ["c2", "c2", "c3"],
                                 "amount_open": [1200.0, 300.0, 80.0],
                                 "issued_at": pd.to_datetime(["2026-07-01", "2026-09-01", "2026-08-01"]),
                                 "due_at": pd.to_datetime(["2026-08-01", "2026-10-01", "2026-09-01"])})
        run.tables[PAYMENT_RISK_TABLE] = risk
        run.tables[OPEN_INVOICE_TABLE] = open_invoice_risk(invoices, risk, AS_OF, late_days=30)
    metadata = RunMetadata(run_id=run_id, as_of=AS_OF, churn_model_version="1", value_model_version="1")
    store.publish(metadata, run)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A home whose store holds a run published before payment risk (old) and one with it (r1, the latest)."""
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    store = ScoreStore(tmp_path / "home" / "store")
    _publish(store, "old", with_credit=False)
    _publish(store, "r1", with_credit=True)
    return tmp_path


def _listed(output: str) -> list[str]:
    return [m.group(1) for line in output.splitlines() if (m := re.match(r"^│ (\S+)\s+│ ([A-D-]) ", line))]


def test_customers_are_listed_riskiest_first_with_grade_and_why(home):
    result = runner.invoke(app, ["credit"])
    assert result.exit_code == 0, result.output
    assert _listed(result.output) == ["c2", "c3", FORMULA, "c1", "c5"]
    assert "paid up to 41 days late" in result.output
    assert "run r1: 1 A, 1 B, 1 C, 1 D, 1 not scored; 5 of 5 shown" in result.output


def test_one_grade_exported_to_csv_keeps_formulas_as_text(home):
    out = home / "b.csv"
    result = runner.invoke(app, ["credit", "--grade", "B", "--output", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["customer_id"] for r in rows] == ["'" + FORMULA] and original_text(rows[0]["customer_id"]) == FORMULA
    assert {"p_pay_late", "credit_grade", "reason_text_en", "reason_text_zh"} <= set(rows[0])


def test_open_invoices_already_late_come_first_in_chinese_on_request(home):
    result = runner.invoke(app, ["credit", "--open-invoices", "--lang", "zh"])
    assert result.exit_code == 0, result.output
    invoices = [m.group(1) for line in result.output.splitlines() if (m := re.match(r"^│ (i\d)\s", line))]
    # i1 is 60 days past due (certain); i2, not due yet, carries c2's 0.62; i3, 29 days past due, c3's 0.30
    assert invoices == ["i1", "i2", "i3"]
    assert "已逾期60天" in result.output
    assert "run r1: 3 open invoices, 1,580 open, 1 already late; 3 of 3 shown" in result.output


@pytest.mark.parametrize("flags, message", [
    (["--grade", "E"], "--grade 'E' is not one of A, B, C, D"),
    (["--output", "x.xlsx"], "--output x.xlsx: unsupported file type"),
    (["--run-id", "old"], "run old (as of 2026-09-30) has no payment_risk table"),
    (["--run-id", "old", "--open-invoices"], "run old (as of 2026-09-30) has no open_invoice_risk table"),
])
def test_refusals_are_one_line(home, flags, message):
    result = runner.invoke(app, ["credit", *flags])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
