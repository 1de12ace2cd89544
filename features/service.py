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
