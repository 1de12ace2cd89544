"""What a scoring run gives serving/payment_risk.py: the payment champion, who has invoices, the open invoices.

Every reason a run has no payment risk (switched off, no invoices, no champion, a champion
that cannot be read or needs features this run lacks) becomes the sentence on every customer's
row of the `payment_risk` table, in both languages; the run itself goes on.
"""

from __future__ import annotations

import logging

import ibis
import pandas as pd

from features.build import feature_columns
from features.payment_labels import customers_with_invoices_before
from features.tables import columns_of
from models.model_files import ModelFileError
from pipelines import tracking
from pipelines.payment_training import KIND, payment_risk_unavailable
from pipelines.run_outcome import add_warning
from pipelines.runs import Run
from pipelines.tasks import feature_spec, midnight
from serving.payment_risk import PaymentRiskScoring

log = logging.getLogger(__name__)

NO_MODEL_ZH = "尚无通过检验的付款风险模型，本次不计算付款风险。"
NOT_SCORED_ZH = "本次运行不计算付款风险：{reason}。"


def payment_scoring_for(run: Run) -> PaymentRiskScoring:
    """The payment-risk part of a scoring run: the champion and the run's invoices, or why there is none."""
    settings = run.cfg.payment_risk
    scoring = run.cfg.scoring
    common = {"settings": settings, "reasons_per_direction": scoring.reasons_per_direction,
              "distinct_reasons": scoring.distinct_reasons, "unusual_percentile": scoring.unusual_reasons.percentile}
    reason = payment_risk_unavailable(run)
    if reason is not None:
        zh = "配置中已关闭付款风险（payment_risk.enabled: false）" if not settings.enabled else "数据中没有可用的发票"
        return PaymentRiskScoring(**common, absent_en=f"No payment risk this run: {reason}.",
                                  absent_zh=NOT_SCORED_ZH.format(reason=zh))
    champion, why = _payment_champion(run)
    open_invoices = open_invoices_at(run)
    if champion is None:
        return PaymentRiskScoring(**common, open_invoices=open_invoices, absent_en=f"No payment risk this run: {why}.",
                                  absent_zh=NO_MODEL_ZH)
    invoiced = customers_with_invoices_before(run.data.tables["invoices"], midnight(run.as_of)).to_pyarrow()
    return PaymentRiskScoring(**common, model=champion.model, version=champion.version, model_run_id=champion.run_id,
                              customers_with_invoices=invoiced.column("customer_id").combine_chunks().cast("string"),
                              open_invoices=open_invoices)


def _payment_champion(run: Run) -> tuple[tracking.Champion | None, str]:
    """The payment champion, or None and why (a warning where a person should act)."""
    try:
        champion = tracking.load_champion(KIND)
    except ModelFileError as exc:
        add_warning("model", f"payment risk not scored: {exc}")
        return None, "its model file cannot be read safely; retrain with `custscore run --retrain`"
    if champion is None:
        return None, "no payment-risk model has passed its gate yet (`custscore train` trains one)"
    built = set(feature_columns(feature_spec(run.cfg), columns_of(run.data.tables)))
    missing = [c for c in champion.model.feature_names_ if c not in built]
    if missing:
        add_warning("model", f"payment risk not scored: the champion {tracking.model_name(KIND)} v{champion.version} "
                             f"uses {len(missing)} feature columns this run does not build, e.g. {missing[:3]}; retrain")
        return None, "its model needs features this run does not build; retrain"
    return champion, ""


def open_invoices_at(run: Run) -> pd.DataFrame:
    """Invoices open at the run's date: issued before it and not paid before it, with their open amount."""
    invoices = run.data.tables["invoices"]
    moment = ibis.timestamp(midnight(run.as_of))
    open_now = invoices.filter((invoices.issued_at < moment) & (invoices.paid_at.isnull() | (invoices.paid_at >= moment)))
    return open_now.select("invoice_id", "customer_id", amount_open=open_now.amount, issued_at=open_now.issued_at,
                           due_at=open_now.due_at).to_pyarrow().to_pandas()


def with_payment_champion(champions: dict, payment: PaymentRiskScoring) -> dict:
    """The champions a run's metadata names: churn and value, and the payment model when it scored."""
    if not payment.scores:
        return champions
    return {**champions, KIND: tracking.Champion(payment.model, str(payment.version), str(payment.model_run_id))}
