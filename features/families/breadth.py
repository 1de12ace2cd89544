"""Breadth: categories and products bought per window, and categories bought for the first time.

A category (product) is bought in a window when it has a purchase row (amount > 0) in it; it is
new in the window when its first purchase row is in it. Built only when the transactions have a
`category` (`product_id`) column; 0 for a customer without any purchase row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

from features.families.wording import Column, Family, count_template, stating, w_zh
from features.transactions import count_where, in_window

COLUMNS = (
    Column("distinct_categories_{W}d", "categories", "W days", "categories with a purchase row in the window (with `category`)"),
    Column("new_category_count_{W}d", "categories", "W days", "categories first bought in the window (with `category`)"),
    Column("distinct_products_{W}d", "products", "W days", "products with a purchase row in the window (with `product_id`)"),
)


def names(spec, available) -> list[str]:
    columns = available["transactions"]
    out: list[str] = []
    if "category" in columns:
        out += [f"distinct_categories_{w}d" for w in spec.windows_days]
        out += [f"new_category_count_{w}d" for w in spec.windows_days]
    if "product_id" in columns:
        out += [f"distinct_products_{w}d" for w in spec.windows_days]
    return out


def item_first_last(rows: ir.Table, column: str) -> ir.Table:
    """Per (customer_id, item): ts of the first and the last purchase row (amount > 0)."""
    bought = rows.filter((rows.amount > 0) & rows[column].notnull())
    return bought.group_by(["customer_id", column]).aggregate(first_ts=bought.ts.min(), last_ts=bought.ts.max())


def breadth_aggregates(
    rows: ir.Table, as_of: datetime, column: str, windows: Sequence[int], distinct_name: str, new_name: str | None
) -> ir.Table:
    """Per customer: items bought in each window (last purchase in it) and new items (first purchase in it).

    Without new-item counts only the last purchase in the longest window matters, so older rows
    are left out before the (customer, item) grouping, the largest in the query (about half the
    rows of a growing business fall in the last year). The counts are the same.
    """
    if new_name is None and windows:
        rows = rows.filter(rows.ts >= ibis.timestamp(as_of - timedelta(days=max(windows))))
    items = item_first_last(rows, column)
    metrics: dict[str, ir.Scalar] = {}
    for w in windows:
        metrics[f"{distinct_name}_{w}d"] = count_where(items.last_ts, in_window(items.last_ts, as_of, 0, w))
        if new_name is not None:
            metrics[f"{new_name}_{w}d"] = count_where(items.first_ts, in_window(items.first_ts, as_of, 0, w))
    return items.group_by("customer_id").aggregate(**metrics)


def breadth_tables(rows: ir.Table, as_of: datetime, windows: Sequence[int]) -> list[ir.Table]:
    """The per-customer breadth tables the visible rows allow (categories, products)."""
    tables = []
    if "category" in rows.columns:
        tables.append(breadth_aggregates(rows, as_of, "category", windows, "distinct_categories", "new_category_count"))
    if "product_id" in rows.columns:
        tables.append(breadth_aggregates(rows, as_of, "product_id", windows, "distinct_products", None))
    return tables


TEMPLATES = stating("range bought",
    count_template("distinct_categories", "category", "categories", lambda g, n: f"{w_zh(g)}购买了{n}个品类", "bought from no category",
                   lambda g: f"{w_zh(g)}未购买任何品类", "品类数", verb_en="bought from "),
    count_template("distinct_products", "different product", None, lambda g, n: f"{w_zh(g)}购买了{n}种产品", "bought no product",
                   lambda g: f"{w_zh(g)}未购买任何产品", "产品种数", verb_en="bought "),
    count_template("new_category_count", "new category", "new categories", lambda g, n: f"{w_zh(g)}新增购买{n}个品类", "no new categories",
                   lambda g: f"{w_zh(g)}无新增品类", "新增品类数", verb_en="bought from "),
)

FAMILY = Family("breadth", "breadth", COLUMNS, names, TEMPLATES)
