"""Cost to serve: service cost + return amount + discount amount per window, with what exists.

Built whenever transactions are (returns are always measurable); the discount and service
terms join when their columns and tables are there.
"""

from __future__ import annotations

import ibis.expr.types as ir

from features.families.wording import Column, Family, Reading, Template, W, money, some_is_bad, w_en, w_zh

COLUMNS = (Column("cost_to_serve_{W}d", "money", "W days", "service cost + return amount + discount amount"),)


def names(spec, available) -> list[str]:
    return [f"cost_to_serve_{w}d" for w in spec.windows_days] if "transactions" in available else []


def cost_to_serve(table: ir.Table, spec) -> dict[str, ir.Value]:
    """cost_to_serve_{W}d from the return, discount and service columns of the joined feature table."""
    values = {}
    for w in spec.windows_days:
        cost = table[f"return_amount_{w}d"]
        if f"discount_amount_{w}d" in table.columns:
            cost = cost + table[f"discount_amount_{w}d"]
        if f"service_cost_{w}d" in table.columns:
            cost = cost + table[f"service_cost_{w}d"]
        values[f"cost_to_serve_{w}d"] = cost
    return values


TEMPLATES = (
    Template(rf"cost_to_serve_{W}", "money", lambda g: f"cost to serve {w_en(g)}", lambda g: f"{w_zh(g)}服务总成本",
             lambda x, g, c: (f"cost to serve of {money(x)} {w_en(g)} (service, returns, discounts)",
                              f"{w_zh(g)}服务总成本{money(x)}（服务、退货、折扣）"),
             fact="cost to serve", reading=Reading(some_is_bad, scores=("value",))),
)

# Computed on the joined feature table (build.py), after payments and service.
FAMILY = Family("cost_to_serve", "cost to serve", COLUMNS, names, TEMPLATES)
