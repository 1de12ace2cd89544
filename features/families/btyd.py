"""Buy-till-you-die outputs as columns: BG/NBD probability alive, expected order days, probability
of no order, and expected revenue (with Gamma-Gamma spend) in the next H days.

Not built from the tables: models/btyd_columns.py fits BG/NBD and Gamma-Gamma per snapshot on the
cadence and recency columns (`features.btyd`) and adds these. The catalog lists them so that
their reasons have sentences like every other column.
"""

from __future__ import annotations

from features.families.wording import Column, Family, Template, humanise, money, named_number

COLUMNS = (
    Column("btyd_p_alive", "probability", "at T", "BG/NBD probability that the customer is still active"),
    Column("btyd_expected_orders_{H}d", "order days", "next H days", "expected order days"),
    Column("btyd_p_no_order_{H}d", "probability", "next H days", "probability of no order"),
    Column("btyd_expected_revenue_{H}d", "money", "next H days", "expected order days x Gamma-Gamma spend"),
)


def btyd_columns(horizon_days: int) -> list[str]:
    """The columns for one horizon, as models/btyd.py names them."""
    h = f"{horizon_days}d"
    return ["btyd_p_alive", f"btyd_expected_orders_{h}", f"btyd_p_no_order_{h}", f"btyd_expected_revenue_{h}"]


def names(spec, available) -> list[str]:
    return []  # added by the models layer, not by build_features


def _statement(pattern: str, noun_zh, zh) -> Template:
    """English: the column's name in words and its value; Chinese: `zh(groups, value text)`."""
    def render(x, g, c):
        return named_number(_name(pattern, g), lambda x, g, c: ("", zh(g, money(x))))(x, g, c)

    return Template(pattern, "number", lambda g: humanise(_name(pattern, g)), noun_zh, render)


def _name(pattern: str, g: dict) -> str:
    return pattern.replace(r"(?P<h>\d+)", g.get("h", ""))


TEMPLATES = (
    _statement("btyd_p_alive", lambda g: "购买周期模型估计的仍活跃概率", lambda g, v: f"购买周期模型估计仍活跃的概率为{v}"),
    _statement(r"btyd_expected_orders_(?P<h>\d+)d", lambda g: f"购买周期模型预计的未来{g['h']}天下单天数",
               lambda g, v: f"购买周期模型预计未来{g['h']}天下单天数为{v}"),
    _statement(r"btyd_p_no_order_(?P<h>\d+)d", lambda g: f"购买周期模型估计的未来{g['h']}天不下单概率",
               lambda g, v: f"购买周期模型估计未来{g['h']}天不下单的概率为{v}"),
    _statement(r"btyd_expected_revenue_(?P<h>\d+)d", lambda g: f"购买周期模型预计的未来{g['h']}天消费额",
               lambda g, v: f"购买周期模型预计未来{g['h']}天消费额{v}"),
)

FAMILY = Family("btyd", "buy-till-you-die model outputs", COLUMNS, names, TEMPLATES, built_by="models.btyd_columns")
