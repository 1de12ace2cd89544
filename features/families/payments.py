"""Payment (credit) features from invoices as Ibis expressions, as of a date T.

Definitions (`reference.py` implements the same in pandas):

- An invoice is visible at T when issued_at < T. It is paid at T only when paid_at < T; an
  invoice paid on or after T is open at T. Paid amount at T is paid_amount (the invoice amount
  when paid_amount is missing) if paid at T, else 0; open amount = max(amount - paid, 0).
- An invoice falls due in the window of W days when T - W days <= due_at < T. Every invoice
  due before T has a known status at T: on time when paid at T with paid_at <= due_at, late
  otherwise (paid late, or still unpaid past its due date).
- Days late of an invoice due before T: max(paid_at - due_at, 0) in days when paid at T (early
  payment counts as 0), T - due_at when still unpaid at T.
- invoice_on_time_rate_{W}d, days_late_mean_{W}d, days_late_max_{W}d and collection_rate_{W}d
  (paid / invoiced amount) are taken over the invoices falling due in the window; null when
  none fell due. days_late_change_90d_vs_prev_90d = mean days late of the invoices due in the
  last 90 days minus that of those due in the 90 days before (null when either is empty).
- overdue_open_amount: open amount of invoices due before T; open_invoice_amount: open amount
  of all visible invoices; dso_days = open_invoice_amount / amount invoiced (issued) in the
  last `dso_window_days` x `dso_window_days` (null when nothing was invoiced then).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

from features.families.wording import (
    Column,
    Family,
    Reading,
    Template,
    W,
    amount_or_none,
    fixed,
    levels,
    plural,
    read_as,
    rise_is_bad,
    some_is_bad,
    stating,
    w_en,
    w_zh,
    whole,
)
from features.transactions import (
    SECONDS_PER_DAY,
    as_of_epoch_seconds,
    in_window,
    safe_ratio,
    sum_where,
)

REQUIRED_COLUMNS = {"customer_id", "issued_at", "due_at", "amount", "paid_at"}
LATENESS_TREND_DAYS = 90
# Amounts owed are 0 for a customer without invoices (a true zero); rates stay null.
PAYMENT_AMOUNT_COLUMNS = ("overdue_open_amount", "open_invoice_amount")


def payment_feature_columns(windows: Sequence[int], columns: Collection[str]) -> list[str]:
    """Names of the payment features, empty when the invoice columns needed are absent."""
    if not set(columns) >= REQUIRED_COLUMNS:
        return []
    names: list[str] = []
    for w in windows:
        names += [f"invoice_on_time_rate_{w}d", f"days_late_mean_{w}d", f"days_late_max_{w}d", f"collection_rate_{w}d"]
    names += [
        f"days_late_change_{LATENESS_TREND_DAYS}d_vs_prev_{LATENESS_TREND_DAYS}d",
        "overdue_open_amount",
        "open_invoice_amount",
        "dso_days",
    ]
    return names


def names(spec, available) -> list[str]:
    return payment_feature_columns(spec.windows_days, available["invoices"]) if "invoices" in available else []


def invoice_status_at(invoices: ir.Table, as_of: datetime) -> ir.Table:
    """Visible invoices with their status at as_of: paid and open amounts, on time, days late."""
    as_of_s = ibis.literal(as_of_epoch_seconds(as_of))
    visible = invoices.filter(invoices.issued_at < ibis.timestamp(as_of))
    paid = visible.paid_at.notnull() & (visible.paid_at < ibis.timestamp(as_of))
    paid_money = visible.paid_amount.fill_null(visible.amount) if "paid_amount" in visible.columns else visible.amount
    paid_amount = ibis.cases((paid, paid_money), else_=0.0)
    due_s = visible.due_at.epoch_seconds()
    due_before = visible.due_at < ibis.timestamp(as_of)
    days_late_paid = ibis.greatest((visible.paid_at.epoch_seconds() - due_s) / float(SECONDS_PER_DAY), 0.0)
    days_late_open = (as_of_s - due_s) / float(SECONDS_PER_DAY)
    return visible.mutate(
        is_due=due_before,
        on_time=(paid & (visible.paid_at <= visible.due_at)).cast("float64"),
        paid_at_as_of=paid_amount,
        open_at_as_of=ibis.greatest(visible.amount - paid_amount, 0.0),
        days_late=ibis.cases(
            (due_before & paid, days_late_paid), (due_before, days_late_open), else_=ibis.null("float64")
        ),
    )


def payment_features(invoices: ir.Table, as_of: datetime, windows: Sequence[int], dso_window_days: int = 365) -> ir.Table:
    """One row per customer with a visible invoice that any feature can see: customer_id + payment features.

    An invoice paid in full that fell due, and was issued, before every window adds nothing to
    any feature (open amount 0, in no window), so it is left out before the grouping; a customer
    with only such invoices gets the same nulls and zeros from the caller's fill as one without
    invoices. In the 1M demo (three years of history) that is 43% of the invoices.
    """
    status = invoice_status_at(invoices, as_of)
    oldest_window = max([*windows, 2 * LATENESS_TREND_DAYS])
    status = status.filter(
        (status.open_at_as_of > 0)
        | (status.due_at >= ibis.timestamp(as_of - timedelta(days=oldest_window)))
        | (status.issued_at >= ibis.timestamp(as_of - timedelta(days=dso_window_days)))
    )
    metrics: dict[str, ir.Scalar] = {
        "overdue_open_amount": sum_where(status.open_at_as_of, status.is_due).fill_null(0.0),
        "open_invoice_amount": status.open_at_as_of.sum().fill_null(0.0),
        "_invoiced_dso": sum_where(status.amount, in_window(status.issued_at, as_of, 0, dso_window_days)).fill_null(0.0),
        "_late_recent": ibis.cases((in_window(status.due_at, as_of, 0, LATENESS_TREND_DAYS), status.days_late)).mean(),
        "_late_before": ibis.cases(
            (in_window(status.due_at, as_of, LATENESS_TREND_DAYS, 2 * LATENESS_TREND_DAYS), status.days_late)
        ).mean(),
    }
    for w in windows:
        due_in_window = in_window(status.due_at, as_of, 0, w)
        metrics[f"invoice_on_time_rate_{w}d"] = ibis.cases((due_in_window, status.on_time)).mean()
        metrics[f"days_late_mean_{w}d"] = ibis.cases((due_in_window, status.days_late)).mean()
        metrics[f"days_late_max_{w}d"] = ibis.cases((due_in_window, status.days_late)).max()
        metrics[f"_paid_due_{w}d"] = sum_where(status.paid_at_as_of, due_in_window)
        metrics[f"_amount_due_{w}d"] = sum_where(status.amount, due_in_window)
    table = status.group_by("customer_id").aggregate(**metrics)
    derived = {
        f"days_late_change_{LATENESS_TREND_DAYS}d_vs_prev_{LATENESS_TREND_DAYS}d": table._late_recent - table._late_before,
        "dso_days": safe_ratio(table.open_invoice_amount, table._invoiced_dso) * float(dso_window_days),
    }
    for w in windows:
        derived[f"collection_rate_{w}d"] = safe_ratio(table[f"_paid_due_{w}d"], table[f"_amount_due_{w}d"])
    table = table.mutate(**derived)
    return table.select("customer_id", *payment_feature_columns(windows, invoices.columns))



def _late_mean(x, g, _):
    if x == 0:
        return f"paid on time on average {w_en(g)}", f"{w_zh(g)}平均按时付款"
    if x < 0:
        return f"paid {plural(-x, 'day')} early on average {w_en(g)}", f"{w_zh(g)}平均提前{whole(-x)}天付款"
    return f"paid {plural(x, 'day')} late on average {w_en(g)}", f"{w_zh(g)}平均逾期{whole(x)}天付款"


def _late_max(x, g, _):
    if x <= 0:
        return f"never paid late {w_en(g)}", f"{w_zh(g)}从未逾期付款"
    return f"paid up to {plural(x, 'day')} late {w_en(g)}", f"{w_zh(g)}最长逾期{whole(x)}天付款"


def _late_change(x, g, _):
    p = g["p"]
    if x == 0:
        return f"paying as punctually as in the {p} days before", f"{w_zh(g)}付款及时性与前{p}天持平"
    en, zh = ("later", "晚") if x > 0 else ("earlier", "早")
    return (f"paying {plural(abs(x), 'day')} {en} on average than in the {p} days before", f"{w_zh(g)}付款比前{p}天平均{zh}{whole(abs(x))}天")


COLUMNS = (
    Column("invoice_on_time_rate_{W}d", "share", "due in W days", "invoices paid by their due date"),
    Column("days_late_mean_{W}d", "days", "due in W days", "mean days late (early counts 0; unpaid: days past due)"),
    Column("days_late_max_{W}d", "days", "due in W days", "most days late"),
    Column("collection_rate_{W}d", "share", "due in W days", "paid over invoiced amount"),
    Column(f"days_late_change_{LATENESS_TREND_DAYS}d_vs_prev_{LATENESS_TREND_DAYS}d", "days", "90 days vs the 90 before", "change of mean days late"),
    Column("overdue_open_amount", "money", "at T", "open amount of invoices past due"),
    Column("open_invoice_amount", "money", "at T", "open amount of every visible invoice"),
    Column("dso_days", "days", "dso_window_days", "open amount over amount invoiced, times the window"),
)

# A share of invoices paid on time (or of the amount collected) of 90% or more reads as good news,
# half or less as bad news; in between the words alone say neither.
PAID_SHARE = Reading(levels(good_at=90.0, bad_at=50.0))

TEMPLATES = (
    *stating("punctuality",
        Template(rf"invoice_on_time_rate_{W}", "pct", lambda g: f"share of invoices paid on time {w_en(g)}", lambda g: f"{w_zh(g)}按时付款率",
                 lambda x, g, c: (f"paid {whole(x)}% of invoices on time {w_en(g)}", f"{w_zh(g)}按时付款的发票占{whole(x)}%"),
                 reading=PAID_SHARE),
        Template(rf"days_late_mean_{W}", "days", lambda g: f"average days late {w_en(g)}", lambda g: f"{w_zh(g)}平均逾期天数", _late_mean,
                 reading=Reading(some_is_bad)),
        Template(rf"days_late_max_{W}", "days", lambda g: f"longest delay in payment {w_en(g)}", lambda g: f"{w_zh(g)}最长逾期天数", _late_max,
                 reading=Reading(some_is_bad)),
        Template(r"days_late_change_(?P<w>\d+)d_vs_prev_(?P<p>\d+)d", "days",
                 lambda g: f"change in days late in the last {g['w']} days", lambda g: f"近{g['w']}天逾期天数变化", _late_change,
                 reading=Reading(rise_is_bad)),
    ),
    *stating("money owed",
        Template("overdue_open_amount", "money", *fixed("overdue unpaid invoices", "逾期未付发票金额"),
                 amount_or_none("overdue unpaid invoices", "逾期未付发票金额", "no overdue invoices", "无逾期未付发票"),
                 reading=Reading(some_is_bad)),
        Template("open_invoice_amount", "money", *fixed("unpaid invoices", "未付发票金额"),
                 amount_or_none("unpaid invoices", "未付发票金额", "no unpaid invoices", "无未付发票")),
        read_as(Template(rf"collection_rate_{W}", "pct", lambda g: f"share of the invoiced amount collected {w_en(g)}",
                         lambda g: f"{w_zh(g)}回款率",
                         lambda x, g, c: (f"collected {whole(x)}% of the invoiced amount {w_en(g)}", f"{w_zh(g)}回款率{whole(x)}%")),
                PAID_SHARE),
        Template("dso_days", "days", *fixed("days sales outstanding (DSO)", "应收账款周转天数（DSO）"),
                 lambda x, g, c: (f"takes {plural(x, 'day')} on average to pay (DSO)", f"应收账款周转天数（DSO）{whole(x)}天")),
    ),
)

FAMILY = Family("payments", "payments", COLUMNS, names, TEMPLATES)
