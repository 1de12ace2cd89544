"""Tenure-relative ratios: recency and lifetime volume divided by the customer's own tenure.

Lifetime counts and sums grow with tenure, so a model trained on young customers extrapolates
them when it scores older ones (a cohort that ages between training and scoring, as in
CDNOW). The same information as rates and shares keeps its meaning at any age:

- recency_over_tenure = days_since_last_order / days_since_first_order (0 = ordered just now,
  1 = nothing since the first order); null for a customer without orders.
- order_days_per_month_lifetime = order_days_lifetime / tenure months, and
  revenue_per_month_lifetime = revenue_sum_lifetime / tenure months, where tenure months =
  days_since_first_order / 30.4375, counted as at least one month (a customer who first bought
  yesterday has no meaningful monthly rate: it is the lifetime total).

Computed from columns of `transactions.py` as of the same T, so they see only rows with ts < T.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.families.wording import Column, Family, Reading, Template, decimal, fixed, levels, money, whole

DAYS_PER_MONTH = 30.4375
TENURE_RATIO_COLUMNS = ("recency_over_tenure", "order_days_per_month_lifetime", "revenue_per_month_lifetime")


def tenure_months(table: ir.Table) -> ir.FloatingValue:
    """Months since the first order, at least one."""
    return ibis.greatest(table.days_since_first_order / DAYS_PER_MONTH, 1.0)


def names(spec, available) -> list[str]:
    return list(TENURE_RATIO_COLUMNS) if spec.tenure_ratios else []


def tenure_ratio_features(table: ir.Table) -> dict[str, ir.Value]:
    """The TENURE_RATIO_COLUMNS as expressions over a transaction feature table."""
    has_tenure = table.days_since_first_order > 0
    months = tenure_months(table)
    return {
        "recency_over_tenure": ibis.cases(
            (has_tenure, table.days_since_last_order / table.days_since_first_order), else_=ibis.null("float64")),
        "order_days_per_month_lifetime": ibis.cases(
            (table.days_since_first_order.notnull(), table.order_days_lifetime / months), else_=ibis.null("float64")),
        "revenue_per_month_lifetime": ibis.cases(
            (table.days_since_first_order.notnull(), table.revenue_sum_lifetime / months), else_=ibis.null("float64")),
    }


COLUMNS = (
    Column("recency_over_tenure", "ratio", "before T", "days since the last order over days since the first"),
    Column("order_days_per_month_lifetime", "days per month", "all history", "order days over tenure months (at least 1)"),
    Column("revenue_per_month_lifetime", "money per month", "all history", "net revenue over tenure months (at least 1)"),
)


def _recency_share(x, _g, _c):
    if x < 1:  # shown as a whole percent: under 1% is "just now" against the customer's tenure
        return ("time since the last order is under 1% of the time as a customer", "距上次下单的时间不到合作时长的1%")
    return (f"time since the last order is {whole(x)}% of the time as a customer", f"距上次下单的时间占合作时长的{whole(x)}%")


def _order_days_per_month(x, _g, _c):
    if x <= 0:
        return "no order day since the first order", "首单以来无下单日"
    if x < 1:  # "0.134 days a month" is hard to read: one order day every 7.5 months is the same fact
        months = decimal(round(1.0 / x, 1))
        return (f"orders about once every {months} months since the first order", f"首单以来平均每{months}个月下单一次")
    return (f"orders on {decimal(round(x, 1))} days a month on average since the first order",
            f"首单以来平均每月下单{decimal(round(x, 1))}天")


TEMPLATES = (
    Template("recency_over_tenure", "pct", *fixed("share of the time as a customer since the last order", "距上次下单时间占合作时长的比例"),
             # a time since the last order of 10% of the tenure or less reads as good news, half of it or more as bad
             _recency_share, fact="time since the last order", reading=Reading(levels(good_at=10.0, bad_at=50.0))),
    Template("order_days_per_month_lifetime", "number", *fixed("order days a month since the first order", "首单以来每月平均下单天数"),
             _order_days_per_month, fact="order frequency"),
    Template("revenue_per_month_lifetime", "money", *fixed("spend a month since the first order", "首单以来每月平均消费额"),
             lambda x, g, c: (f"spends {money(x)} a month on average since the first order", f"首单以来平均每月消费{money(x)}"),
             fact="spend"),
)

# Computed over the transaction features (build.py), after the families above have derived them.
FAMILY = Family("tenure_ratios", "relative to tenure", COLUMNS, names, TEMPLATES)
