"""Plausibility of data that reads well: dates too old to be real, amounts in several currencies,
a table that ends long before the others, and orders far above the rest.

Row rules (in `features.validation`) take their settings from here: ``implausible_date`` (a
timestamp before `PlausibilityRules.min_date`: 1900-01-01, 1970-01-01 and 0001-01-01 are what
systems write for "no date") and ``unknown_currency`` (a currency the conversion has no rate
for). The other checks look at the accepted tables as a whole and end in a warning, never in
a quarantined row: large orders and a quiet source can be real, and only a person can tell.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.sql_text import quote_ident, quote_literal

# Tables that record events, and the columns that date them. The customers table is a snapshot:
# its last signup can lie years back in a healthy business, so it is not compared.
EVENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("ts",),
    "invoices": ("issued_at", "paid_at"),
    "interactions": ("ts",),
}
# Tables whose amounts are money, and their money columns (converted with the amount).
MONEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("amount", "margin", "discount"),
    "invoices": ("amount", "paid_amount"),
}


def currency_code(text: str) -> str:
    """Currency codes compare trimmed and in upper case: 'usd ' is USD."""
    return text.strip().upper()


class CurrencyConversion(BaseModel):
    """Amounts in several currencies, converted into `base` (config data.currency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: Annotated[str, Field(min_length=1)]
    # Units of the base currency one unit of each other currency is worth (USD: 0.92 with base EUR).
    rates: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = {}

    @field_validator("base")
    @classmethod
    def _base_code(cls, value: str) -> str:
        code = currency_code(value)
        if not code:
            raise ValueError("data.currency.base is empty; give the currency code amounts are converted into, e.g. EUR")
        return code

    @field_validator("rates")
    @classmethod
    def _rate_codes(cls, value: dict[str, float]) -> dict[str, float]:
        codes: dict[str, float] = {}
        for name, rate in value.items():
            code = currency_code(name)
            if not code or code in codes:
                raise ValueError(f"data.currency.rates: currency {name!r} is empty or given twice (case ignored)")
            codes[code] = rate
        return codes

    @model_validator(mode="after")
    def _base_rate_is_one(self) -> CurrencyConversion:
        if self.base in self.rates and self.rates[self.base] != 1:
            raise ValueError(f"data.currency.rates gives the base currency {self.base} the rate "
                             f"{self.rates[self.base]}; the base is worth 1 of itself: remove it from rates")
        return self

    def factor(self, code: str) -> float | None:
        """Base units per unit of `code` (1 for the base), None when no rate is given."""
        code = currency_code(code)
        return 1.0 if code == self.base else self.rates.get(code)


class WhaleOrderRule(BaseModel):
    """When an order is far above the rest (config data.whale_order); flagged, never quarantined."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # An order above `multiple` times this percentile of positive order amounts is a whale. The
    # largest order of the demo data is 3.3x its 99th percentile, CDNOW's 2.9x.
    percentile: Annotated[float, Field(ge=50, lt=100)] = 99
    multiple: Annotated[float, Field(gt=1)] = 10
    # An order above this share of all positive order revenue is one too (null: off). Among 300
    # log-normal orders (sigma 1.5, a heavy tail) the largest exceeds 5% in 87% of draws, 20% in 3%.
    revenue_share: Annotated[float, Field(gt=0, le=1)] | None = 0.2
    # With fewer orders a percentile says little about what is usual: no check.
    min_orders: Annotated[int, Field(ge=2)] = 100
    # Whales named one by one in the report; further ones are counted.
    max_named: Annotated[int, Field(ge=1)] = 5


class PlausibilityRules(BaseModel):
    """The data.min_date, data.currency, data.max_source_lag_days and data.whale_order settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Timestamps before this day are quarantined as implausible_date (CDNOW starts in 1997).
    min_date: date = date(1990, 1, 1)
    # null: amounts in more than one currency refuse the input.
    currency: CurrencyConversion | None = None
    # An event table ending more than this many days before the latest one is warned about (null: off).
    max_source_lag_days: Annotated[int, Field(gt=0)] | None = 60
    # null: no check for whale orders.
    whale_order: WhaleOrderRule | None = WhaleOrderRule()


# ----------------------------------------------------------------------------- currencies


def currency_factor_sql(conversion: CurrencyConversion, column_sql: str) -> str:
    """SQL: base units per unit of the row's currency; an empty currency is the base."""
    cases = " ".join(f"WHEN {quote_literal(code)} THEN {rate!r}" for code, rate in sorted(conversion.rates.items()))
    return f"(CASE upper({column_sql}) {cases} ELSE 1.0 END)" if cases else "1.0"


def unknown_currency_sql(conversion: CurrencyConversion, column_sql: str) -> str:
    """SQL: the row names a currency that is neither the base nor has a rate."""
    known = ", ".join(quote_literal(code) for code in sorted({conversion.base, *conversion.rates}))
    return f"({column_sql} IS NOT NULL AND upper({column_sql}) NOT IN ({known}))"


def currency_counts(con: Any, tables: dict[str, str]) -> dict[str, dict[str, int]]:
    """{table: {currency: accepted rows}} of the money tables with a currency column (`tables`: name -> display)."""
    counts: dict[str, dict[str, int]] = {}
    for table in tables:
        if table not in MONEY_COLUMNS or "currency" not in _columns(con, table):
            continue
        rows = con.execute(
            f"SELECT upper(currency) AS code, count(*) FROM {quote_ident(table)} WHERE currency IS NOT NULL "
            "GROUP BY code ORDER BY count(*) DESC, code"
        ).fetchall()
        if rows:
            counts[table] = {str(code): int(n) for code, n in rows}
    return counts


def mixed_currency_message(counts: dict[str, dict[str, int]], displays: dict[str, str]) -> str | None:
    """One line naming each currency and its rows per table when there is more than one, else None."""
    totals: dict[str, int] = {}
    for per_table in counts.values():
        for code, n in per_table.items():
            totals[code] = totals.get(code, 0) + n
    if len(totals) < 2:
        return None
    # The currency with the most rows is the likely base of the example given.
    codes = sorted(totals, key=lambda code: (-totals[code], code))
    parts = [f"{displays.get(table, table)}: " + ", ".join(f"{code} {_rows(n)}" for code, n in per_table.items())
             for table, per_table in counts.items()]
    rates = ", ".join(f"{code}: <{codes[0]} per {code}>" for code in codes[1:])
    return (f"amounts in {len(codes)} currencies ({'; '.join(parts)}) would be added up as one; convert them to "
            f"one currency in the source, or give the rates in the config: data.currency: "
            f"{{base: {codes[0]}, rates: {{{rates}}}}}")


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


# ----------------------------------------------------------------------------- freshness


def _columns(con: Any, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {quote_ident(table)}").fetchall()]


def last_event_times(con: Any, tables: list[str]) -> dict[str, datetime]:
    """The last timestamp of each event table that has accepted rows."""
    last: dict[str, datetime] = {}
    for table in tables:
        present = [c for c in EVENT_COLUMNS.get(table, ()) if c in _columns(con, table)]
        if not present:
            continue
        latest = "greatest(" + ", ".join(f"max({quote_ident(c)})" for c in present) + ")"
        value = con.execute(f"SELECT {latest} FROM {quote_ident(table)}").fetchall()[0][0]
        if value is not None:
            last[table] = value
    return last


def stale_source_warnings(last: dict[str, datetime], max_lag_days: int | None) -> dict[str, str]:
    """{table: warning} for each event table ending more than `max_lag_days` before the latest one."""
    if max_lag_days is None or len(last) < 2:
        return {}
    newest_table = max(last, key=lambda t: (last[t], t))
    newest = last[newest_table]
    warnings = {}
    for table, ends in last.items():
        lag = (newest.date() - ends.date()).days
        if lag > max_lag_days:
            warnings[table] = (
                f"stale: its last row is dated {ends.date()}, {lag:,} days before the last of {newest_table} "
                f"({newest.date()}); features as of later dates read the gap as no activity: check that the "
                f"extract is complete (warned beyond data.max_source_lag_days = {max_lag_days})"
            )
    return warnings


# ----------------------------------------------------------------------------- whale orders


def whale_orders(con: Any, rule: WhaleOrderRule | None) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Orders far above the rest in the accepted transactions, largest first, and the figures used.

    An order is a customer's order id with a positive net amount (lines and returns summed).
    Returns ([{customer_id, order_id, ts, amount, times_percentile, share}], {n_orders, percentile_amount, total});
    nothing when there are fewer than `rule.min_orders` orders.
    """
    if rule is None:
        return [], {}
    share = rule.revenue_share if rule.revenue_share is not None else "NULL"
    # One pass over the lines: the orders are summed once and read twice (their figures, the whales).
    rows = con.execute(
        f"""
        WITH orders AS MATERIALIZED (
                 SELECT customer_id, order_id, min(ts) AS ts, sum(amount) AS amount FROM transactions
                 GROUP BY customer_id, order_id HAVING sum(amount) > 0),
             figures AS (SELECT count(*) AS n, quantile_cont(amount, {rule.percentile / 100!r}) AS level,
                                sum(amount) AS total FROM orders)
        SELECT o.customer_id, o.order_id, o.ts, o.amount, f.n, f.level, f.total FROM orders o, figures f
        WHERE f.n >= {rule.min_orders} AND f.level > 0
          AND (o.amount > {rule.multiple!r} * f.level OR o.amount > {share} * f.total)
        ORDER BY o.amount DESC, o.customer_id, o.order_id
        """
    ).fetchall()
    if not rows:
        return [], {}
    n_orders, level, total = int(rows[0][4]), float(rows[0][5]), float(rows[0][6])
    whales = [{"customer_id": c, "order_id": o, "ts": ts, "amount": float(a), "times_percentile": float(a) / level,
               "share": float(a) / total} for c, o, ts, a, *_ in rows]
    return whales, {"n_orders": n_orders, "percentile_amount": float(level), "total": float(total)}


def _money(value: float) -> str:
    return f"{value:,.2f}" if math.isfinite(value) else str(value)


def whale_warnings(whales: list[dict[str, Any]], figures: dict[str, float], rule: WhaleOrderRule | None) -> list[str]:
    """One warning per named whale (the largest `rule.max_named`), and one counting the others."""
    if not whales or rule is None:
        return []
    pct = f"{rule.percentile:g}th percentile"
    lines = [
        f"whale order {w['order_id']} of customer {w['customer_id']} on {w['ts']:%Y-%m-%d}: amount "
        f"{_money(w['amount'])}, {w['times_percentile']:,.0f}x the {pct} of {figures['n_orders']:,} orders "
        f"({_money(figures['percentile_amount'])}) and {w['share']:.1%} of all order revenue; kept: check it is real "
        f"(flagged above {rule.multiple:g}x the {pct}"
        + (f" or {rule.revenue_share:.0%} of revenue" if rule.revenue_share is not None else "")
        + ", data.whale_order)"
        for w in whales[: rule.max_named]
    ]
    if len(whales) > rule.max_named:
        more = len(whales) - rule.max_named
        lines.append(f"{more:,} more whale orders (the largest {rule.max_named} are named above)")
    return lines
