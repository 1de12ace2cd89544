"""Trend: revenue against the window before and a year before, and the monthly slope.

revenue_change_pct_* = 100 x (window revenue - earlier revenue) / earlier revenue, null unless
the earlier revenue is positive (at least MIN_REVENUE_BASE). The year-ago comparison exists for
windows shorter than 365 days (for 365 it would repeat vs-previous). revenue_monthly_slope_12m
is the least-squares slope, in money per month, of the net revenue of the last 12 months of
30.4375 days each, months without rows counting as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from features.families.wording import Column, Family, Reading, Render, Template, money, rise_is_good, stating, whole
from features.transactions import MIN_REVENUE_BASE, SLOPE_MONTHS, SLOPE_SXX, year_ago_windows

COLUMNS = (
    Column("revenue_change_pct_{W}d_vs_prev_{W}d", "percent", "W days vs the W days before", "change of net revenue"),
    Column("revenue_change_pct_{W}d_vs_year_ago", "percent", "W days vs the same W days a year before", "change of net revenue (W < 365)"),
    Column(f"revenue_monthly_slope_{SLOPE_MONTHS}m", "money per month", "12 months", "least-squares slope of monthly revenue"),
)


def names(spec, available) -> list[str]:
    return ([f"revenue_change_pct_{w}d_vs_prev_{w}d" for w in spec.windows_days]
            + [f"revenue_change_pct_{w}d_vs_year_ago" for w in year_ago_windows(spec.windows_days, spec.year_ago)]
            + [f"revenue_monthly_slope_{SLOPE_MONTHS}m"])


def revenue_change_pct(current: ir.NumericValue, before: ir.NumericValue) -> ir.FloatingValue:
    """Percent change of revenue against an earlier window; null unless the earlier revenue is positive."""
    return ibis.cases((before >= MIN_REVENUE_BASE, (current - before) / before * 100.0), else_=ibis.null("float64"))


def derive(t: ir.Table, spec) -> dict[str, ir.Value]:
    derived: dict[str, ir.Value] = {f"revenue_monthly_slope_{SLOPE_MONTHS}m": t._slope_numerator / SLOPE_SXX}
    for w in spec.windows_days:
        derived[f"revenue_change_pct_{w}d_vs_prev_{w}d"] = revenue_change_pct(t[f"revenue_sum_{w}d"], t[f"_revenue_prev_{w}d"])
    for w in year_ago_windows(spec.windows_days, spec.year_ago):
        derived[f"revenue_change_pct_{w}d_vs_year_ago"] = revenue_change_pct(t[f"revenue_sum_{w}d"], t[f"_revenue_year_ago_{w}d"])
    return derived


def _spend_change(against_en: Callable[[dict], str], against_zh: Callable[[dict], str]) -> Render:
    def render(x, g, _):
        what_en, what_zh = f"spend in the last {g['w']} days", f"近{g['w']}天消费额"
        if math.isinf(x):
            return (f"{what_en} rose from nothing against {against_en(g)}", f"{what_zh}比{against_zh(g)}从零开始增长")
        if x == 0:
            return f"{what_en} was level with {against_en(g)}", f"{what_zh}与{against_zh(g)}持平"
        verb_en, verb_zh = ("rose", "上升") if x > 0 else ("fell", "下降")
        return f"{what_en} {verb_en} {whole(abs(x))}% against {against_en(g)}", f"{what_zh}比{against_zh(g)}{verb_zh}{whole(abs(x))}%"

    return render


def _slope(x, g, _):
    months = g["m"]
    if x == 0:
        return f"monthly spend flat over {months} months", f"近{months}个月月消费额持平"
    en, zh = ("up", "上升") if x > 0 else ("down", "下降")
    return (f"monthly spend trending {en} by {money(abs(x))} a month over {months} months", f"近{months}个月月消费额每月{zh}{money(abs(x))}")


TEMPLATES = stating("spend trend",
    Template(r"revenue_change_pct_(?P<w>\d+)d_vs_prev_(?P<p>\d+)d", "pct_points",
             lambda g: f"change in spend in the last {g['w']} days", lambda g: f"近{g['w']}天消费额变化",
             _spend_change(lambda g: f"the {g['p']} days before", lambda g: f"前{g['p']}天")),
    Template(r"revenue_change_pct_(?P<w>\d+)d_vs_year_ago", "pct_points",
             lambda g: f"change in spend in the last {g['w']} days against a year ago", lambda g: f"近{g['w']}天消费额同比变化",
             _spend_change(lambda g: "the same period a year earlier", lambda g: "去年同期")),
    Template(r"revenue_monthly_slope_(?P<m>\d+)m", "money",
             lambda g: f"monthly spend trend over {g['m']} months", lambda g: f"近{g['m']}个月月消费额趋势", _slope),
    reading=Reading(rise_is_good),
)

FAMILY = Family("trend", "trend", COLUMNS, names, TEMPLATES, derive)
