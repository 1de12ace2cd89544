"""Prospect contacts: sales visits and calls before a first order, as of a date T.

These columns exist only in the prospect model's table (features/prospects.py): a customer
without any order yet is judged on its attributes, days since sign-up and how sales has been
in touch. Every count uses rows with ts < T only; `interaction_count_{W}d` (contacts of every
kind) is the service family's column, computed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from features.families.wording import Column, Family, Template, count_template, fixed, plural, w_zh, whole
from features.transactions import SECONDS_PER_DAY, as_of_epoch_seconds, count_where, in_window

VISIT, CALL = "visit", "call"


def prospect_contact_columns(windows: Sequence[int]) -> list[str]:
    """Names of the contact features of the prospect table, for the given windows."""
    names: list[str] = []
    for w in windows:
        names += [f"visit_count_{w}d", f"call_count_{w}d", f"interaction_count_{w}d"]
    return [*names, "days_since_last_contact"]


def names(spec, available) -> list[str]:
    # Never part of the customers' feature table: only the prospect table builds them.
    return []


def contact_features(interactions: ir.Table, as_of: datetime, windows: Sequence[int]) -> ir.Table:
    """One row per customer with an interaction before as_of: customer_id + contact features."""
    rows = interactions.filter(interactions.ts < ibis.timestamp(as_of))
    is_visit, is_call = rows.kind == VISIT, rows.kind == CALL
    metrics: dict[str, ir.Scalar] = {}
    for w in windows:
        recent = in_window(rows.ts, as_of, 0, w)
        metrics[f"visit_count_{w}d"] = count_where(rows.ts, recent & is_visit)
        metrics[f"call_count_{w}d"] = count_where(rows.ts, recent & is_call)
        metrics[f"interaction_count_{w}d"] = count_where(rows.ts, recent)
    age_s = ibis.literal(as_of_epoch_seconds(as_of)) - rows.ts.max().epoch_seconds()
    metrics["days_since_last_contact"] = age_s / float(SECONDS_PER_DAY)
    return rows.group_by("customer_id").aggregate(**metrics)


def _count(stem: str, word: str, zh: str, none_en: str, none_zh: str, noun_zh: str) -> Template:
    return count_template(stem, word, None, lambda g, n: f"{w_zh(g)}{zh.format(n=n)}", none_en,
                          lambda g: f"{w_zh(g)}{none_zh}", noun_zh)


COLUMNS = (
    Column("visit_count_{W}d", "interactions", "W days", "interactions of kind 'visit' (prospect table only)"),
    Column("call_count_{W}d", "interactions", "W days", "interactions of kind 'call' (prospect table only)"),
    Column("days_since_last_contact", "days", "before T", "age of the last interaction of any kind (prospect table only)"),
)

TEMPLATES = (
    _count("visit_count", "sales visit", "拜访{n}次", "no sales visits", "无拜访", "拜访次数"),
    _count("call_count", "call", "通话{n}次", "no calls", "无通话", "通话次数"),
    Template("days_since_last_contact", "days", *fixed("days since the last contact", "距上次联系天数"),
             lambda x, g, c: (f"last contact {plural(x, 'day')} ago", f"上次联系于{whole(x)}天前")),
)

FAMILY = Family("prospects", "prospect contacts", COLUMNS, names, TEMPLATES)
