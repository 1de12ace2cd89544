"""Payment risk for credit control: `p_pay_late`, `credit_grade` and reasons per customer, and the open invoices at risk.

A scoring run passes its feature chunks through `PaymentRiskScoring.observing`: each chunk's
customers with a transaction line and an invoice before the as-of date get the payment-risk
champion's probability that an invoice issued in the next `horizon_days` is paid more than
`late_days` after its due date (models/payment_risk.py), a credit grade A-D by the configured
thresholds, and the reasons of exact TreeSHAP in English and Chinese, as the score table's
reasons are made (serving/reasons.py, serving/reason_encoding.py; the sentences only: the `reasons`
JSON would double the table's memory at a million customers). Every other customer gets an
empty score and a sentence saying why (no invoices table, no payment-risk model, no invoice of
the customer). The rows form the run's `payment_risk` table, one per customer of the score
table, joined on customer_id.

`open_invoice_risk` lists every invoice open at the as-of date (issued before it, not paid
before it) for the collection list: the open amount, the due date, the days past due, and the
probability it ends up paid more than `late_days` late. That is 1 for an invoice already more
than `late_days` past due (its outcome is settled) and the customer's `p_pay_late` otherwise:
the same model, read for the invoice the customer owes (docs/CREDIT.md says why and what it misses).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.build import has_transaction_history
from models.explain import check_additivity, contributions
from models.reason_reference import actionable
from serving.credit_settings import CREDIT_GRADES, CreditGradeThresholds, PaymentRiskSettings
from serving.reason_encoding import reason_columns_table
from serving.reasons import reasons_table

PAYMENT_RISK_TABLE = "payment_risk"
OPEN_INVOICE_TABLE = "open_invoice_risk"
PAYMENT_RISK_SCHEMA = pa.schema([
    ("customer_id", pa.string()),
    ("payment_model_version", pa.string()),
    ("p_pay_late", pa.float64()),
    ("credit_grade", pa.string()),
    ("overdue_open_amount", pa.float64()),
    ("open_invoice_amount", pa.float64()),
    ("reason_text_en", pa.string()),
    ("reason_text_zh", pa.string()),
])
OPEN_INVOICE_SCHEMA = pa.schema([
    ("invoice_id", pa.string()),
    ("customer_id", pa.string()),
    ("amount_open", pa.float64()),
    ("issued_at", pa.timestamp("us")),
    ("due_at", pa.timestamp("us")),
    ("days_past_due", pa.float64()),  # negative: not due yet
    ("p_paid_late", pa.float64()),
    ("credit_grade", pa.string()),
    ("reason_en", pa.string()),
    ("reason_zh", pa.string()),
])
# The columns of the open invoices a run reads from its data (pipelines gives them).
OPEN_INVOICE_INPUT_COLUMNS = ("invoice_id", "customer_id", "amount_open", "issued_at", "due_at")

NO_INVOICE_EN = "No invoice before the scoring date: no payment record to judge, so no payment risk."
NO_INVOICE_ZH = "评分日前无发票：没有付款记录可供评估，不计算付款风险。"
# A scored customer none of whose facts is unusual enough to be a reason (scoring.unusual_reasons).
USUAL_RISK_EN = "Nothing in the customer's record stands out: a payment risk like that of most customers with invoices."
USUAL_RISK_ZH = "客户记录中无突出因素：付款风险与多数有发票的客户相当。"
NEW_CUSTOMER_EN = "No transaction before the scoring date: a new customer, no payment risk yet."
NEW_CUSTOMER_ZH = "评分日前尚无任何交易记录：新客户，暂不计算付款风险。"


def credit_grades(p: np.ndarray, thresholds: CreditGradeThresholds) -> np.ndarray:
    """A-D by p_pay_late: A below B's threshold, D from D's; None where p is missing."""
    p = np.asarray(p, dtype=float)
    index = np.searchsorted(np.array([thresholds.B, thresholds.C, thresholds.D]), p, side="right")
    return np.where(np.isnan(p), None, np.array(CREDIT_GRADES, dtype=object)[np.minimum(index, 3)])


@dataclass
class PaymentRiskScoring:
    """What a scoring run needs for payment risk, and the rows it collects chunk by chunk.

    `model` None (or `absent_en`/`absent_zh` given) scores nobody and says why on every row;
    `customers_with_invoices`: ids of the customers with an invoice issued before the as-of date.
    """

    settings: PaymentRiskSettings
    model: Any | None = None
    version: str | None = None
    model_run_id: str | None = None  # the MLflow run that trained the model, for the run's metadata
    customers_with_invoices: pa.Array | None = None
    open_invoices: pd.DataFrame | None = None
    absent_en: str | None = None
    absent_zh: str | None = None
    reasons_per_direction: int = 3
    distinct_reasons: bool = True
    unusual_percentile: int | None = 80
    additivity_atol: float = 1e-6
    parts: list[pa.Table] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def scores(self) -> bool:
        """Whether this run scores payment risk at all."""
        return self.model is not None and self.absent_en is None

    def observing(self, chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """The chunks unchanged; each one's payment-risk rows kept."""
        for chunk in chunks:
            started = time.perf_counter()
            self.parts.append(self.score_chunk(chunk))
            self.seconds += time.perf_counter() - started
            yield chunk

    def score_chunk(self, chunk: pd.DataFrame) -> pa.Table:
        """The payment-risk rows of one feature chunk, in the chunk's customer order."""
        chunk = chunk.reset_index(drop=True)
        ids = chunk["customer_id"].astype(str).to_numpy()
        n = len(chunk)
        p = np.full(n, np.nan)
        en = np.full(n, self.absent_en or NO_INVOICE_EN, dtype=object)
        zh = np.full(n, self.absent_zh or NO_INVOICE_ZH, dtype=object)
        history = has_transaction_history(chunk)
        en[~history], zh[~history] = (NEW_CUSTOMER_EN, NEW_CUSTOMER_ZH) if self.absent_en is None else (self.absent_en, self.absent_zh)
        if self.scores:
            invoiced = pc.is_in(pa.array(ids, pa.string()), value_set=self.customers_with_invoices).to_numpy(zero_copy_only=False)
            scored = np.flatnonzero(history & invoiced)
            if len(scored):
                p[scored], texts = self._predict_and_explain(chunk.iloc[scored].reset_index(drop=True))
                en[scored] = [t or USUAL_RISK_EN for t in texts.column("reason_text_en").to_pylist()]
                zh[scored] = [t or USUAL_RISK_ZH for t in texts.column("reason_text_zh").to_pylist()]
        return pa.table({
            "customer_id": pa.array(ids, pa.string()),
            "payment_model_version": pa.array([self.version if self.scores else None] * n, pa.string()),
            "p_pay_late": pa.array(p, pa.float64(), from_pandas=True),
            "credit_grade": pa.array(credit_grades(p, self.settings.grade_thresholds), pa.string()),
            "overdue_open_amount": _column_or_null(chunk, "overdue_open_amount"),
            "open_invoice_amount": _column_or_null(chunk, "open_invoice_amount"),
            "reason_text_en": pa.array(en, pa.string()),
            "reason_text_zh": pa.array(zh, pa.string()),
        }, schema=PAYMENT_RISK_SCHEMA)

    def _predict_and_explain(self, features: pd.DataFrame) -> tuple[np.ndarray, pa.Table]:
        """Probabilities and the reason columns of customers with history and invoices (additivity checked)."""
        names = list(self.model.feature_names_)
        X = features[names]
        raw = self.model.predict_raw(X)
        contrib = contributions(self.model.booster_, X)
        check_additivity(contrib, raw, atol=self.additivity_atol * max(1.0, float(np.abs(contrib).max())))
        k = self.reasons_per_direction
        table = reasons_table(actionable(contrib, X), X, names, score="payment", k=k,
                              distinct_facts=self.distinct_reasons,
                              reference=getattr(self.model, "reason_reference_", None),
                              unusual_percentile=self.unusual_percentile)
        return self.model.proba_from_raw(raw), reason_columns_table([table], len(features), k=k)

    def table(self) -> pa.Table:
        """The run's payment_risk table (every customer of the chunks seen)."""
        return pa.concat_tables(self.parts) if self.parts else PAYMENT_RISK_SCHEMA.empty_table()

    def tables(self, as_of) -> dict[str, pa.Table]:
        """The tables the run publishes: payment_risk, and open_invoice_risk when the data has invoices."""
        risk = self.table()
        out = {PAYMENT_RISK_TABLE: risk}
        if self.open_invoices is not None:
            out[OPEN_INVOICE_TABLE] = open_invoice_risk(self.open_invoices, risk, as_of, self.settings.late_days)
        return out


def _column_or_null(chunk: pd.DataFrame, column: str) -> pa.Array:
    if column not in chunk.columns:
        return pa.nulls(len(chunk), pa.float64())
    return pa.array(chunk[column].to_numpy(dtype=float), pa.float64(), from_pandas=True)


def open_invoice_risk(open_invoices: pd.DataFrame, risk: pa.Table, as_of, late_days: int) -> pa.Table:
    """Every open invoice at as_of with its days past due and probability of ending up more than `late_days` late.

    Highest probability first, then the largest open amount: the order a collection list is worked in.
    """
    missing = [c for c in OPEN_INVOICE_INPUT_COLUMNS if c not in open_invoices.columns]
    if missing:
        raise ValueError(f"open_invoice_risk: the open invoices lack column(s) {missing}; give {list(OPEN_INVOICE_INPUT_COLUMNS)}")
    frame = open_invoices.loc[:, list(OPEN_INVOICE_INPUT_COLUMNS)].copy()
    frame["customer_id"] = frame["customer_id"].astype(str)
    customers = risk.select(["customer_id", "p_pay_late", "credit_grade", "reason_text_en", "reason_text_zh"]).to_pandas()
    frame = frame.merge(customers, on="customer_id", how="left")
    moment = pd.Timestamp(as_of)
    days = ((moment - pd.to_datetime(frame["due_at"])).dt.total_seconds() / 86_400).to_numpy(dtype=float)
    settled = days > late_days
    p = np.where(settled, 1.0, frame["p_pay_late"].to_numpy(dtype=float))
    whole = np.floor(np.abs(days)).astype(int)
    state_en = np.where(days > 0, [f"{d} days past due" for d in whole], [f"due in {d} days" for d in whole])
    state_zh = np.where(days > 0, [f"已逾期{d}天" for d in whole], [f"{d}天后到期" for d in whole])
    late_en = f"already more than {late_days} days past due: paid late whatever happens now."
    late_zh = f"已逾期超过{late_days}天：无论何时付款都已属逾期。"
    customer_en = frame["reason_text_en"].fillna(NO_INVOICE_EN).to_numpy(dtype=object)
    customer_zh = frame["reason_text_zh"].fillna(NO_INVOICE_ZH).to_numpy(dtype=object)
    frame["days_past_due"] = days
    frame["p_paid_late"] = p
    frame["reason_en"] = [f"{s}; {late_en}" if done else f"{s}. {c}" for s, done, c in zip(state_en, settled, customer_en, strict=True)]
    frame["reason_zh"] = [f"{s}；{late_zh}" if done else f"{s}。{c}" for s, done, c in zip(state_zh, settled, customer_zh, strict=True)]
    frame = frame.sort_values(["p_paid_late", "amount_open", "invoice_id"], ascending=[False, False, True],
                              na_position="last", kind="stable")
    frame["issued_at"] = pd.to_datetime(frame["issued_at"]).astype("datetime64[us]")
    frame["due_at"] = pd.to_datetime(frame["due_at"]).astype("datetime64[us]")
    return pa.Table.from_pandas(frame[OPEN_INVOICE_SCHEMA.names], schema=OPEN_INVOICE_SCHEMA, preserve_index=False)


def credit_reader_frame(risk: pd.DataFrame, grade: str | None = None) -> pd.DataFrame:
    """A published payment_risk table as credit control reads it: riskiest first, one grade or all."""
    frame = risk if grade is None else risk.loc[risk["credit_grade"] == grade]
    return frame.sort_values(["p_pay_late", "customer_id"], ascending=[False, True], na_position="last").reset_index(drop=True)


def with_p_pay_late(numbers: pd.DataFrame, risk: pa.Table | None) -> pd.DataFrame:
    """The run's numbers with each customer's p_pay_late beside them (as they are without a payment_risk table)."""
    if risk is None or risk.num_rows == 0 or "p_pay_late" in numbers.columns:
        return numbers
    p = risk.select(["customer_id", "p_pay_late"]).to_pandas()
    return numbers.merge(p.drop_duplicates("customer_id"), on="customer_id", how="left")
