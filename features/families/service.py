"""Service features from interactions as Ibis expressions, as of a date T.

Definitions (`reference.py` implements the same in pandas): an interaction exists at T only
when ts < T (a ticket opened on or after T does not exist). In the window of W days
(T - W days <= ts < T): ticket_count (kind 'ticket'), complaint_count (kind 'complaint'),
interaction_count (every kind), service_cost (sum of cost, only when the cost column exists).
complaint_change_{W}d_vs_prev_{W}d = complaints in the window minus complaints in the W days
before it (a count difference, defined even when both are 0).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from features.families.wording import (
    Column,
    Family,
    Reading,
    Template,
    count_template,
    money_template,
    read_as,
    rise_is_bad,
    some_is_bad,
    stating,
    w_en,
    w_zh,
    whole,
)
from features.transactions import count_where, in_window, sum_where


def service_feature_columns(windows: Sequence[int], columns: Collection[str]) -> list[str]:
    """Names of the service features given the interaction columns present."""
    names: list[str] = []
    for w in windows:
        names += [
            f"ticket_count_{w}d",
            f"complaint_count_{w}d",
            f"complaint_change_{w}d_vs_prev_{w}d",
            f"interaction_count_{w}d",
        ]
        if "cost" in columns:
            names.append(f"service_cost_{w}d")
    return names


def names(spec, available) -> list[str]:
    return service_feature_columns(spec.windows_days, available["interactions"]) if "interactions" in available else []


def service_features(interactions: ir.Table, as_of: datetime, windows: Sequence[int]) -> ir.Table:
    """One row per customer with an interaction before as_of: customer_id + service features."""
    rows = interactions.filter(interactions.ts < ibis.timestamp(as_of))
    is_ticket, is_complaint = rows.kind == "ticket", rows.kind == "complaint"
    metrics: dict[str, ir.Scalar] = {}
    for w in windows:
        recent, before = in_window(rows.ts, as_of, 0, w), in_window(rows.ts, as_of, w, 2 * w)
        metrics[f"ticket_count_{w}d"] = count_where(rows.ts, recent & is_ticket)
        metrics[f"complaint_count_{w}d"] = count_where(rows.ts, recent & is_complaint)
        metrics[f"complaint_change_{w}d_vs_prev_{w}d"] = count_where(rows.ts, recent & is_complaint) - count_where(
            rows.ts, before & is_complaint
        )
        metrics[f"interaction_count_{w}d"] = count_where(rows.ts, recent)
        if "cost" in rows.columns:
            metrics[f"service_cost_{w}d"] = sum_where(rows.cost, recent).fill_null(0.0)
    return rows.group_by("customer_id").aggregate(**metrics)


def _count(stem: str, word: str, zh: str, none_en: str, none_zh: str, noun_zh: str) -> Template:
    return count_template(stem, word, None, lambda g, n: f"{w_zh(g)}{zh.format(n=n)}", none_en, lambda g: f"{w_zh(g)}{none_zh}", noun_zh)


def _complaint_change(x, g, _):
    p = g["p"]
    if x == 0:
        return f"as many complaints {w_en(g)} as in the {p} days before", f"{w_zh(g)}投诉次数与前{p}天持平"
    en, zh = ("more", "多") if x > 0 else ("fewer", "少")
    return (f"{whole(abs(x))} {en} complaint{'s' if abs(x) != 1 else ''} {w_en(g)} than in the {p} days before",
            f"{w_zh(g)}投诉比前{p}天{zh}{whole(abs(x))}次")


COLUMNS = (
    Column("ticket_count_{W}d", "interactions", "W days", "interactions of kind 'ticket'"),
    Column("complaint_count_{W}d", "interactions", "W days", "interactions of kind 'complaint'"),
    Column("complaint_change_{W}d_vs_prev_{W}d", "interactions", "W days vs the W days before", "complaints minus complaints before"),
    Column("interaction_count_{W}d", "interactions", "W days", "interactions of every kind"),
    Column("service_cost_{W}d", "money", "W days", "sum of cost (with `cost`)"),
)

TEMPLATES = (
    *stating("contacts",
             _count("ticket_count", "support ticket", "服务工单{n}个", "no support tickets", "无服务工单", "服务工单数"),
             _count("interaction_count", "contact", "互动{n}次（工单、电话、拜访等）", "no contacts", "无互动", "互动次数")),
    *stating("complaints",
             read_as(_count("complaint_count", "complaint", "投诉{n}次", "no complaints", "无投诉", "投诉次数"), Reading(some_is_bad)),
             Template(r"complaint_change_(?P<w>\d+)d_vs_prev_(?P<p>\d+)d", "count",
                      lambda g: f"change in complaints in the last {g['w']} days", lambda g: f"近{g['w']}天投诉变化", _complaint_change,
                      reading=Reading(rise_is_bad))),
    # Cost is bad news for value; for churn the words say nothing (a customer who calls is not plainly leaving).
    *stating("cost to serve", money_template("service_cost", "service cost of {m}", "服务成本"),
             reading=Reading(some_is_bad, scores=("value",))),
)

FAMILY = Family("service", "service", COLUMNS, names, TEMPLATES)
