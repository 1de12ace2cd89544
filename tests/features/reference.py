"""Slow, obvious pandas implementation of the transaction (season included), payment and service features.

Used only by tests to cross-check the Ibis expressions of the transaction families, `season_share`,
`payments` and `service` (features/families/): one customer at a time, straight from the definitions in those
modules' docstrings. Never used on real data volumes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from features.build import FeatureSpec
from features.catalog import transaction_columns
from features.transactions import (
    MIN_REVENUE_BASE,
    MONTH_SECONDS,
    SLOPE_MONTHS,
    YEAR_DAYS,
    season_horizons,
    year_ago_windows,
)

DAY = 86_400.0


def _days(delta: pd.Timedelta) -> float:
    """A timedelta in fractional days."""
    return delta.total_seconds() / DAY


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero."""
    return numerator / denominator if denominator != 0 else float("nan")


def _change_pct(current: float, before: float) -> float:
    """Percent change against an earlier revenue, NaN unless that revenue is positive (>= half a cent)."""
    return (current - before) / before * 100.0 if before >= MIN_REVENUE_BASE else float("nan")


def _within(ts: datetime, as_of: datetime, from_days: int, to_days: int) -> bool:
    """as_of - to_days <= ts < as_of - from_days, for one timestamp."""
    return as_of - timedelta(days=to_days) <= ts < as_of - timedelta(days=from_days)


def _monthly_slope(rows: list[dict], as_of: datetime) -> float:
    """Least-squares slope of 12 monthly net revenues (months of 30.4375 days ending at as_of)."""
    revenue = np.zeros(SLOPE_MONTHS)
    for row in rows:
        month = math.ceil((as_of - row["ts"]).total_seconds() / MONTH_SECONDS)  # 1 = latest month
        if month <= SLOPE_MONTHS:
            revenue[SLOPE_MONTHS - month] += row["amount"]
    return float(np.polyfit(np.arange(SLOPE_MONTHS), revenue, 1)[0])


def _orders(rows: list[dict]) -> list[dict]:
    """Orders of one customer (order ids with a positive row): date of the first row, discount."""
    by_id: dict[str, list[dict]] = {}
    for row in rows:
        by_id.setdefault(row["order_id"], []).append(row)
    return [
        {
            "order_ts": min(r["ts"] for r in lines),
            "discount": sum(_number(r.get("discount")) for r in lines),
        }
        for lines in by_id.values()
        if any(r["amount"] > 0 for r in lines)
    ]


def _number(value: float | None) -> float:
    """A missing number counts as 0 in sums."""
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _gaps(orders: list[dict]) -> list[float]:
    """Whole-day gaps between consecutive distinct UTC order dates."""
    days = sorted({o["order_ts"].date() for o in orders})
    return [float((b - a).days) for a, b in zip(days, days[1:], strict=False)]


def _season_features(rows: list[dict], orders: list[dict], as_of: datetime, horizons: Sequence[int]) -> dict:
    """Revenue, order days and share of the last 365 days' revenue in last year's window of each horizon."""
    f: dict[str, float] = {}
    year_revenue = sum(r["amount"] for r in rows if _within(r["ts"], as_of, 0, YEAR_DAYS))
    for h in season_horizons(horizons):
        revenue = sum(r["amount"] for r in rows if _within(r["ts"], as_of, YEAR_DAYS - h, YEAR_DAYS))
        f[f"revenue_sum_next_{h}d_year_ago"] = revenue
        f[f"order_days_next_{h}d_year_ago"] = len({o["order_ts"].date() for o in orders if _within(o["order_ts"], as_of, YEAR_DAYS - h, YEAR_DAYS)})
        f[f"revenue_share_next_{h}d_year_ago"] = revenue / year_revenue if year_revenue >= MIN_REVENUE_BASE else float("nan")
    return f


def _customer_transaction_features(rows: list[dict], as_of: datetime, windows: Sequence[int], year_ago: bool, columns: set[str],
                                   seasons: Sequence[int] = ()) -> dict:
    """All transaction features of one customer from their visible rows."""
    nan = float("nan")
    orders = _orders(rows)
    f: dict[str, float] = {"has_orders": int(len(orders) > 0)}
    f["days_since_last_order"] = _days(as_of - max(o["order_ts"] for o in orders)) if orders else nan
    f["days_since_first_order"] = _days(as_of - min(o["order_ts"] for o in orders)) if orders else nan
    periods = [(f"{w}d", 0, w) for w in windows] + [("lifetime", 0, (as_of - datetime.min).days)]
    for period, lo, hi in periods:
        in_rows = [r for r in rows if _within(r["ts"], as_of, lo, hi)]
        count = sum(1 for o in orders if _within(o["order_ts"], as_of, lo, hi))
        revenue, margin = sum(r["amount"] for r in in_rows), sum(r["margin"] for r in in_rows)
        f[f"order_count_{period}"] = count
        f[f"revenue_sum_{period}"] = revenue
        f[f"revenue_mean_per_order_{period}"] = _ratio(revenue, count)
        f[f"margin_sum_{period}"] = margin
        f[f"margin_mean_per_order_{period}"] = _ratio(margin, count)
    gaps = _gaps(orders)
    f["order_gap_mean_days"] = float(np.mean(gaps)) if gaps else nan
    f["order_gap_std_days"] = float(np.std(gaps, ddof=1)) if len(gaps) >= 2 else nan
    f["recency_over_gap_mean"] = _ratio(f["days_since_last_order"], f["order_gap_mean_days"]) if gaps else nan
    order_days = sorted({o["order_ts"].date() for o in orders})
    f["order_days_lifetime"] = len(order_days)
    repeat_revenue = sum(r["amount"] for r in rows if order_days and r["ts"].date() > order_days[0])
    f["repeat_revenue_mean_per_order_day_lifetime"] = _ratio(repeat_revenue, len(order_days) - 1) if order_days else nan

    def revenue_between(lo: int, hi: int) -> float:
        return sum(r["amount"] for r in rows if _within(r["ts"], as_of, lo, hi))

    for w in windows:
        f[f"revenue_change_pct_{w}d_vs_prev_{w}d"] = _change_pct(f[f"revenue_sum_{w}d"], revenue_between(w, 2 * w))
    for w in year_ago_windows(windows, year_ago):
        year_before = revenue_between(YEAR_DAYS, YEAR_DAYS + w)
        f[f"revenue_change_pct_{w}d_vs_year_ago"] = _change_pct(f[f"revenue_sum_{w}d"], year_before)
    f[f"revenue_monthly_slope_{SLOPE_MONTHS}m"] = _monthly_slope(rows, as_of)
    f.update(_season_features(rows, orders, as_of, seasons))
    bought = [r for r in rows if r["amount"] > 0]
    for column, distinct_name, new_name in [
        ("category", "distinct_categories", "new_category_count"),
        ("product_id", "distinct_products", None),
    ]:
        if column not in columns:
            continue
        items = [r for r in bought if isinstance(r[column], str)]
        first_seen: dict[str, datetime] = {}
        for r in items:
            first_seen[r[column]] = min(first_seen.get(r[column], r["ts"]), r["ts"])
        for w in windows:
            f[f"{distinct_name}_{w}d"] = len({r[column] for r in items if _within(r["ts"], as_of, 0, w)})
            if new_name:
                f[f"{new_name}_{w}d"] = sum(1 for ts in first_seen.values() if _within(ts, as_of, 0, w))
    for w in windows:
        in_rows = [r for r in rows if _within(r["ts"], as_of, 0, w)]
        gross = sum(r["amount"] for r in in_rows if r["amount"] > 0)
        f[f"return_count_{w}d"] = sum(1 for r in in_rows if r["amount"] < 0)
        f[f"return_amount_{w}d"] = -sum(r["amount"] for r in in_rows if r["amount"] < 0)
        f[f"return_share_{w}d"] = _ratio(f[f"return_amount_{w}d"], gross)
        if "discount" in columns:
            discount = sum(_number(r["discount"]) for r in in_rows)
            f[f"discount_amount_{w}d"] = discount
            f[f"discount_share_{w}d"] = _ratio(discount, gross + discount)
            f[f"discounted_order_count_{w}d"] = sum(
                1 for o in orders if _within(o["order_ts"], as_of, 0, w) and o["discount"] > 0
            )
    return f


def reference_transaction_features(
    transactions: pd.DataFrame, as_of: datetime, windows: Sequence[int], year_ago: bool = True, seasons: Sequence[int] = ()
) -> pd.DataFrame:
    """Transaction features per customer with a visible row, computed one customer at a time (`seasons`: season horizons)."""
    visible = transactions[transactions["ts"] < as_of]
    columns = set(transactions.columns)
    by_customer: dict[str, list[dict]] = {}
    for row in visible.to_dict("records"):
        row["ts"] = pd.Timestamp(row["ts"]).to_pydatetime()
        by_customer.setdefault(row["customer_id"], []).append(row)
    records = [
        {"customer_id": customer_id, **_customer_transaction_features(rows, as_of, windows, year_ago, columns, seasons)}
        for customer_id, rows in by_customer.items()
    ]
    spec = FeatureSpec(windows_days=tuple(windows), year_ago=year_ago, season_horizons_days=tuple(seasons))
    names = ["customer_id", *transaction_columns(spec, columns)]
    return pd.DataFrame(records, columns=names).sort_values("customer_id", ignore_index=True)


def reference_season_shares(transactions: pd.DataFrame, as_of: datetime, horizons: Sequence[int]) -> dict[str, float]:
    """season_share_next_{H}d: all customers' revenue in last year's window of H over their last 365 days' revenue."""
    visible = transactions[transactions["ts"] < as_of]
    ts, amount = visible["ts"].tolist(), visible["amount"].tolist()
    year_start = as_of - timedelta(days=YEAR_DAYS)
    year_revenue = sum(a for t, a in zip(ts, amount, strict=True) if _within(t, as_of, 0, YEAR_DAYS))
    measurable = len(ts) > 0 and min(ts).date() <= year_start.date() and year_revenue >= MIN_REVENUE_BASE
    return {
        f"season_share_next_{h}d": sum(a for t, a in zip(ts, amount, strict=True) if _within(t, as_of, YEAR_DAYS - h, YEAR_DAYS)) / year_revenue
        if measurable else float("nan")
        for h in season_horizons(horizons)
    }


def _invoice_status(invoice: dict, as_of: datetime) -> dict:
    """Paid amount, open amount, on-time flag and days late of one visible invoice at as_of."""
    paid_at, due_at = invoice["paid_at"], invoice["due_at"]
    paid = paid_at is not None and paid_at < as_of
    paid_money = invoice.get("paid_amount")
    paid_amount = (invoice["amount"] if _missing(paid_money) else paid_money) if paid else 0.0
    due = due_at < as_of
    if due and paid:
        days_late = max(_days(paid_at - due_at), 0.0)
    elif due:
        days_late = _days(as_of - due_at)
    else:
        days_late = float("nan")
    return {
        **invoice,
        "paid": paid_amount,
        "open": max(invoice["amount"] - paid_amount, 0.0),
        "on_time": float(paid and paid_at <= due_at),
        "days_late": days_late,
        "is_due": due,
    }


def _missing(value: object) -> bool:
    """True for None and NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _mean(values: list[float]) -> float:
    """Mean, NaN when empty."""
    return sum(values) / len(values) if values else float("nan")


def _records_by_customer(frame: pd.DataFrame, timestamp_columns: list[str]) -> dict[str, list[dict]]:
    """Rows as dicts grouped by customer, timestamps as datetimes (None when missing)."""
    grouped: dict[str, list[dict]] = {}
    for row in frame.to_dict("records"):
        for column in timestamp_columns:
            if column in row:
                row[column] = None if pd.isna(row[column]) else pd.Timestamp(row[column]).to_pydatetime()
        grouped.setdefault(row["customer_id"], []).append(row)
    return grouped


def reference_payment_features(
    invoices: pd.DataFrame, as_of: datetime, windows: Sequence[int], dso_window_days: int = 365
) -> pd.DataFrame:
    """Payment features per customer with an invoice issued before as_of."""
    visible = invoices[invoices["issued_at"] < as_of]
    records = []
    for customer_id, group in _records_by_customer(visible, ["issued_at", "due_at", "paid_at"]).items():
        status = [_invoice_status(invoice, as_of) for invoice in group]
        f: dict[str, float] = {"customer_id": customer_id}
        for w in windows:
            due = [s for s in status if _within(s["due_at"], as_of, 0, w)]
            late = [s["days_late"] for s in due]
            f[f"invoice_on_time_rate_{w}d"] = _mean([s["on_time"] for s in due])
            f[f"days_late_mean_{w}d"] = _mean(late)
            f[f"days_late_max_{w}d"] = max(late) if late else float("nan")
            f[f"collection_rate_{w}d"] = (
                _ratio(sum(s["paid"] for s in due), sum(s["amount"] for s in due)) if due else float("nan")
            )
        recent = _mean([s["days_late"] for s in status if _within(s["due_at"], as_of, 0, 90)])
        before = _mean([s["days_late"] for s in status if _within(s["due_at"], as_of, 90, 180)])
        f["days_late_change_90d_vs_prev_90d"] = recent - before
        f["overdue_open_amount"] = sum(s["open"] for s in status if s["is_due"])
        f["open_invoice_amount"] = sum(s["open"] for s in status)
        invoiced = sum(s["amount"] for s in status if _within(s["issued_at"], as_of, 0, dso_window_days))
        f["dso_days"] = _ratio(f["open_invoice_amount"], invoiced) * dso_window_days
        records.append(f)
    return pd.DataFrame(records).sort_values("customer_id", ignore_index=True)


def reference_service_features(interactions: pd.DataFrame, as_of: datetime, windows: Sequence[int]) -> pd.DataFrame:
    """Service features per customer with an interaction before as_of."""
    visible = interactions[interactions["ts"] < as_of]
    has_cost = "cost" in interactions.columns
    records = []
    for customer_id, group in _records_by_customer(visible, ["ts"]).items():
        f: dict[str, float] = {"customer_id": customer_id}
        for w in windows:
            recent = [r for r in group if _within(r["ts"], as_of, 0, w)]
            before = [r for r in group if _within(r["ts"], as_of, w, 2 * w)]
            f[f"ticket_count_{w}d"] = sum(1 for r in recent if r["kind"].lower() == "ticket")
            f[f"complaint_count_{w}d"] = sum(1 for r in recent if r["kind"].lower() == "complaint")
            f[f"complaint_change_{w}d_vs_prev_{w}d"] = f[f"complaint_count_{w}d"] - sum(
                1 for r in before if r["kind"].lower() == "complaint"
            )
            f[f"interaction_count_{w}d"] = len(recent)
            if has_cost:
                f[f"service_cost_{w}d"] = sum(_number(r["cost"]) for r in recent)
        records.append(f)
    return pd.DataFrame(records).sort_values("customer_id", ignore_index=True)
