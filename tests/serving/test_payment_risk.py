"""Payment risk as a scoring run publishes it: grades by threshold, who is scored, reasons, the open invoices."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from models.params import ChurnParams
from models.payment_risk import PaymentRiskModel
from serving.payment_risk import (
    NEW_CUSTOMER_EN,
    NO_INVOICE_EN,
    PAYMENT_RISK_SCHEMA,
    CreditGradeThresholds,
    PaymentRiskScoring,
    PaymentRiskSettings,
    credit_grades,
    open_invoice_risk,
    with_p_pay_late,
)

NAMES = ["has_orders", "days_late_max_180d", "overdue_open_amount", "open_invoice_amount"]


def test_credit_grades_follow_the_thresholds_at_their_lower_edge():
    p = np.array([0.0, 0.0999, 0.10, 0.2499, 0.25, 0.5, 0.99, np.nan])
    assert credit_grades(p, CreditGradeThresholds()).tolist() == ["A", "A", "B", "B", "C", "D", "D", None]
    own = CreditGradeThresholds(B=0.2, C=0.3, D=0.4)
    assert credit_grades(np.array([0.15, 0.35]), own).tolist() == ["A", "C"]


def test_thresholds_that_do_not_increase_are_refused_naming_them():
    with pytest.raises(ValidationError, match="must increase B < C < D"):
        CreditGradeThresholds(B=0.3, C=0.2, D=0.5)


def _training_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    late = rng.uniform(0, 60, n)
    return pd.DataFrame({
        "has_orders": 1.0, "days_late_max_180d": late, "overdue_open_amount": rng.uniform(0, 100, n),
        "open_invoice_amount": rng.uniform(0, 200, n),
        "label": (late + rng.normal(0, 8, n) > 35).astype(int),
    })


@pytest.fixture(scope="module")
def model() -> PaymentRiskModel:
    train, valid = _training_frame(3000, 1), _training_frame(1000, 2)
    params = ChurnParams(n_estimators=60, calibration="none")
    return PaymentRiskModel(params).fit(train[NAMES], train["label"], valid[NAMES], valid["label"], NAMES,
                                        reason_population=valid)


def _chunk() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["late", "punctual", "no_invoice", "prospect"],
        "has_orders": [1.0, 1.0, 1.0, 0.0],
        "days_late_max_180d": [55.0, 0.0, np.nan, np.nan],
        "overdue_open_amount": [90.0, 0.0, 0.0, np.nan],
        "open_invoice_amount": [150.0, 10.0, 0.0, np.nan],
    })


def _scoring(model, **kwargs) -> PaymentRiskScoring:
    return PaymentRiskScoring(PaymentRiskSettings(), model=model, version="3",
                              customers_with_invoices=pa.array(["late", "punctual"]), unusual_percentile=None, **kwargs)


def test_customers_with_history_and_invoices_get_a_risk_the_others_a_reason(model):
    table = _scoring(model).score_chunk(_chunk()).to_pandas().set_index("customer_id")
    assert table.loc["late", "p_pay_late"] > 0.5 > table.loc["punctual", "p_pay_late"]
    assert table.loc["late", "credit_grade"] == "D" and table.loc["punctual", "credit_grade"] == "A"
    assert table.loc[["late", "punctual"], "payment_model_version"].tolist() == ["3", "3"]
    assert table.loc[["no_invoice", "prospect"], "p_pay_late"].isna().all()
    assert table.loc[["no_invoice", "prospect"], "credit_grade"].isna().all()
    assert table.loc["no_invoice", "reason_text_en"] == NO_INVOICE_EN
    assert table.loc["prospect", "reason_text_en"] == NEW_CUSTOMER_EN


def test_reasons_name_the_lateness_in_both_languages_from_exact_contributions(model):
    table = _scoring(model).score_chunk(_chunk()).to_pandas().set_index("customer_id")
    assert table.loc["late", "reason_text_en"].startswith("Raises late-payment risk: paid up to 55 days late in the last 180 days")
    assert table.loc["late", "reason_text_zh"].startswith("推高逾期付款风险：近180天最长逾期55天付款")
    assert "Lowers late-payment risk: never paid late in the last 180 days" in table.loc["punctual", "reason_text_en"]


def test_without_a_model_every_customer_is_unscored_and_told_why():
    scoring = PaymentRiskScoring(PaymentRiskSettings(), absent_en="No payment risk this run: the data has no invoices table.",
                                 absent_zh="本次运行不计算付款风险：数据中没有可用的发票。")
    table = scoring.score_chunk(_chunk()).to_pandas()
    assert table["p_pay_late"].isna().all() and table["credit_grade"].isna().all()
    assert set(table["reason_text_en"]) == {"No payment risk this run: the data has no invoices table."}
    assert set(table["reason_text_zh"]) == {"本次运行不计算付款风险：数据中没有可用的发票。"}


def test_observing_passes_chunks_unchanged_and_collects_one_row_per_customer(model):
    scoring = _scoring(model)
    chunks = [_chunk().iloc[:2], _chunk().iloc[2:]]
    passed = list(scoring.observing(iter(chunks)))
    assert [c is original for c, original in zip(passed, chunks, strict=True)] == [True, True]
    table = scoring.table()
    assert table.schema == PAYMENT_RISK_SCHEMA and table.column("customer_id").to_pylist() == ["late", "punctual", "no_invoice", "prospect"]


def _risk_table() -> pa.Table:
    return pa.table({"customer_id": ["a", "b"], "p_pay_late": [0.4, 0.05], "credit_grade": ["C", "A"],
                     "reason_text_en": ["Raises late-payment risk: x.", "Lowers late-payment risk: y."],
                     "reason_text_zh": ["推高逾期付款风险：x。", "降低逾期付款风险：y。"]})


def test_open_invoices_already_past_the_lateness_are_certain_the_others_take_the_customer_risk():
    as_of = datetime(2026, 1, 31)
    invoices = pd.DataFrame({
        "invoice_id": ["i1", "i2", "i3", "i4"], "customer_id": ["a", "a", "b", "z"],
        "amount_open": [100.0, 300.0, 50.0, 70.0],
        "issued_at": pd.to_datetime(["2025-11-01", "2026-01-10", "2025-12-01", "2026-01-20"]),
        "due_at": pd.to_datetime(["2025-12-01", "2026-02-09", "2025-12-31", "2026-02-19"]),
    })
    table = open_invoice_risk(invoices, _risk_table(), as_of, late_days=30).to_pandas().set_index("invoice_id")
    # i1: 61 days past due > 30, paid late whatever happens; i3: 31 days; i2: due in 9 days; z has no payment risk
    assert table["days_past_due"].to_dict() == {"i1": 61.0, "i3": 31.0, "i2": -9.0, "i4": -19.0}
    assert table.loc["i1", "p_paid_late"] == 1.0 and table.loc["i3", "p_paid_late"] == 1.0
    assert table.loc["i2", "p_paid_late"] == 0.4 and np.isnan(table.loc["i4", "p_paid_late"])
    assert table.index.tolist() == ["i1", "i3", "i2", "i4"]  # certain first, larger amount first among equals
    assert table.loc["i1", "reason_en"] == "61 days past due; already more than 30 days past due: paid late whatever happens now."
    assert table.loc["i2", "reason_en"] == "due in 9 days. Raises late-payment risk: x."
    assert table.loc["i2", "reason_zh"] == "9天后到期。推高逾期付款风险：x。"
    assert table.loc["i2", "credit_grade"] == "C"


def test_the_scorecard_reads_p_pay_late_beside_the_numbers():
    numbers = pd.DataFrame({"customer_id": ["a", "b", "c"], "clv": [1.0, 2.0, 3.0]})
    merged = with_p_pay_late(numbers, _risk_table())
    assert merged["p_pay_late"].tolist()[:2] == [0.4, 0.05] and np.isnan(merged["p_pay_late"].iloc[2])
    assert with_p_pay_late(numbers, None) is numbers


def test_a_scored_customer_with_nothing_unusual_is_told_so_not_left_blank(model):
    from serving.payment_risk import USUAL_RISK_EN, USUAL_RISK_ZH

    usual = pd.DataFrame({"customer_id": ["late"], "has_orders": [1.0], "days_late_max_180d": [30.0],
                          "overdue_open_amount": [50.0], "open_invoice_amount": [100.0]})
    # only values beyond the 100th percentile of the reference would be reasons: none is
    scoring = PaymentRiskScoring(PaymentRiskSettings(), model=model, version="3", customers_with_invoices=pa.array(["late"]),
                                 unusual_percentile=100)
    row = scoring.score_chunk(usual).to_pandas().iloc[0]
    assert row["p_pay_late"] > 0 and (row["reason_text_en"], row["reason_text_zh"]) == (USUAL_RISK_EN, USUAL_RISK_ZH)


def test_a_run_with_payment_risk_publishes_its_tables_and_its_credit_scores_read_p_pay_late(tmp_path):
    """Through score_run: the payment_risk table beside the score table, and the scorecard's credit dimension moving with it.

    The payment model here is fitted on the churn label of the scorecard tests' small world: any fitted
    payment model serves, what is checked is where its p_pay_late goes.
    """
    from features.build import build_features, has_transaction_history
    from features.training_set import build_training_set
    from serving.score_run import score_run
    from serving.settings import ScoringSettings
    from tests.features.conftest import random_frames
    from tests.serving.test_scorecard import AS_OF, SPEC, _models, _tables

    tables = _tables(random_frames(40, seed=5, start=datetime(2022, 1, 1), end=AS_OF))
    models = _models(tables)
    training = build_training_set(tables, AS_OF, spec=SPEC, n_snapshots=3, step_days=90, min_history_days=180)
    names = list(models.churn.feature_names_)
    train, valid = training[~training["is_validation"]], training[training["is_validation"]]
    payment = PaymentRiskModel(ChurnParams(n_estimators=10, calibration="none")).fit(
        train[names], train["label_churn"], valid[names], valid["label_churn"], names)
    features = build_features(tables, AS_OF, SPEC)
    ids = pa.array(features.loc[has_transaction_history(features), "customer_id"].astype(str).tolist())
    settings = ScoringSettings(value_horizon_days=365, annual_discount_rate=0.1)
    runs = [score_run([features], models, settings, tmp_path / name, run_id="r", as_of=AS_OF.date(), payment=scoring)
            for name, scoring in (("without", None), ("with", PaymentRiskScoring(PaymentRiskSettings(), model=payment,
                                                                                  version="1", customers_with_invoices=ids)))]
    assert "payment_risk" not in runs[0].tables
    risk = runs[1].tables["payment_risk"].to_pandas()
    assert sorted(risk["customer_id"]) == sorted(runs[1].numbers.column("customer_id").to_pylist())
    assert risk["p_pay_late"].notna().sum() == len(ids) and "payment_risk" in runs[1].timings
    credit = [run.tables["account_grades"].to_pandas().set_index("customer_id")["credit_score"] for run in runs]
    assert not credit[0].equals(credit[1])  # p_pay_late is one more credit measure once the run has it
