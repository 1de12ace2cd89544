"""Buy-till-you-die outputs as columns: BG/NBD probability alive, expected order days, probability
of no order, and expected revenue (with Gamma-Gamma spend) in the next H days.

Not built from the tables: models/btyd_columns.py fits BG/NBD and Gamma-Gamma per snapshot on the
cadence and recency columns (`features.btyd`) and adds these. The catalog lists them so that
their reasons have sentences like every other column.
"""

from __future__ import annotations

from features.families.wording import Column, Family, Reading, Template, decimal, fixed, levels, money, stating, whole

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


# Named for what a sales rep knows it as: a model of buying cycles (BG/NBD + Gamma-Gamma).
MODEL_EN, MODEL_ZH = "buying-cycle model", "购买周期模型"


def _p_alive(x, _g, _c):
    return (f"{whole(x)}% chance the customer still buys ({MODEL_EN})", f"{MODEL_ZH}估计仍活跃的概率为{whole(x)}%")


def _p_no_order(x, g, _c):
    return (f"{whole(x)}% chance of no order in the next {g['h']} days ({MODEL_EN})",
            f"{MODEL_ZH}估计未来{g['h']}天不下单的概率为{whole(x)}%")


def _expected_orders(x, g, _c):
    return (f"expected to order on about {decimal(x)} days in the next {g['h']} days ({MODEL_EN})",
            f"{MODEL_ZH}预计未来{g['h']}天下单约{decimal(x)}天")


def _expected_revenue(x, g, _c):
    return (f"expected spend of {money(x)} in the next {g['h']} days ({MODEL_EN})", f"{MODEL_ZH}预计未来{g['h']}天消费额{money(x)}")


TEMPLATES = (
    # 60% or more reads as good news, 40% or less as bad news (and the other way round for no order).
    *stating("chance of ordering again",
             Template("btyd_p_alive", "pct", *fixed(f"chance the customer still buys ({MODEL_EN})", f"{MODEL_ZH}估计的仍活跃概率"),
                      _p_alive, reading=Reading(levels(good_at=60.0, bad_at=40.0))),
             Template(r"btyd_p_no_order_(?P<h>\d+)d", "pct", lambda g: f"chance of no order in the next {g['h']} days ({MODEL_EN})",
                      lambda g: f"{MODEL_ZH}估计的未来{g['h']}天不下单概率", _p_no_order,
                      reading=Reading(levels(good_at=40.0, bad_at=60.0)))),
    Template(r"btyd_expected_orders_(?P<h>\d+)d", "ratio", lambda g: f"expected order days in the next {g['h']} days ({MODEL_EN})",
             lambda g: f"{MODEL_ZH}预计的未来{g['h']}天下单天数", _expected_orders),
    Template(r"btyd_expected_revenue_(?P<h>\d+)d", "money", lambda g: f"expected spend in the next {g['h']} days ({MODEL_EN})",
             lambda g: f"{MODEL_ZH}预计的未来{g['h']}天消费额", _expected_revenue),
)

FAMILY = Family("btyd", "buy-till-you-die model outputs", COLUMNS, names, TEMPLATES, built_by="models.btyd_columns")
