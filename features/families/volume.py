"""Volume: orders, revenue and margin per window and over the whole history, and their means per order.

An order is a distinct order_id with a positive amount, dated by its first row. Revenue and
margin are net sums of the rows in the window (returns reduce them where they happen). Means
per order are null without an order in the window.
"""

from __future__ import annotations

import ibis.expr.types as ir

from features.families.wording import (
    Column,
    Family,
    Reading,
    count_template,
    money_template,
    none_is_bad,
    stating,
    w_zh,
)
from features.transactions import safe_ratio

MEASURES = ("order_count", "revenue_sum", "revenue_mean_per_order", "margin_sum", "margin_mean_per_order")
COLUMNS = (
    Column("order_count_{P}", "orders", "W days, or lifetime", "orders dated in the window"),
    Column("revenue_sum_{P}", "money", "W days, or lifetime", "net revenue of the rows in the window"),
    Column("revenue_mean_per_order_{P}", "money", "W days, or lifetime", "revenue over orders"),
    Column("margin_sum_{P}", "money", "W days, or lifetime", "net margin of the rows in the window"),
    Column("margin_mean_per_order_{P}", "money", "W days, or lifetime", "margin over orders"),
)


def periods(spec) -> list[str]:
    return [f"{w}d" for w in spec.windows_days] + ["lifetime"]


def names(spec, available) -> list[str]:
    return [f"{measure}_{period}" for period in periods(spec) for measure in MEASURES]


def derive(t: ir.Table, spec) -> dict[str, ir.Value]:
    return {
        f"{kind}_mean_per_order_{period}": safe_ratio(t[f"{kind}_sum_{period}"], t[f"order_count_{period}"])
        for period in ["lifetime", *(f"{w}d" for w in spec.windows_days)] for kind in ("revenue", "margin")
    }


TEMPLATES = (
    *stating("order frequency", count_template("order_count", "order", None, lambda g, n: f"{w_zh(g)}下单{n}次", "no orders",
                                               lambda g: f"{w_zh(g)}无订单", "订单数"), reading=Reading(none_is_bad)),
    *stating("spend", money_template("revenue_sum", "spend of {m}", "消费额"), reading=Reading(none_is_bad)),
    *stating("order value", money_template("revenue_mean_per_order", "average order value of {m}", "平均每单金额")),
    *stating("margin", money_template("margin_sum", "gross margin of {m}", "毛利"), reading=Reading(none_is_bad)),
    money_template("margin_mean_per_order", "average margin per order of {m}", "平均每单毛利"),
)

FAMILY = Family("volume", "volume", COLUMNS, names, TEMPLATES, derive)
