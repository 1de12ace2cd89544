"""The shared passes over the transaction rows, as of a date T: the aggregates every transaction
family (features/families/: recency, volume, cadence, trend, season, breadth, returns,
discounts) derives its columns from, and the expression helpers the families share.

Definitions (shared by every family; tests/features/reference.py implements the same in plain pandas):

- Only rows with ts < T are visible. A row is in the window of W days when
  T - W days <= ts < T (exact timestamp bounds). The previous window of W days is
  T - 2W <= ts < T - W; "a year ago" is the W days ending 365 days before T. Ages and
  "days since" are (T - ts) in fractional days.
- Cadence uses distinct order days (UTC dates of the orders): gaps in whole days between
  consecutive order days; mean and sample standard deviation (null with fewer than 2 / 3
  order days). recency_over_gap_mean = days_since_last_order / order_gap_mean_days.
- Buy-till-you-die inputs: order_days_lifetime = number of distinct order days;
  repeat_revenue_mean_per_order_day_lifetime = net revenue of the rows dated (UTC) after the
  first order day, divided by order_days_lifetime - 1 (null with one order day). With
  days_since_first_order and days_since_last_order they are the BG/NBD / Gamma-Gamma inputs
  (models/btyd.py): x = order days - 1, the mean repeat-day spend, and the ages.
- Trend: revenue_change_pct_* = 100 x (window revenue - earlier revenue) / earlier revenue,
  null unless the earlier revenue is positive (at least half a cent, MIN_REVENUE_BASE). The year-ago comparison exists for windows shorter
  than 365 days (for 365 it would repeat vs-previous). revenue_monthly_slope_12m is the
  least-squares slope, in money per month, of the net revenue of the last 12 months of
  30.4375 days each, months without rows counting as 0.
- Season (a year ago in the coming horizon): for a horizon of H days (the label horizons,
  `season_horizons`), revenue_sum_next_{H}d_year_ago is the net revenue of the rows with
  T - 365d <= ts < T - 365d + H, the window of last year that the coming [T, T + H) repeats;
  order_days_next_{H}d_year_ago the UTC dates of the orders dated in it; and
  revenue_share_next_{H}d_year_ago that revenue over the revenue of the 365 days before T
  (null unless that is positive, at least MIN_REVENUE_BASE). Only for H < 365: at 365 days the
  window is the last 365 days (revenue_sum_365d, share 1), beyond it the window reaches past T.
- Breadth: a category (product) is bought in a window when it has a purchase row
  (amount > 0) in it; it is new in the window when its first purchase row is in it.
- Discounts: discount_share = discount / (gross sales + discount), i.e. the share of the list
  value given away; a discounted order is an order whose rows carry a discount > 0.
- An order is a distinct (customer_id, order_id) with at least one row of positive amount;
  its date is the ts of its first visible row. Rows whose order_id has no positive row are
  returns only and never count as orders.
- Revenue and margin are net sums of the rows' amount and margin in the window (returns,
  which are negative rows, reduce them where they happen, not where the order happened).
- A return is a row with amount < 0; return amount is the positive sum of -amount. Gross
  sales are the sum of positive amounts.
- has_orders = 1 when the customer has an order before T (0: returns only, or a prospect).
- Ratios with an empty (zero) denominator are null, never 0; counts and sums with nothing in
  the window are 0, which is true for a customer who has history before T.

How it is computed: the rows are first summed per order moment (customer_id, order_id, ts;
`order_moments`), which every family except breadth (its own pass, families/breadth.py) reads
instead of the rows. A moment is
visible, in a window or on a day exactly when its rows are, so the features are the same; only
the order in which floating sums add up changes (differences of about 1e-12 relative).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

SECONDS_PER_DAY = 86_400
# A "month" in the monthly slope is a twelfth of a Julian year: 30.4375 days, exactly 2,629,800 s.
MONTH_SECONDS = 2_629_800
SLOPE_MONTHS = 12
YEAR_DAYS = 365
# An earlier revenue below half a cent is a window whose sales and returns cancel out; the
# float noise of that sum (e.g. 1e-14) must not become a base for a percent change.
MIN_REVENUE_BASE = 0.005


# The columns models/btyd.py needs: recency/tenure ages and the order-day counts and spend.
BTYD_INPUT_COLUMNS = (
    "days_since_first_order",
    "days_since_last_order",
    "order_days_lifetime",
    "repeat_revenue_mean_per_order_day_lifetime",
)


def as_of_epoch_seconds(as_of: datetime) -> int:
    """Seconds since 1970-01-01 of the naive UTC `as_of`."""
    return int((as_of - datetime(1970, 1, 1)).total_seconds())


def in_window(ts: ir.TimestampValue, as_of: datetime, from_days: int, to_days: int) -> ir.BooleanValue:
    """True when as_of - to_days days <= ts < as_of - from_days days (exact timestamp bounds)."""
    start, end = as_of - timedelta(days=to_days), as_of - timedelta(days=from_days)
    return (ts >= ibis.timestamp(start)) & (ts < ibis.timestamp(end))


def year_ago_windows(windows: Sequence[int], year_ago: bool) -> list[int]:
    """Windows that get a year-ago comparison: shorter than a year (else it equals vs-previous)."""
    return [w for w in windows if year_ago and w < YEAR_DAYS]


def season_horizons(horizons: Sequence[int]) -> list[int]:
    """Horizons whose window of a year ago gets season features: shorter than a year, sorted, unique.

    At 365 days the window of a year ago is the last 365 days (nothing seasonal in it); longer
    horizons would reach into the days at and after T.
    """
    return sorted({h for h in horizons if 0 < h < YEAR_DAYS})


def safe_ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """numerator / denominator, null when the denominator is zero or null."""
    return ibis.cases((denominator != 0, numerator / denominator), else_=ibis.null("float64"))


def join_on_customer(left: ir.Table, right: ir.Table) -> ir.Table:
    """Left join `right` onto `left` by customer_id, keeping one customer_id column."""
    joined = left.left_join(right, "customer_id")
    return joined.drop("customer_id_right") if "customer_id_right" in joined.columns else joined


# ---------------------------------------------------------------------------------------------
# Conditional aggregates. DuckDB runs SUM(CASE WHEN c THEN x END) about a third faster than
# SUM(x) FILTER (WHERE c), which is what Ibis's `where=` compiles to; the result is the same.


def sum_where(value: ir.NumericValue, condition: ir.BooleanValue) -> ir.NumericScalar:
    """Sum of `value` over the rows where `condition` holds (null when none)."""
    return ibis.cases((condition, value)).sum()


def count_where(value: ir.Value, condition: ir.BooleanValue) -> ir.IntegerScalar:
    """Number of rows with a non-null `value` where `condition` holds."""
    return ibis.cases((condition, value)).count()


# ---------------------------------------------------------------------------------------------
# Order moments: the lines of one order at one moment, summed once.


def visible_rows(transactions: ir.Table, as_of: datetime) -> ir.Table:
    """Transaction rows with ts < as_of."""
    return transactions.filter(transactions.ts < ibis.timestamp(as_of))


def order_moments(rows: ir.Table) -> ir.Table:
    """One row per (customer_id, order_id, ts) with the sums of its lines.

    Every row-level feature depends on a row only through its ts and the sums below, and the
    lines of an order share one ts, so later passes read about half as many rows. Built from
    all rows it does not depend on as_of, so one table serves every snapshot of a training set.
    """
    positive, negative = rows.amount > 0, rows.amount < 0
    metrics: dict[str, ir.Scalar] = {
        "amount": rows.amount.sum(),
        "margin": rows.margin.sum(),
        "gross": sum_where(rows.amount, positive),
        "return_rows": count_where(rows.amount, negative),
        "returned": sum_where(rows.amount, negative),
        "max_amount": rows.amount.max(),
    }
    if "discount" in rows.columns:
        metrics["discount"] = rows.discount.sum()
    return rows.group_by(["customer_id", "order_id", "ts"]).aggregate(**metrics)


def moments_before(moments: ir.Table, as_of: datetime) -> ir.Table:
    """Order moments with ts < as_of and their age in seconds (`age_s` > 0)."""
    visible = moments.filter(moments.ts < ibis.timestamp(as_of))
    return visible.mutate(age_s=ibis.literal(as_of_epoch_seconds(as_of)) - visible.ts.epoch_seconds())


def revenue_sum(moments: ir.Table, as_of: datetime, from_days: int, to_days: int) -> ir.FloatingScalar:
    """Net revenue of the rows with as_of - to_days <= ts < as_of - from_days."""
    return sum_where(moments.amount, in_window(moments.ts, as_of, from_days, to_days)).fill_null(0.0)


def revenue_monthly_slope_numerator(moments: ir.Table) -> ir.FloatingScalar:
    """Sum of (month index - mean index) x amount over the last 12 months.

    Month k (k = 1 is the latest) holds ages in ((k-1) months, k months]; its index is 12 - k and the mean index is 5.5, so the centred index is 6.5 - k.
    Months without rows add 0, which is exactly their weight in the least-squares slope.
    """
    month = (moments.age_s / MONTH_SECONDS).ceil()
    in_last_year = moments.age_s <= SLOPE_MONTHS * MONTH_SECONDS
    return sum_where((6.5 - month) * moments.amount, in_last_year).fill_null(0.0)


# Sum over x = 0..11 of (x - 5.5)^2: the denominator of the least-squares slope.
SLOPE_SXX = sum((x - (SLOPE_MONTHS - 1) / 2) ** 2 for x in range(SLOPE_MONTHS))


def window_sums(moments: ir.Table, as_of: datetime, w: int) -> dict[str, ir.Scalar]:
    """Revenue, margin, gross sales, returns and discounts of the last `w` days, and the revenue before."""
    recent = in_window(moments.ts, as_of, 0, w)
    sums: dict[str, ir.Scalar] = {
        f"revenue_sum_{w}d": revenue_sum(moments, as_of, 0, w),
        f"margin_sum_{w}d": sum_where(moments.margin, recent).fill_null(0.0),
        f"_revenue_prev_{w}d": revenue_sum(moments, as_of, w, 2 * w),
        f"_gross_sales_{w}d": sum_where(moments.gross, recent).fill_null(0.0),
        # DuckDB sums BIGINT into HUGEINT, which streams as a decimal; a double sum of counts is exact.
        f"return_count_{w}d": sum_where(moments.return_rows.cast("float64"), recent).fill_null(0.0).cast("int64"),
        f"return_amount_{w}d": (-sum_where(moments.returned, recent)).fill_null(0.0),
    }
    if "discount" in moments.columns:
        sums[f"discount_amount_{w}d"] = sum_where(moments.discount, recent).fill_null(0.0)
    return sums


def season_revenue_sums(moments: ir.Table, as_of: datetime, windows: Sequence[int], seasons: Sequence[int]) -> dict[str, ir.Scalar]:
    """Revenue of last year's window of each coming horizon, and of the last 365 days where no window gives it."""
    horizons = season_horizons(seasons)
    sums: dict[str, ir.Scalar] = {
        f"revenue_sum_next_{h}d_year_ago": revenue_sum(moments, as_of, YEAR_DAYS - h, YEAR_DAYS) for h in horizons
    }
    if horizons and YEAR_DAYS not in windows:
        sums[f"_revenue_{YEAR_DAYS}d"] = revenue_sum(moments, as_of, 0, YEAR_DAYS)
    return sums


def moment_aggregates(
    moments: ir.Table, first_days: ir.Table, as_of: datetime, windows: Sequence[int], year_ago: bool,
    seasons: Sequence[int] = (),
) -> ir.Table:
    """Per customer: every sum over rows (volume, trend, returns, discounts, repeat-day revenue) in one pass.

    `first_days` (customer_id, _first_order_day) is joined on so that the revenue of the rows
    dated after the first order day comes out of the same pass; it is null without an order.
    """
    m = join_on_customer(moments, first_days)
    after_first_day = utc_day_number(as_of, m.age_s) > m._first_order_day
    metrics: dict[str, ir.Scalar] = {
        "revenue_sum_lifetime": m.amount.sum().fill_null(0.0),
        "margin_sum_lifetime": m.margin.sum().fill_null(0.0),
        "_slope_numerator": revenue_monthly_slope_numerator(m),
        "_repeat_revenue_sum": sum_where(m.amount, after_first_day).fill_null(0.0),
    }
    for w in windows:
        metrics.update(window_sums(m, as_of, w))
    for w in year_ago_windows(windows, year_ago):
        metrics[f"_revenue_year_ago_{w}d"] = revenue_sum(m, as_of, YEAR_DAYS, YEAR_DAYS + w)
    metrics.update(season_revenue_sums(m, as_of, windows, seasons))
    return m.group_by("customer_id").aggregate(**metrics)


# ---------------------------------------------------------------------------------------------
# Order-level: orders rolled up from the moments, then one grouped pass per customer.


def order_rollup(moments: ir.Table) -> ir.Table:
    """One row per (customer_id, order_id): ts of its first row, whether it is an order, discount."""
    metrics: dict[str, ir.Scalar] = {
        "order_ts": moments.ts.min(),
        "order_age_s": moments.age_s.max(),
        "is_order": moments.max_amount.max() > 0,
    }
    if "discount" in moments.columns:
        metrics["order_discount"] = moments.discount.sum().fill_null(0.0)
    return moments.group_by(["customer_id", "order_id"]).aggregate(**metrics)


def order_aggregates(orders: ir.Table, as_of: datetime, windows: Sequence[int]) -> ir.Table:
    """Per customer: order counts per window, first and last order age, discounted orders."""
    is_order = orders.is_order
    metrics: dict[str, ir.Scalar] = {
        "order_count_lifetime": count_where(orders.order_age_s, is_order),
        "_last_order_age_s": ibis.cases((is_order, orders.order_age_s)).min(),
        "_first_order_age_s": ibis.cases((is_order, orders.order_age_s)).max(),
    }
    for w in windows:
        recent = is_order & in_window(orders.order_ts, as_of, 0, w)
        metrics[f"order_count_{w}d"] = count_where(orders.order_age_s, recent)
        if "order_discount" in orders.columns:
            metrics[f"discounted_order_count_{w}d"] = count_where(orders.order_age_s, recent & (orders.order_discount > 0))
    return orders.group_by("customer_id").aggregate(**metrics)


def utc_day_number(as_of: datetime, age_s: ir.IntegerValue) -> ir.IntegerValue:
    """Days since 1970-01-01 of the UTC date of the moment `age_s` seconds before as_of."""
    return ((ibis.literal(as_of_epoch_seconds(as_of)) - age_s) / SECONDS_PER_DAY).floor()


def season_day_flags(orders: ir.Table, as_of: datetime, seasons: Sequence[int]) -> dict[str, ir.Scalar]:
    """Per order day (an aggregate over its orders): whether an order of it is dated in last year's window of each horizon."""
    return {f"_in_season_{h}d": in_window(orders.order_ts, as_of, YEAR_DAYS - h, YEAR_DAYS).any()
            for h in season_horizons(seasons)}


def season_order_days(days: ir.Table, seasons: Sequence[int]) -> dict[str, ir.Scalar]:
    """Order days with an order dated in last year's window of each horizon (from `season_day_flags`)."""
    return {f"order_days_next_{h}d_year_ago": count_where(days.order_day, days[f"_in_season_{h}d"])
            for h in season_horizons(seasons)}


def cadence_aggregates(orders: ir.Table, as_of: datetime, seasons: Sequence[int] = ()) -> ir.Table:
    """Per customer: order days, first order day, mean and sample std of the gaps between order days.

    Order days are the distinct UTC dates of the orders. Same-day orders share one order day,
    so they add no zero gaps; one order day gives no gap. With season horizons, also the order
    days in last year's window of each (`season_order_days`).
    """
    order_days = orders.filter(orders.is_order).mutate(order_day=utc_day_number(as_of, orders.order_age_s))
    if season_horizons(seasons):
        # One flag per day and horizon: a day on a window's edge counts when one of its orders is inside.
        days = order_days.group_by(["customer_id", "order_day"]).aggregate(**season_day_flags(order_days, as_of, seasons))
    else:
        days = order_days.select("customer_id", "order_day").distinct()
    window = ibis.window(group_by="customer_id", order_by="order_day")
    gaps = days.mutate(gap_days=(days.order_day - days.order_day.lag().over(window)).cast("float64"))
    return gaps.group_by("customer_id").aggregate(
        order_gap_mean_days=gaps.gap_days.mean(),
        order_gap_std_days=gaps.gap_days.std(how="sample"),
        order_days_lifetime=gaps.order_day.count(),
        _first_order_day=gaps.order_day.min(),
        **season_order_days(gaps, seasons),
    )


def btyd_input_features(table: ir.Table) -> dict[str, ir.Value]:
    """order_days_lifetime (0 without orders) and the mean net revenue per repeat order day."""
    order_days = table.order_days_lifetime.fill_null(0)
    # Without an order day there is no repeat revenue at all: null, not 0 / -1.
    repeat_revenue = ibis.cases((table.order_days_lifetime.notnull(), table._repeat_revenue_sum), else_=ibis.null("float64"))
    return {
        "order_days_lifetime": order_days,
        "repeat_revenue_mean_per_order_day_lifetime": safe_ratio(repeat_revenue, order_days - 1),
    }


# ---------------------------------------------------------------------------------------------
# Putting the passes together.


def order_tables(moments: ir.Table, as_of: datetime, windows: Sequence[int], seasons: Sequence[int] = ()) -> tuple[ir.Table, ir.Table]:
    """Per customer: order aggregates joined with cadence; and (customer_id, _first_order_day)."""
    orders = order_rollup(moments)
    cadence = cadence_aggregates(orders, as_of, seasons)
    return join_on_customer(order_aggregates(orders, as_of, windows), cadence), cadence.select("customer_id", "_first_order_day")


def transaction_aggregates(
    transactions: ir.Table,
    as_of: datetime,
    windows: Sequence[int],
    year_ago: bool = True,
    *,
    moments: ir.Table | None = None,
    seasons: Sequence[int] = (),
) -> tuple[ir.Table, ir.Table]:
    """Per customer with any visible transaction row: every aggregate the transaction families read; and the visible rows.

    `moments` is `order_moments` of these transactions (any rows, also after as_of), when the
    caller has it already, e.g. materialised once for every snapshot of a training set.
    `seasons`: the coming horizons (days) whose window of a year ago gets season features.
    The families (features/catalog.py) derive their columns from this table.
    """
    rows = visible_rows(transactions, as_of)
    visible = moments_before(order_moments(rows) if moments is None else moments, as_of)
    orders, first_days = order_tables(visible, as_of, windows, seasons)
    return join_on_customer(moment_aggregates(visible, first_days, as_of, windows, year_ago, seasons), orders), rows


def btyd_inputs_expr(transactions: ir.Table, as_of: datetime) -> ir.Table:
    """customer_id + BTYD_INPUT_COLUMNS for every customer with a visible row: a cheap query.

    Same definitions and population as `transaction_features`, without the windowed families;
    for fitting models/btyd.py on a whole population before scoring it in chunks.
    """
    visible = moments_before(order_moments(visible_rows(transactions, as_of)), as_of)
    orders, first_days = order_tables(visible, as_of, ())
    repeat = join_on_customer(visible, first_days)
    repeat = repeat.group_by("customer_id").aggregate(
        _repeat_revenue_sum=sum_where(repeat.amount, utc_day_number(as_of, repeat.age_s) > repeat._first_order_day).fill_null(0.0)
    )
    table = join_on_customer(repeat, orders)
    days_since_last_order = table._last_order_age_s / float(SECONDS_PER_DAY)
    table = table.mutate(
        days_since_first_order=table._first_order_age_s / float(SECONDS_PER_DAY),
        days_since_last_order=days_since_last_order,
        **btyd_input_features(table),
    )
    return table.select("customer_id", *BTYD_INPUT_COLUMNS)
