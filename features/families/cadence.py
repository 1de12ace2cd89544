"""Cadence: the gaps between order days, recency against the usual gap, and the BG/NBD inputs.

Order days are the distinct UTC dates of the orders; gaps are whole days between consecutive
order days (mean and sample standard deviation: null with fewer than 2 / 3 order days).
recency_over_gap_mean = days_since_last_order / order_gap_mean_days. order_days_lifetime and
repeat_revenue_mean_per_order_day_lifetime (net revenue of the rows dated after the first order
day over order_days_lifetime - 1) are, with the ages, the inputs of models/btyd.py.
"""

from __future__ import annotations

import ibis.expr.types as ir

from features.families.wording import Column, Family, Reading, Template, decimal, fixed, levels, money, plural, whole
from features.transactions import SECONDS_PER_DAY, btyd_input_features, safe_ratio

COLUMNS = (
    Column("order_gap_mean_days", "days", "before T", "mean gap between consecutive order days"),
    Column("order_gap_std_days", "days", "before T", "sample standard deviation of those gaps"),
    Column("recency_over_gap_mean", "ratio", "before T", "days since the last order over the mean gap"),
    Column("order_days_lifetime", "days", "all history", "distinct UTC dates with an order"),
    Column("repeat_revenue_mean_per_order_day_lifetime", "money", "all history", "revenue after the first order day per repeat order day"),
)


def names(spec, available) -> list[str]:
    return ["order_gap_mean_days", "order_gap_std_days", "recency_over_gap_mean",
            "order_days_lifetime", "repeat_revenue_mean_per_order_day_lifetime"]


def derive(t: ir.Table, spec) -> dict[str, ir.Value]:
    days_since_last_order = t._last_order_age_s / float(SECONDS_PER_DAY)
    return {"recency_over_gap_mean": safe_ratio(days_since_last_order, t.order_gap_mean_days), **btyd_input_features(t)}


TEMPLATES = (
    Template("order_days_lifetime", "count", *fixed("days with an order", "下单天数"),
             lambda x, g, c: (f"ordered on {plural(x, 'different day')} in total", f"累计在{whole(x)}个不同日期下单"),
             fact="order frequency"),
    Template("repeat_revenue_mean_per_order_day_lifetime", "money", *fixed("average spend per repeat order day", "复购日平均消费额"),
             lambda x, g, c: (f"average spend of {money(x)} per repeat order day", f"复购日平均消费额{money(x)}"),
             fact="order value"),
    Template("order_gap_mean_days", "days", *fixed("usual gap between orders", "平均下单间隔"),
             lambda x, g, c: (f"orders every {plural(x, 'day')} on average", f"平均每{whole(x)}天下单一次"),
             fact="order frequency"),
    Template("order_gap_std_days", "days", *fixed("variation of the gap between orders", "下单间隔波动"),
             lambda x, g, c: (f"gap between orders varies by about {plural(x, 'day')}", f"下单间隔波动约{whole(x)}天")),
    Template("recency_over_gap_mean", "ratio", *fixed("time since the last order against the usual gap", "距上次下单时间与平时间隔之比"),
             lambda x, g, c: (f"time since the last order is {decimal(x)}x the usual gap between orders", f"距上次下单的时间是平时下单间隔的{decimal(x)}倍"),
             # within the usual gap reads as good news, twice the usual gap or more as bad news
             fact="time since the last order", reading=Reading(levels(good_at=1.0, bad_at=2.0))),
)

FAMILY = Family("cadence", "cadence", COLUMNS, names, TEMPLATES, derive)
