"""Discounts: money given away per window, its share of the list value, discounted orders.

discount_share = discount / (gross sales + discount); a discounted order is an order whose rows
carry a discount > 0. Built only when the transactions have a `discount` column.
"""

from __future__ import annotations

import ibis.expr.types as ir

from features.families.wording import Column, Family, count_template, money_template, share_template, stating, w_zh
from features.transactions import safe_ratio

COLUMNS = (
    Column("discount_amount_{W}d", "money", "W days", "discount given on the rows (with `discount`)"),
    Column("discount_share_{W}d", "share", "W days", "discount over gross sales plus discount"),
    Column("discounted_order_count_{W}d", "orders", "W days", "orders with a discount"),
)
MEASURES = ("discount_amount", "discount_share", "discounted_order_count")


def names(spec, available) -> list[str]:
    if "discount" not in available["transactions"]:
        return []
    return [f"{measure}_{w}d" for w in spec.windows_days for measure in MEASURES]


def derive(t: ir.Table, spec) -> dict[str, ir.Value]:
    return {
        f"discount_share_{w}d": safe_ratio(t[f"discount_amount_{w}d"], t[f"_gross_sales_{w}d"] + t[f"discount_amount_{w}d"])
        for w in spec.windows_days if f"discount_amount_{w}d" in t.columns
    }


TEMPLATES = stating("discounts",
    money_template("discount_amount", "discounts worth {m}", "折扣金额", noun_en="discounts given", absolute=True),
    share_template("discount_share", "discounts", "折扣"),
    count_template("discounted_order_count", "discounted order", None, lambda g, n: f"{w_zh(g)}折扣订单{n}笔", "no discounted orders",
                   lambda g: f"{w_zh(g)}无折扣订单", "折扣订单数"),
)

FAMILY = Family("discounts", "discounts", COLUMNS, names, TEMPLATES, derive)
