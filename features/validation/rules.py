"""The row rules: one SQL condition per reason a row is quarantined for, in the order they are tried.

A row gets the reason of the first rule it breaks (the order is the package docstring's:
identifiers, timestamps, numbers, table rules, future timestamps, unknown customers; the
duplicate reasons come last, from `features.validation.duplicates`). Conditions are written on
the parsed columns of `features.validation.normalise` and on each column as found (`as_found`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from features.contract import LogicalType, TableSpec
from features.io.source_files import FIELD_TOO_LONG, UNDECODABLE_TEXT
from features.sql_text import quote_ident, quote_literal, timestamp_literal
from features.validation.plausibility import MONEY_COLUMNS, PlausibilityRules, unknown_currency_sql

# Reason names used outside the per-column rules (the package docstring gives the order).
EXACT_DUPLICATE = "exact_duplicate"
CONFLICTING_DUPLICATE = "conflicting_duplicate"
UNKNOWN_CUSTOMER = "unknown_customer"
FUTURE_TIMESTAMP = "future_timestamp"
INVALID_CHARACTERS = "invalid_characters"
IMPLAUSIBLE_DATE = "implausible_date"
UNKNOWN_CURRENCY = "unknown_currency"

# Identifiers: text that names a customer, order, invoice, line or product (the package docstring).
IDENTIFIER_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "invoice_id", "line_id", "product_id")
# Words an identifier cell holds when the tool that wrote it meant "no value" (lower case).
MISSING_ID_TEXTS: tuple[str, ...] = ("null", "none", "nan", "na", "n/a", "#n/a", "<na>")
# Control characters (Unicode category Cc): C0, DEL and C1, as an RE2 class for DuckDB.
_CONTROL_CHARACTER_CLASS = r"[\x00-\x1f\x7f-\x9f]"

# Every reason a row can be quarantined for, in the order rules are tried.
QUARANTINE_REASONS: tuple[str, ...] = (
    UNDECODABLE_TEXT, FIELD_TOO_LONG,
    "missing_customer_id", "missing_order_id", "missing_invoice_id", "missing_kind", INVALID_CHARACTERS,
    "missing_timestamp", "bad_timestamp", IMPLAUSIBLE_DATE,
    "missing_amount", "non_numeric_amount", "non_finite_amount", "non_numeric_value", "non_finite_value",
    "negative_discount", "negative_cost", "due_before_issued", "paid_before_issued", UNKNOWN_CURRENCY,
    FUTURE_TIMESTAMP, UNKNOWN_CUSTOMER, EXACT_DUPLICATE, CONFLICTING_DUPLICATE,
)

_FUTURE_CHECKED: dict[str, tuple[str, ...]] = {
    "transactions": ("ts",),
    "interactions": ("ts",),
    "invoices": ("issued_at", "paid_at"),
    "customers": ("signup_date",),
}


@dataclass(frozen=True)
class Rule:
    """A row rule: reason, the contract column it looks at, and a SQL condition on parsed columns."""

    reason: str
    column: str
    condition: str


def as_found(col: str) -> str:
    """The column as found: trimmed text (empty -> null), or the native value on the direct route."""
    return f"{quote_ident(col + '__s')}"


def reads_as_missing(text_sql: str) -> str:
    """SQL: trimmed text is one of the words tools write for a missing value (MISSING_ID_TEXTS)."""
    lengths = [len(word) for word in MISSING_ID_TEXTS]
    words = ", ".join(quote_literal(word) for word in MISSING_ID_TEXTS)
    # The byte length test is free and rules out almost every real id; only CASE makes DuckDB
    # skip lower() for those rows (with AND it lowered every id: 3x the CPU, measured).
    return (f"(CASE WHEN strlen({text_sql}) BETWEEN {min(lengths)} AND {max(lengths)} "
            f"THEN lower({text_sql}) IN ({words}) ELSE false END)")


def _has_control_character(text_sql: str) -> str:
    return f"regexp_matches({text_sql}, {quote_literal(_CONTROL_CHARACTER_CLASS)})"


def column_rules(spec: TableSpec, present: Sequence[str], min_date: date) -> list[Rule]:
    """Rules about single columns, in the documented order: ids, timestamps, numbers."""
    ids, characters, stamps, numbers = [], [], [], []
    for col in spec.column_names:
        if col not in present:
            continue
        c, s = spec.column(col), as_found(col)
        if col in IDENTIFIER_COLUMNS:
            characters.append(Rule(INVALID_CHARACTERS, col, f"{s} IS NOT NULL AND {_has_control_character(s)}"))
        if col in IDENTIFIER_COLUMNS and c.required:
            ids.append(Rule(f"missing_{col}", col, f"{s} IS NULL OR {reads_as_missing(s)}"))
        elif c.type is LogicalType.STRING and c.required:
            ids.append(Rule(f"missing_{col}", col, f"{s} IS NULL"))
        elif c.type is LogicalType.TIMESTAMP:
            if c.required:
                stamps.append(Rule("missing_timestamp", col, f"{s} IS NULL"))
            stamps.append(Rule("bad_timestamp", col, f"{s} IS NOT NULL AND {quote_ident(col)} IS NULL"))
            stamps.append(_implausible_date_rule(col, min_date))
        elif c.type is LogicalType.FLOAT:
            suffix = col if col == "amount" else "value"
            if c.required:
                numbers.append(Rule(f"missing_{suffix}", col, f"{s} IS NULL"))
            numbers.append(Rule(f"non_numeric_{suffix}", col, f"{s} IS NOT NULL AND {quote_ident(col)} IS NULL"))
            numbers.append(Rule(f"non_finite_{suffix}", col, f"NOT isfinite({quote_ident(col)})"))
    return ids + characters + stamps + numbers


def _implausible_date_rule(col: str, min_date: date) -> Rule:
    """A timestamp before the minimum date: a placeholder for "no date" (1900-01-01, 1970-01-01, 0001-01-01)."""
    # Accepted, such a date turns into decades of tenure and "an order every 184,957 days".
    return Rule(IMPLAUSIBLE_DATE, col, f"{quote_ident(col)} < TIMESTAMP '{min_date.isoformat()}'")


def table_rules(table: str, present: Sequence[str], plausibility: PlausibilityRules) -> list[Rule]:
    """Rules across columns of one row that only make sense for one table."""
    rules: list[Rule] = []
    if table == "transactions" and "discount" in present:
        rules.append(Rule("negative_discount", "discount", "discount < 0"))
    if table == "interactions" and "cost" in present:
        rules.append(Rule("negative_cost", "cost", "cost < 0"))
    if table == "invoices":
        rules.append(Rule("due_before_issued", "due_at", "CAST(due_at AS DATE) < CAST(issued_at AS DATE)"))
        if "paid_at" in present:
            rules.append(Rule("paid_before_issued", "paid_at", "CAST(paid_at AS DATE) < CAST(issued_at AS DATE)"))
    if table in MONEY_COLUMNS and "currency" in present and plausibility.currency is not None:
        rules.append(Rule(UNKNOWN_CURRENCY, "currency", unknown_currency_sql(plausibility.currency, "currency")))
    return rules


def future_rules(table: str, present: Sequence[str], limit: datetime) -> list[Rule]:
    return [
        Rule(FUTURE_TIMESTAMP, col, f"{quote_ident(col)} > {timestamp_literal(limit)}")
        for col in _FUTURE_CHECKED.get(table, ())
        if col in present
    ]
