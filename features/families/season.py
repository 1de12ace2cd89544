"""Season (a year ago in the coming horizon), per customer.

For a horizon of H days (each label horizon under 365 days, `season_horizons`):
revenue_sum_next_{H}d_year_ago is the net revenue of the rows with T - 365d <= ts < T - 365d + H,
the window of last year that the coming [T, T + H) repeats; order_days_next_{H}d_year_ago the
UTC dates of the orders dated in it (0 without); revenue_share_next_{H}d_year_ago that revenue
over the revenue of the 365 days before T (null unless that is at least MIN_REVENUE_BASE).
The population's share of the same window is the season_share family.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.families.wording import Column, Family, Template, money, plural, stating, whole
from features.transactions import MIN_REVENUE_BASE, YEAR_DAYS, season_horizons

COLUMNS = (
    Column("revenue_sum_next_{H}d_year_ago", "money", "[T - 365d, T - 365d + H)", "net revenue in last year's window of the coming horizon"),
    Column("order_days_next_{H}d_year_ago", "days", "[T - 365d, T - 365d + H)", "order days in that window"),
    Column("revenue_share_next_{H}d_year_ago", "share", "[T - 365d, T - 365d + H)", "that revenue over the last 365 days' revenue"),
)


def season_feature_columns(horizons) -> list[str]:
    """Customer season features for the `season_horizons` of `horizons`."""
    out = []
    for h in season_horizons(horizons):
        out += [f"revenue_sum_next_{h}d_year_ago", f"order_days_next_{h}d_year_ago", f"revenue_share_next_{h}d_year_ago"]
    return out


def names(spec, available) -> list[str]:
    return season_feature_columns(spec.season_horizons_days)


def derive(table: ir.Table, spec) -> dict[str, ir.Value]:
    """Per horizon: the share of the last 365 days' revenue that fell in last year's window, and its order days (0 without)."""
    year = f"revenue_sum_{YEAR_DAYS}d" if f"revenue_sum_{YEAR_DAYS}d" in table.columns else f"_revenue_{YEAR_DAYS}d"
    shares: dict[str, ir.Value] = {}
    for h in season_horizons(spec.season_horizons_days):
        shares[f"revenue_share_next_{h}d_year_ago"] = ibis.cases(
            (table[year] >= MIN_REVENUE_BASE, table[f"revenue_sum_next_{h}d_year_ago"] / table[year]),
            else_=ibis.null("float64"))
        # A customer with returns only has no order day at all (no cadence row): a true zero.
        shares[f"order_days_next_{h}d_year_ago"] = table[f"order_days_next_{h}d_year_ago"].fill_null(0)
    return shares


def season_en(g: dict) -> str:
    return f"in the same {g['w']} days last year (the season ahead)"


def season_zh(g: dict) -> str:
    return f"去年同期（未来{g['w']}天对应的时段）"


def _season_spend(x, g, _):
    if x == 0:
        return f"no spend {season_en(g)}", f"{season_zh(g)}无消费"
    return f"spend of {money(x)} {season_en(g)}", f"{season_zh(g)}消费额{money(x)}"


def _season_order_days(x, g, _):
    if x == 0:
        return f"no orders {season_en(g)}", f"{season_zh(g)}无订单"
    return f"ordered on {plural(x, 'different day')} {season_en(g)}", f"{season_zh(g)}在{whole(x)}个不同日期下单"


def _season_share_of_year(x, g, _):
    return (f"{whole(x)}% of the last 365 days' spend fell {season_en(g)}",
            f"近365天消费额的{whole(x)}%落在{season_zh(g)}")


TEMPLATES = stating("this customer's season ahead",
    Template(r"revenue_sum_next_(?P<w>\d+)d_year_ago", "money",
             lambda g: f"spend {season_en(g)}", lambda g: f"{season_zh(g)}消费额", _season_spend),
    Template(r"order_days_next_(?P<w>\d+)d_year_ago", "count",
             lambda g: f"days with an order {season_en(g)}", lambda g: f"{season_zh(g)}下单天数", _season_order_days),
    Template(r"revenue_share_next_(?P<w>\d+)d_year_ago", "pct",
             lambda g: f"share of the last 365 days' spend {season_en(g)}", lambda g: f"近365天消费额中{season_zh(g)}的占比",
             _season_share_of_year),
)

FAMILY = Family("season", "season, per customer", COLUMNS, names, TEMPLATES, derive)
