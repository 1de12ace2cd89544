"""Churn and value labels as of a date T, as Ibis expressions executed on DuckDB.

For every customer with at least one transaction line before T (the population the features
and scoring cover: customers whose only lines are $0 lines or returns included; an order is an
order id with a positive row, dated by its first row, as in `transactions.py`):

- label_churn = 1 when the customer places no order in [T, T + churn horizon): no order id
  with a positive row whose first row falls in that window (an order begun before T is not new).
- label_churn_order_days: the calendar days in that window on which such a new order begins
  (0 exactly when label_churn = 1): the target of the count-based churn model (models/churn.py,
  objective "poisson"), which carries more of each row's outcome than the 0/1 label.
- label_revenue, label_margin: net amount and margin of the rows in [T, T + value horizon).
- label_value_order_days: the order days, counted as for churn, in the value window: the
  frequency half of the value model's frequency x severity decomposition (models/value.py).
- label_cost_to_serve: in the same window, returned money + discounts (when the column
  exists) + service cost (when interactions with a cost column exist).

A label exists only when its window is fully observed: T + horizon <= data_end. Labels whose
window is not observed are left out (no column), and asking for labels when none is observed
is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.tables import to_naive_utc
from features.transactions import join_on_customer, order_moments

logger = logging.getLogger(__name__)


# Columns of `new_order_days` as build_labels_expr names them for the two windows.
CHURN_ORDER_DAYS = "_churn_days"
VALUE_ORDER_DAYS = "_value_days"


class LabelWindowNotObservedError(ValueError):
    """No label window [as_of, as_of + horizon) ends on or before the end of the data."""


def _between(ts: ir.TimestampValue, start: datetime, end: datetime) -> ir.BooleanValue:
    """start <= ts < end."""
    return (ts >= ibis.timestamp(start)) & (ts < ibis.timestamp(end))


def customers_with_history_before(moments: ir.Table, as_of: datetime) -> ir.Table:
    """Customer ids with at least one transaction line before as_of (an order, a $0 line or a return).

    The same customers `features.build.build_features` gives a row (without prospects), so a
    training set covers everyone scoring scores.
    """
    rows = moments.filter(moments.ts < ibis.timestamp(as_of))
    return rows.select("customer_id").distinct()


def new_order_days(moments: ir.Table, as_of: datetime, horizons: Mapping[str, int]) -> ir.Table:
    """customer_id and, per named horizon, the calendar days in [as_of, as_of + horizon) on which a new order begins.

    An order is new when its first row is dated in the window and it has a positive row
    dated before the window's end; each window sees only the rows before its own end. One
    grouping of the orders serves every horizon. Customers with no new order in the longest
    window are absent; a count is 0 where a customer has new orders only in longer windows.
    """
    ends = {name: ibis.timestamp(as_of + timedelta(days=days)) for name, days in horizons.items()}
    rows = moments.filter(moments.ts < ibis.timestamp(as_of + timedelta(days=max(horizons.values()))))
    orders = rows.group_by(["customer_id", "order_id"]).aggregate(
        order_ts=rows.ts.min(),
        **{f"_purchase_{name}": rows.max_amount.max(where=rows.ts < end) > 0 for name, end in ends.items()},
    )
    new_orders = orders.filter(orders.order_ts >= ibis.timestamp(as_of))
    day = new_orders.order_ts.date()
    return new_orders.group_by("customer_id").aggregate(**{
        name: day.nunique(where=(new_orders.order_ts < end) & new_orders[f"_purchase_{name}"].fill_null(False))
        for name, end in ends.items()
    })


def churn_label(order_days: ir.Table, customers: ir.Table) -> ir.Table:
    """customer_id, label_churn, label_churn_order_days of `customers` from `new_order_days` (CHURN_ORDER_DAYS)."""
    table = join_on_customer(customers, order_days.select("customer_id", CHURN_ORDER_DAYS))
    days = table[CHURN_ORDER_DAYS].fill_null(0)
    return table.select(
        "customer_id",
        label_churn=ibis.cases((days == 0, 1), else_=0).cast("int8"),
        label_churn_order_days=days.cast("int32"),
    )


def value_labels(tables: Mapping[str, ir.Table], moments: ir.Table, as_of: datetime, horizon_days: int,
                 order_days: ir.Table) -> ir.Table:
    """customer_id, label_revenue, label_margin, label_cost_to_serve, label_value_order_days for customers with history before as_of.

    `order_days` is `new_order_days` with the value window's count as column VALUE_ORDER_DAYS.
    """
    end = as_of + timedelta(days=horizon_days)
    rows = moments.filter(_between(moments.ts, as_of, end))
    money = {
        "label_revenue": rows.amount.sum(),
        "label_margin": rows.margin.sum(),
        "_returned": -rows.returned.sum(),
    }
    if "discount" in rows.columns:
        money["_discount"] = rows.discount.sum()
    table = join_on_customer(
        customers_with_history_before(moments, as_of), rows.group_by("customer_id").aggregate(**money)
    )
    cost = table._returned.fill_null(0.0) + (table._discount.fill_null(0.0) if "_discount" in table.columns else 0.0)
    interactions = tables.get("interactions")
    if interactions is not None and "cost" in interactions.columns:
        visits = interactions.filter(_between(interactions.ts, as_of, end))
        service = visits.group_by("customer_id").aggregate(_service_cost=visits.cost.sum())
        table = join_on_customer(table, service)
        cost = cost + table._service_cost.fill_null(0.0)
    table = join_on_customer(table.mutate(_cost=cost), order_days.select("customer_id", VALUE_ORDER_DAYS))
    return table.select(
        "customer_id",
        label_revenue=table.label_revenue.fill_null(0.0),
        label_margin=table.label_margin.fill_null(0.0),
        label_cost_to_serve=table._cost,
        label_value_order_days=table[VALUE_ORDER_DAYS].fill_null(0).cast("int32"),
    )


def observed_labels(as_of: datetime, churn_horizon_days: int, value_horizon_days: int, data_end: datetime) -> tuple[bool, bool]:
    """(churn observed, value observed): whether each label window ends on or before data_end."""
    churn = as_of + timedelta(days=churn_horizon_days) <= data_end
    value = as_of + timedelta(days=value_horizon_days) <= data_end
    if not churn and not value:
        raise LabelWindowNotObservedError(
            f"no label can be observed as of {as_of:%Y-%m-%d %H:%M}: the churn window ends "
            f"{as_of + timedelta(days=churn_horizon_days):%Y-%m-%d} and the value window ends "
            f"{as_of + timedelta(days=value_horizon_days):%Y-%m-%d}, but the data ends {data_end:%Y-%m-%d %H:%M}; "
            f"choose an as_of on or before {data_end - timedelta(days=min(churn_horizon_days, value_horizon_days)):%Y-%m-%d} "
            "or shorten the horizons"
        )
    return churn, value


def build_labels_expr(
    tables: Mapping[str, ir.Table],
    as_of: datetime,
    *,
    churn_horizon_days: int = 90,
    value_horizon_days: int = 365,
    data_end: datetime,
    moments: ir.Table | None = None,
) -> ir.Table:
    """The Ibis expression of the observed labels as of `as_of` (customer_id + label columns).

    `moments` is `order_moments` of the whole transactions table when the caller has it
    (a training set reuses one for every snapshot); by default it is computed here.
    """
    as_of, data_end = to_naive_utc(as_of), to_naive_utc(data_end)
    churn_observed, value_observed = observed_labels(as_of, churn_horizon_days, value_horizon_days, data_end)
    moments = order_moments(tables["transactions"]) if moments is None else moments
    customers = customers_with_history_before(moments, as_of)
    horizons = {name: days for name, days, observed in ((CHURN_ORDER_DAYS, churn_horizon_days, churn_observed),
                                                        (VALUE_ORDER_DAYS, value_horizon_days, value_observed)) if observed}
    order_days = new_order_days(moments, as_of, horizons)
    table = customers
    if churn_observed:
        table = join_on_customer(table, churn_label(order_days, customers))
    if value_observed:
        table = join_on_customer(table, value_labels(tables, moments, as_of, value_horizon_days, order_days))
    return table.order_by("customer_id")


def build_labels(
    tables: Mapping[str, ir.Table],
    as_of: datetime,
    *,
    churn_horizon_days: int = 90,
    value_horizon_days: int = 365,
    data_end: datetime,
    moments: ir.Table | None = None,
) -> pd.DataFrame:
    """Labels as of `as_of` for customers with a transaction line before it; only fully observed labels appear."""
    expr = build_labels_expr(
        tables, as_of, churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days,
        data_end=data_end, moments=moments,
    )
    frame = expr.to_pyarrow().to_pandas()
    logger.info("built labels %s for %d customers as of %s", [c for c in frame.columns if c != "customer_id"], len(frame), as_of)
    return frame
