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

from features.families.wording import Column, Family, Template, humanise, money, named_number

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


def _statement(name: str, noun_zh: str, zh: str, unit_zh: str = "") -> Template:
    """The English names the measure and its value; the Chinese says it in words."""
    return Template(name, "number", lambda g: humanise(name), lambda g: noun_zh,
                    named_number(name, lambda x, g, c: ("", f"{zh}{money(x)}{unit_zh}")))


TEMPLATES = (
    _statement("recency_over_tenure", "距上次下单天数与合作天数之比", "距上次下单天数与合作天数之比为"),
    _statement("order_days_per_month_lifetime", "累计每月平均下单天数", "累计平均每月下单", "天"),
    _statement("revenue_per_month_lifetime", "累计每月平均消费额", "累计平均每月消费额"),
)

# Computed over the transaction features (build.py), after the families above have derived them.
FAMILY = Family("tenure_ratios", "relative to tenure", COLUMNS, names, TEMPLATES)
