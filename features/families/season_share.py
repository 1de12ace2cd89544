"""The season ahead for the whole population: how much of last year's revenue fell in the coming horizon's window.

Demand is seasonal: on UCI Online Retail September to November sell 1.4-2x the summer months.
A model that predicts the next H days from features as of T cannot see whether [T, T + H) is a
strong or a weak season unless a feature says so. Per customer, `season.py` gives the
customer's own revenue and order days in last year's window [T - 365d, T - 365d + H) and its
share of the customer's year. This module gives the same share for all customers together:

- season_share_next_{H}d = the net revenue of all rows with T - 365d <= ts < T - 365d + H over
  the net revenue of all rows with T - 365d <= ts < T: the calendar weight of the coming
  horizon, last year (H / 365 = 0.25 for a flat year and H = 91). One value per snapshot, so
  it tells stacked training snapshots apart by season. Null when the history before T is
  shorter than a year (the first row is dated on a later UTC day than T - 365d: a log that
  starts at 07:45 on that day covers it) or that year's revenue is not positive (below
  MIN_REVENUE_BASE), and for H >= 365 not built at all (`season_horizons`).

It reads only rows with ts < T. The population is every customer of the data, not the
customers of one query: scoring in hash partitions and training on a customer sample pass the
whole data (`build_features_expr`'s `population`), so the value is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

from features.families.season import season_en, season_zh
from features.families.wording import Column, Family, Template, whole
from features.transactions import MIN_REVENUE_BASE, YEAR_DAYS, in_window, season_horizons, sum_where


def season_share_columns(horizons: Sequence[int]) -> list[str]:
    """Population season columns for the `season_horizons` of `horizons`."""
    return [f"season_share_next_{h}d" for h in season_horizons(horizons)]


def names(spec, available) -> list[str]:
    return season_share_columns(spec.season_horizons_days)


def season_shares(population: ir.Table, as_of: datetime, horizons: Sequence[int]) -> ir.Table:
    """One row: season_share_next_{H}d for each season horizon, from rows (ts, amount) before as_of.

    Every window ends by as_of, and the first ts only decides whether history starts before
    the day after T - 365d, which no row at or after as_of is: so the rows are not filtered
    first. Filtered by ts < as_of they would be the same expression as the customers' visible
    rows, which Ibis then shares as one CTE that DuckDB holds in memory whole.
    """
    rows = population
    sums = rows.aggregate(
        _first_ts=rows.ts.min(),
        _year_revenue=sum_where(rows.amount, in_window(rows.ts, as_of, 0, YEAR_DAYS)),
        **{f"_season_{h}d": sum_where(rows.amount, in_window(rows.ts, as_of, YEAR_DAYS - h, YEAR_DAYS))
           for h in season_horizons(horizons)},
    )
    full_year = sums._first_ts < ibis.timestamp(day_after(as_of - timedelta(days=YEAR_DAYS)))
    measurable = full_year & (sums._year_revenue >= MIN_REVENUE_BASE)
    return sums.select(**{
        f"season_share_next_{h}d": ibis.cases(
            (measurable, sums[f"_season_{h}d"].fill_null(0.0) / sums._year_revenue), else_=ibis.null("float64"))
        for h in season_horizons(horizons)
    })


def day_after(moment: datetime) -> datetime:
    """Midnight at the end of the UTC day of `moment`."""
    return datetime.combine(moment.date(), datetime.min.time()) + timedelta(days=1)


def daily_revenue(transactions: ir.Table) -> ir.Table:
    """Net revenue per UTC day, dated by the day's first row: a small stand-in for the rows in `season_shares`.

    For as-of dates at midnight (training snapshots are) every window bound is a midnight, so a
    day is in a window exactly when its rows are, and the first row's ts keeps "a year of
    history" exact. Not for other as-of times: a day's rows after as_of would count before it.
    """
    day = transactions.ts.truncate("D")
    return transactions.group_by(_day=day).aggregate(ts=transactions.ts.min(), amount=transactions.amount.sum()).drop("_day")


def _season_share_of_everyone(x, g, _):
    return (f"all customers spent {whole(x)}% of the last 365 days' sales {season_en(g)}",
            f"全部客户近365天消费额的{whole(x)}%落在{season_zh(g)}")


COLUMNS = (
    Column("season_share_next_{H}d", "share", "[T - 365d, T - 365d + H)", "all customers' revenue in that window over their last 365 days'"),
)
TEMPLATES = (
    Template(r"season_share_next_(?P<w>\d+)d", "pct",
             lambda g: f"all customers' share of the last 365 days' sales {season_en(g)}",
             lambda g: f"全部客户近365天消费额中{season_zh(g)}的占比", _season_share_of_everyone),
)

# One value per as-of date, joined on every customer row (build.py).
FAMILY = Family("season_share", "season, all customers", COLUMNS, names, TEMPLATES)
