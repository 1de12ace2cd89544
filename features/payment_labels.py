"""Payment-risk labels as of a date T, as Ibis expressions executed on DuckDB, and their training set.

For snapshot T, horizon H days and lateness N days:

- An invoice counts when it is issued in [T, T + H) and its outcome is known by the data end:
  paid before the data end (late when paid_at - due_at > N days), or still unpaid at the data
  end more than N days past its due date (late). An invoice unpaid at the data end and not yet
  N days past due has no known outcome and is left out; so is a payment on or after the data end
  (the data cannot have seen it).
- label_pay_late = 1 when any counted invoice of the customer is late, else 0;
  label_pay_late_invoices: how many invoices were counted. A customer without a counted invoice
  issued in the window has no label (no row).

Invoices issued before T, and payments of them on or after T, are no part of the label: what
happens to them after T is tomorrow's news for the features, never a label at T.

The training set (`build_payment_training_set`) holds, per snapshot, the customers with a
transaction line and an invoice issued before T (the customers scoring gives a payment risk)
that have a label, with every feature of `features.build` as of T.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.build import FeatureSpec, build_features, to_feature_frame
from features.families.season_share import season_share_columns
from features.tables import to_naive_utc
from features.training_set import SnapshotPlan, data_start_of, materialised, plan_snapshots, sample_customers
from features.transactions import SECONDS_PER_DAY

logger = logging.getLogger(__name__)

PAYMENT_LABEL = "label_pay_late"
PAYMENT_LABELS = [PAYMENT_LABEL, "label_pay_late_invoices"]
REQUIRED_INVOICE_COLUMNS = ("customer_id", "issued_at", "due_at", "paid_at")


class PaymentLabelError(ValueError):
    """The invoices cannot give payment labels (a missing column, a window past the data end)."""


def has_payment_outcomes(tables: Mapping[str, ir.Table]) -> str | None:
    """None when the tables can give payment labels, else the reason in one sentence."""
    invoices = tables.get("invoices")
    if invoices is None:
        return "the data has no invoices table"
    missing = [c for c in REQUIRED_INVOICE_COLUMNS if c not in invoices.columns]
    if missing:
        return f"the invoices table has no {', '.join(missing)} column"
    return None


def customers_with_invoices_before(invoices: ir.Table, as_of: datetime) -> ir.Table:
    """customer_id of every customer with an invoice issued before as_of: those with a payment record to judge."""
    return invoices.filter(invoices.issued_at < ibis.timestamp(to_naive_utc(as_of))).select("customer_id").distinct()


def payment_labels_expr(invoices: ir.Table, as_of: datetime, *, horizon_days: int, late_days: int,
                        data_end: datetime) -> ir.Table:
    """customer_id, label_pay_late, label_pay_late_invoices of customers with a known invoice outcome in the window."""
    as_of, data_end = to_naive_utc(as_of), to_naive_utc(data_end)
    if as_of + timedelta(days=horizon_days) > data_end:
        raise PaymentLabelError(
            f"payment labels as of {as_of:%Y-%m-%d}: the {horizon_days}-day invoice window ends "
            f"{as_of + timedelta(days=horizon_days):%Y-%m-%d}, after the data end {data_end:%Y-%m-%d}; "
            "choose an earlier snapshot or a shorter payment_risk.horizon_days")
    end = as_of + timedelta(days=horizon_days)
    window = invoices.filter((invoices.issued_at >= ibis.timestamp(as_of)) & (invoices.issued_at < ibis.timestamp(end)))
    late_seconds = float(late_days * SECONDS_PER_DAY)
    due_s = window.due_at.epoch_seconds()
    paid_known = window.paid_at.notnull() & (window.paid_at < ibis.timestamp(data_end))
    paid_late = paid_known & ((window.paid_at.epoch_seconds() - due_s) > late_seconds)
    unpaid_late = ~paid_known & ((ibis.literal(int((data_end - datetime(1970, 1, 1)).total_seconds())) - due_s) > late_seconds)
    known = window.mutate(_known=paid_known | unpaid_late, _late=(paid_late | unpaid_late).cast("int8"))
    known = known.filter(known._known)
    return known.group_by("customer_id").aggregate(
        label_pay_late=known._late.max().cast("int8"),
        label_pay_late_invoices=known.count().cast("int32"),
    )


def build_payment_labels(tables: Mapping[str, ir.Table], as_of: datetime, *, horizon_days: int = 90,
                         late_days: int = 30, data_end: datetime) -> pd.DataFrame:
    """Payment labels as of `as_of` (customer_id order); empty when no invoice outcome is known."""
    reason = has_payment_outcomes(tables)
    if reason is not None:
        raise PaymentLabelError(f"no payment labels: {reason}; payment risk needs invoices with "
                                f"{', '.join(REQUIRED_INVOICE_COLUMNS)}")
    expr = payment_labels_expr(tables["invoices"], as_of, horizon_days=horizon_days, late_days=late_days,
                               data_end=data_end)
    return expr.order_by("customer_id").to_pyarrow().to_pandas()


def payment_snapshot_rows(tables: Mapping[str, ir.Table], as_of: datetime, *, spec: FeatureSpec, horizon_days: int,
                          late_days: int, data_end: datetime, moments: ir.Table | None = None,
                          population: ir.Table | None = None) -> pd.DataFrame:
    """Features and payment labels of one snapshot: customers with history and an invoice before as_of, labelled."""
    invoices = tables["invoices"]
    labelled = payment_labels_expr(invoices, as_of, horizon_days=horizon_days, late_days=late_days, data_end=data_end)
    labelled = labelled.semi_join(customers_with_invoices_before(invoices, as_of), "customer_id")
    labels = labelled.to_pyarrow().to_pandas()
    features = build_features(tables, as_of, spec, moments=moments, population=population)
    rows = features.merge(labels, on="customer_id", how="inner", validate="one_to_one")
    rows.insert(1, "as_of", pd.Timestamp(to_naive_utc(as_of)))
    return rows


def payment_snapshot_plan(tables: Mapping[str, ir.Table], data_end: datetime, *, horizon_days: int, late_days: int,
                          outcome_wait_days: int, n_snapshots: int, step_days: int, min_history_days: int,
                          n_validation_snapshots: int) -> SnapshotPlan:
    """Snapshots whose invoice window and the wait for its outcomes end by the data end."""
    return plan_snapshots(
        to_naive_utc(data_end), data_start=data_start_of(tables),
        horizon_days=horizon_days + late_days + outcome_wait_days, n_snapshots=n_snapshots, step_days=step_days,
        min_history_days=min_history_days, n_validation_snapshots=n_validation_snapshots,
    )


def build_payment_training_set(
    tables: Mapping[str, ir.Table],
    data_end: datetime,
    *,
    spec: FeatureSpec,
    horizon_days: int = 90,
    late_days: int = 30,
    outcome_wait_days: int = 60,
    n_snapshots: int = 4,
    step_days: int = 90,
    n_validation_snapshots: int = 1,
    min_history_days: int = 180,
    max_customers: int | None = None,
) -> pd.DataFrame:
    """Features + payment labels stacked over snapshots before `data_end`; the latest ones are `is_validation`.

    A snapshot T is at most data_end - (horizon + late_days + outcome_wait_days): invoices issued
    late in the window, on payment terms of up to `outcome_wait_days`, have fallen due more than
    `late_days` before the data end, so few outcomes are still unknown (and those are left out).
    """
    reason = has_payment_outcomes(tables)
    if reason is not None:
        raise PaymentLabelError(f"no payment training set: {reason}")
    data_end = to_naive_utc(data_end)
    plan = payment_snapshot_plan(tables, data_end, horizon_days=horizon_days, late_days=late_days,
                                 outcome_wait_days=outcome_wait_days, n_snapshots=n_snapshots, step_days=step_days,
                                 min_history_days=min_history_days, n_validation_snapshots=n_validation_snapshots)
    sampled = sample_customers(tables, max_customers) if max_customers is not None else dict(tables)
    is_sample = sampled["transactions"] is not tables["transactions"]
    # The population season shares read every customer, also when training on a sample (as training_set does).
    everyone = tables["transactions"] if is_sample and season_share_columns(spec.season_horizons_days) else None
    with materialised(sampled, copy_tables=is_sample, population=everyone) as (kept, moments, population):
        frames = [payment_snapshot_rows(kept, as_of, spec=spec, horizon_days=horizon_days, late_days=late_days,
                                        data_end=data_end, moments=moments, population=population)
                  for as_of in plan.dates]
    frame = pd.concat(frames, ignore_index=True).copy()
    frame["is_validation"] = frame["as_of"] >= pd.Timestamp(plan.dates[-plan.n_validation])
    frame = to_feature_frame(frame)
    logger.info("payment training set: %d rows over %d snapshots (%d validation), %.1f%% paid late",
                len(frame), len(plan.dates), plan.n_validation, 100 * frame[PAYMENT_LABEL].mean() if len(frame) else 0.0)
    return frame
