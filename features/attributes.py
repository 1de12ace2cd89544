"""Customer attribute features as Ibis expressions: `attr_<column>` and days_since_signup.

The customers table is a current snapshot, not a history: attributes are taken as they are
(an attribute that changed after T, or that records the outcome itself, would leak the future;
do not feed such columns). A customer whose signup_date is on or after T did not exist at T:
their days_since_signup is null and they are never a prospect at T.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import ibis
import ibis.expr.types as ir

from features.transactions import SECONDS_PER_DAY, as_of_epoch_seconds

NOT_ATTRIBUTES = {"customer_id", "signup_date"}


def attribute_source_columns(columns: Collection[str]) -> list[str]:
    """Customer columns that become `attr_<column>` features, in a stable (sorted) order."""
    return sorted(set(columns) - NOT_ATTRIBUTES)


def attribute_feature_columns(columns: Collection[str]) -> list[str]:
    """Names of the attribute features given the customers columns present."""
    names = [f"attr_{c}" for c in attribute_source_columns(columns)]
    if "signup_date" in columns:
        names.append("days_since_signup")
    return names


def signed_up_before(customers: ir.Table, as_of: datetime) -> ir.BooleanValue:
    """True for customers who existed at as_of (signup before it, or signup unknown)."""
    if "signup_date" not in customers.columns:
        return ibis.literal(True)
    return customers.signup_date.isnull() | (customers.signup_date < ibis.timestamp(as_of))


def attribute_features(customers: ir.Table, as_of: datetime) -> ir.Table:
    """One row per customer of the customers table: customer_id + attribute features."""
    values: dict[str, ir.Value] = {}
    for column in attribute_source_columns(customers.columns):
        value = customers[column]
        values[f"attr_{column}"] = value.cast("float64") if value.type().is_numeric() else value.cast("string")
    if "signup_date" in customers.columns:
        age_s = ibis.literal(as_of_epoch_seconds(as_of)) - customers.signup_date.epoch_seconds()
        values["days_since_signup"] = ibis.cases(
            (signed_up_before(customers, as_of) & customers.signup_date.notnull(), age_s / float(SECONDS_PER_DAY)),
            else_=ibis.null("float64"),
        )
    # One row per customer even if the snapshot repeats a customer: keep the smallest value, deterministically.
    table = customers.select("customer_id", **values)
    return table.group_by("customer_id").aggregate(**{c: table[c].min() for c in values})


def prospect_ids(customers: ir.Table, as_of: datetime) -> ir.Table:
    """Customer ids of the customers table who existed at as_of (whether or not they ordered)."""
    return customers.filter(signed_up_before(customers, as_of)).select("customer_id").distinct()
