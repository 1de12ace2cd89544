"""Payment risk through the main job: trained and gated beside churn and value, published per customer and per
open invoice, read by the scorecard and `custscore credit`; data without invoices skips it and says why."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
import pytest
from typer.testing import CliRunner

from demo import generate_demo_data, write_demo_data

pytestmark = pytest.mark.slow

N_CUSTOMERS = 1200
AS_OF = "2026-07-01"


def _config(root):
    from pipelines.config import DEFAULT_CONFIG

    text, replaced = re.subn(r"chunk_size: \d+", "chunk_size: 500", DEFAULT_CONFIG.read_text())
    assert replaced == 1
    (root / "config.yaml").write_text(text)
    (root / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    return root / "config.yaml"


def _run(root, tables, name: str):
    """The main job on `tables` in a home of its own; (result, home)."""
    from pipelines.flows import retrain_and_score_flow

    write_demo_data(tables, root / name / "data", "parquet")
    patch = pytest.MonkeyPatch()
    patch.setenv("CUSTSCORE_HOME", str(root / name / "home"))
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        result = retrain_and_score_flow(data=str(root / name / "data"), as_of=AS_OF, config=str(_config(root)),
                                        retrain=False)
    finally:
        patch.undo()
    return result, root / name / "home"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tmp_path_factory.mktemp("payment"), generate_demo_data(N_CUSTOMERS, seed=5, end=date(2026, 6, 30))


@pytest.fixture(scope="module")
def with_invoices(world, prefect_harness):
    root, tables = world
    return _run(root, tables, "invoices")


@pytest.fixture(scope="module")
def without_invoices(world, prefect_harness):
    root, tables = world
    return _run(root, {k: v for k, v in tables.items() if k != "invoices"}, "no_invoices")


def _tables(home, run_id):
    from serving.store import ScoreStore

    store = ScoreStore(home / "store")
    return store, {name: store.read_table(name, run_id=run_id) for name in ("payment_risk", "open_invoice_risk")}


def test_payment_model_is_trained_graded_and_promoted_beside_the_others(with_invoices):
    result, _ = with_invoices
    payment = result["training"]["payment"]
    assert payment["metrics"]["roc_auc"] >= payment["baseline_metrics"]["roc_auc"] + 0.03, payment
    assert payment["promoted"] and payment["grade"] == "A"
    assert result["published"]["models"]["payment"]["version"] == payment["version"]


def test_every_customer_has_a_payment_row_scored_where_invoices_exist(with_invoices):
    result, home = with_invoices
    store, tables = _tables(home, result["published"]["run_id"])
    risk, scores = tables["payment_risk"], store.read_scores(run_id=result["published"]["run_id"])
    assert sorted(risk["customer_id"]) == sorted(scores["customer_id"])
    scored = risk["p_pay_late"].notna()
    assert scored.mean() > 0.8 and risk.loc[scored, "p_pay_late"].between(0, 1).all()
    assert risk.loc[scored, "credit_grade"].isin(["A", "B", "C", "D"]).all()
    assert risk.loc[scored, "reason_text_en"].str.contains("late-payment risk|stands out").all()
    assert risk.loc[scored, "reason_text_zh"].str.contains("逾期付款风险|无突出因素").all()
    assert risk.loc[~scored, "credit_grade"].isna().all()
    assert risk.loc[~scored, "reason_text_en"].str.startswith("No ").all()


def test_open_invoices_at_the_as_of_date_are_listed_with_their_risk(with_invoices):
    result, home = with_invoices
    _, tables = _tables(home, result["published"]["run_id"])
    invoices = tables["open_invoice_risk"]
    assert len(invoices) > 0 and (invoices["issued_at"] < pd.Timestamp(AS_OF)).all()
    overdue = invoices["days_past_due"] > 30
    assert (invoices.loc[overdue, "p_paid_late"] == 1.0).all()
    assert invoices["p_paid_late"].is_monotonic_decreasing


def test_the_credit_command_reads_the_published_risk(with_invoices, monkeypatch):
    from pipelines.cli import app

    result, home = with_invoices
    monkeypatch.setenv("CUSTSCORE_HOME", str(home))
    out = CliRunner().invoke(app, ["credit", "--grade", "D", "--limit", "3"])
    assert out.exit_code == 0, out.output
    assert "Raises late-payment risk" in out.output and f"run {result['published']['run_id']}" in out.output


def test_data_without_invoices_skips_payment_risk_and_every_row_says_why(without_invoices):
    result, home = without_invoices
    assert "payment" not in result["training"] and result["training"]["churn"]["promoted"]
    _, tables = _tables(home, result["published"]["run_id"])
    assert tables["open_invoice_risk"] is None
    risk = tables["payment_risk"]
    assert risk["p_pay_late"].isna().all()
    assert set(risk["reason_text_en"]) == {"No payment risk this run: the data has no invoices table."}
