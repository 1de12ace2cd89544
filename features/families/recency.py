"""Recency and tenure: days since the last and the first order, and whether there was an order.

An order's age is (T - ts of its first row) in fractional days; null without an order.
has_orders = 1 when the customer has an order before T (0: returns only, or a prospect).
"""

from __future__ import annotations

import math

import ibis.expr.types as ir

from features.families.wording import Column, Family, Reading, Template, decimal, fixed, none_is_bad, plural, whole
from features.transactions import SECONDS_PER_DAY

COLUMNS = (
    Column("has_orders", "0/1", "before T", "1 when the customer has an order before T"),
    Column("days_since_last_order", "days", "before T", "age of the last order"),
    Column("days_since_first_order", "days", "before T", "age of the first order (tenure)"),
)


def names(spec, available) -> list[str]:
    return ["has_orders", "days_since_last_order", "days_since_first_order"]


def derive(t: ir.Table, spec) -> dict[str, ir.Value]:
    return {
        "has_orders": (t.order_count_lifetime > 0).cast("int8"),
        "days_since_last_order": t._last_order_age_s / float(SECONDS_PER_DAY),
        "days_since_first_order": t._first_order_age_s / float(SECONDS_PER_DAY),
    }


def _recency(x, g, ratio):
    en, zh = f"no order for {plural(x, 'day')}", f"已{whole(x)}天未下单"
    if ratio is not None and not (isinstance(ratio, float) and math.isnan(ratio)):
        en += f", {decimal(ratio)}x the usual gap between orders"
        zh += f"，是平时下单间隔的{decimal(ratio)}倍"
    return en, zh


def _tenure(x, _g, _c):
    if x >= 365:
        years = decimal(round(x / 365.0, 1))
        return f"customer for {years} years (first order {whole(x)} days ago)", f"合作{years}年（首单于{whole(x)}天前）"
    return f"first order {plural(x, 'day')} ago", f"首单于{whole(x)}天前"


# A missing days_since_last_order is a customer without orders (serving/sentences.py says so).
NO_ORDERS = ("no orders before the scoring date", "评分日前无订单")

TEMPLATES = (
    Template("days_since_last_order", "days", *fixed("days since the last order", "距上次下单天数"), _recency,
             context="recency_over_gap_mean", fact="time since the last order"),
    Template("days_since_first_order", "days", *fixed("days since the first order", "距首单天数"), _tenure, fact="tenure"),
    Template("has_orders", "count", *fixed("has ordered", "是否下过单"),
             lambda x, g, c: (("has ordered before", "曾经下单") if x > 0 else ("has never ordered", "从未下单")),
             reading=Reading(none_is_bad)),
)

FAMILY = Family("recency", "recency and tenure", COLUMNS, names, TEMPLATES, derive)
