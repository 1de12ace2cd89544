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

DAYS_PER_MONTH = 30.4375
TENURE_RATIO_COLUMNS = ("recency_over_tenure", "order_days_per_month_lifetime", "revenue_per_month_lifetime")


def tenure_months(table: ir.Table) -> ir.FloatingValue:
    """Months since the first order, at least one."""
    return ibis.greatest(table.days_since_first_order / DAYS_PER_MONTH, 1.0)


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
