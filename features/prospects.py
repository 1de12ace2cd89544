"""Prospects: customers of the customers table without any transaction before T, their features and labels.

A prospect at T signed up before T (or has no signup date) and has no transaction line
before T: the customers the score table marks `new` and leaves unscored. What is known
about them at T is what the prospect model reads: the kept attributes (`attr_*`), days since
sign-up, and the sales contacts of the interactions table before T (visits, calls, every
kind; features/families/prospects.py). Label: a first order (a positive line) in
[T, T + horizon).

The prospect training set stacks snapshots like the churn one (features/training_set.py),
out of time: the validation snapshot is the scoring date minus the horizon, and every
training snapshot's label window ends by it (a horizon before it and earlier, `step_days`
apart), so no training label reaches into the validation period.

What a prospect would be worth if it buys (`converter_values`): the revenue of the customers
whose first order fell in the `lookback_days` before scoring date - value horizon, over the
value horizon from that first order, with their attributes: recent converters whose first
year is fully observed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.attributes import attribute_source_columns
from features.build import to_feature_frame
from features.families.attributes import attribute_features, signed_up_before
from features.families.prospects import contact_features, prospect_contact_columns
from features.tables import to_naive_utc

logger = logging.getLogger(__name__)

LABEL = "label_first_order"
VALUE_LABEL = "label_first_horizon_revenue"
# Snapshots this soon after the data starts would count as prospects customers whose orders
# simply came before the data: a prospect needs a stretch of history showing it has none.
MIN_HISTORY_DAYS = 90


class NoProspectsError(ValueError):
    """The data has no customers table with prospects and something to know them by."""


def prospect_feature_columns(customer_columns: Sequence[str], has_interactions: bool, windows: Sequence[int]) -> list[str]:
    """The prospect model's columns for the data's customers columns and interactions."""
    names = [f"attr_{c}" for c in attribute_source_columns(customer_columns)]
    if "signup_date" in customer_columns:
        names.append("days_since_signup")
    return names + (prospect_contact_columns(windows) if has_interactions else [])


def why_no_prospect_model(tables: Mapping[str, ir.Table]) -> str | None:
    """None when prospects can be scored; else the one line that says what the data lacks."""
    if "customers" not in tables:
        return "the data has no customers table, so there are no prospects to score"
    customers = tables["customers"]
    if not attribute_source_columns(customers.columns) and "interactions" not in tables:
        return ("the customers table has no attribute column kept as a feature and there is no interactions table: "
                "nothing is known about prospects beyond their sign-up")
    return None


def prospects_at(tables: Mapping[str, ir.Table], as_of: datetime) -> ir.Table:
    """customer_id of every prospect at as_of: in the customers table, existing then, no transaction line before it."""
    customers = tables["customers"]
    existing = customers.filter(signed_up_before(customers, as_of)).select("customer_id").distinct()
    tx = tables["transactions"]
    seen = tx.filter(tx.ts < ibis.timestamp(as_of)).select("customer_id").distinct()
    return existing.anti_join(seen, "customer_id")


def prospect_features_expr(tables: Mapping[str, ir.Table], as_of: datetime, windows: Sequence[int]) -> ir.Table:
    """One row per prospect at as_of: customer_id + the prospect model's columns (contacts 0 when none)."""
    base = prospects_at(tables, as_of)
    attributes = attribute_features(tables["customers"], as_of)
    table = base.left_join(attributes, "customer_id").drop("customer_id_right")
    if "interactions" in tables:
        contacts = contact_features(tables["interactions"], as_of, windows)
        table = table.left_join(contacts, "customer_id").drop("customer_id_right")
        counts = [c for c in prospect_contact_columns(windows) if c.endswith("d") and "_count_" in c]
        table = table.mutate(**{c: table[c].fill_null(0) for c in counts})
    columns = prospect_feature_columns(tables["customers"].columns, "interactions" in tables, windows)
    return table.select("customer_id", *columns)


def prospect_features(tables: Mapping[str, ir.Table], as_of: datetime, windows: Sequence[int]) -> pd.DataFrame:
    """`prospect_features_expr` executed, in model dtypes, ordered by customer_id."""
    frame = prospect_features_expr(tables, as_of, windows).order_by("customer_id").to_pyarrow().to_pandas()
    return to_feature_frame(frame)


def first_order_labels(tables: Mapping[str, ir.Table], as_of: datetime, horizon_days: int) -> ir.Table:
    """customer_id and label_first_order (1: a positive line in [as_of, as_of + horizon)) of the prospects at as_of."""
    tx = tables["transactions"]
    end = as_of + timedelta(days=horizon_days)
    bought = tx.filter((tx.ts >= ibis.timestamp(as_of)) & (tx.ts < ibis.timestamp(end)) & (tx.amount > 0))
    buyers = bought.select("customer_id").distinct().mutate(_bought=ibis.literal(1))
    joined = prospects_at(tables, as_of).left_join(buyers, "customer_id")
    return joined.select("customer_id", **{LABEL: joined._bought.fill_null(0).cast("int8")})


def prospect_snapshot_dates(scoring_date: datetime, data_start: datetime, *, horizon_days: int, n_snapshots: int,
                            step_days: int) -> list[datetime]:
    """Training snapshots (oldest first), then the validation snapshot: scoring date - horizon.

    Training snapshots lie a horizon before the validation one and earlier, `step_days` apart,
    no earlier than MIN_HISTORY_DAYS after the data starts.
    """
    validation = (to_naive_utc(scoring_date) - timedelta(days=horizon_days)).replace(hour=0, minute=0, second=0,
                                                                                     microsecond=0)
    earliest = to_naive_utc(data_start) + timedelta(days=MIN_HISTORY_DAYS)
    training = [validation - timedelta(days=horizon_days + k * step_days) for k in range(n_snapshots)]
    return [*sorted(d for d in training if d >= earliest), validation]


def build_prospect_training_set(tables: Mapping[str, ir.Table], scoring_date: datetime, *, horizon_days: int,
                                n_snapshots: int, step_days: int, windows: Sequence[int]) -> pd.DataFrame:
    """Prospects' features and labels stacked over the snapshots; the latest snapshot `is_validation`.

    Columns: customer_id, as_of, the prospect columns, label_first_order, is_validation. Every
    label window ends by `scoring_date` (the end of the observed data).
    """
    first = tables["transactions"].ts.min().to_pyarrow().as_py()
    if first is None:
        raise NoProspectsError("the transactions table is empty: no first order to learn from")
    dates = prospect_snapshot_dates(scoring_date, first, horizon_days=horizon_days, n_snapshots=n_snapshots,
                                    step_days=step_days)
    frames = []
    for as_of in dates:
        features = prospect_features_expr(tables, as_of, windows)
        labelled = features.inner_join(first_order_labels(tables, as_of, horizon_days), "customer_id")
        frame = labelled.order_by("customer_id").to_pyarrow().to_pandas()
        frame.insert(1, "as_of", pd.Timestamp(as_of))
        frames.append(frame)
    training = to_feature_frame(pd.concat(frames, ignore_index=True))
    training["is_validation"] = training["as_of"] == pd.Timestamp(dates[-1])
    logger.info("prospect training set: %d rows over %d snapshots (%s..%s), %d first orders", len(training),
                len(dates), f"{dates[0]:%Y-%m-%d}", f"{dates[-1]:%Y-%m-%d}", int(training[LABEL].sum()))
    return training


def converter_values(tables: Mapping[str, ir.Table], scoring_date: datetime, *, value_horizon_days: int,
                     lookback_days: int) -> pd.DataFrame:
    """Recent converters' attributes and their revenue over the value horizon from their first order.

    Converters: customers of the customers table whose first positive line fell in
    [scoring_date - value horizon - lookback, scoring_date - value horizon), so that the whole
    value horizon after it is observed. Revenue counts every line (returns included) in
    [first order, first order + value horizon). Columns: customer_id, attr_*, label_first_horizon_revenue.
    """
    scoring_date = to_naive_utc(scoring_date)
    end = scoring_date - timedelta(days=value_horizon_days)
    start = end - timedelta(days=lookback_days)
    tx = tables["transactions"]
    sales = tx.filter(tx.amount > 0)
    firsts = sales.group_by("customer_id").aggregate(_first=sales.ts.min())
    firsts = firsts.filter((firsts._first >= ibis.timestamp(start)) & (firsts._first < ibis.timestamp(end)))
    lines = tx.inner_join(firsts, "customer_id")
    within = lines.filter((lines.ts >= lines._first)
                          & (lines.ts < lines._first + ibis.interval(days=value_horizon_days)))
    revenue = within.group_by("customer_id").aggregate(**{VALUE_LABEL: within.amount.sum()})
    attributes = attribute_features(tables["customers"], scoring_date).drop(
        *[c for c in ("days_since_signup",) if c in attribute_features(tables["customers"], scoring_date).columns])
    frame = attributes.inner_join(revenue, "customer_id").order_by("customer_id").to_pyarrow().to_pandas()
    return to_feature_frame(frame)
