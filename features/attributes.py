"""Which customers columns may become `attr_<column>` features (the expressions are in
features/families/attributes.py).

The customers table is a current snapshot, not a history: attributes are taken as they are
(an attribute that changed after T, or that records the outcome itself, would leak the future).
So not every column becomes a feature: `choose_attributes` decides once per run, on the whole
customers table, which columns may (a schema decision, the same for every snapshot and for
scoring), and `keep_chosen_attributes` drops the others from the table every feature reads.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated

import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, model_validator

NOT_ATTRIBUTES = {"customer_id", "signup_date"}


def attribute_source_columns(columns: Collection[str]) -> list[str]:
    """Customer columns that become `attr_<column>` features, in a stable (sorted) order."""
    return sorted(set(columns) - NOT_ATTRIBUTES)


# Names of outcomes, not of facts known before them: a customers table exported today says who
# has churned or cancelled since any training snapshot. Matched case-insensitively on the words
# of a column name (split at non-letters and camelCase): a word equal to one of these, or
# starting with one of the stems.
LEAKAGE_WORDS = ("target", "label", "outcome", "left", "lost", "exit", "exited", "lapsed", "closed",
                 "status", "active", "inactive", "retained", "retention", "renewed")
LEAKAGE_STEMS = ("churn", "cancel", "attrit", "terminat", "defect", "unsubscrib")
# Names of personal data: never a feature, whatever the values look like.
PERSONAL_WORDS = ("email", "mail", "phone", "mobile", "telephone", "fax", "address", "street", "surname",
                  "firstname", "lastname", "fullname", "ssn", "passport", "iban", "url", "website", "birthday",
                  "birthdate", "dob")
# Whole names (words joined) of a person's name; 'plan_name' or 'industry_name' are categories.
PERSONAL_NAMES = ("name", "firstname", "lastname", "fullname", "customername", "contactname", "personname",
                  "username", "email", "phonenumber")
# Values that identify a person or a site; one such value is enough to drop the column (a
# category never looks like an e-mail address, and one address in a reason is one too many).
VALUE_PATTERNS = {
    "e-mail addresses": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    "URLs": r"(?i)^(https?://|www\.)\S+$",
    "phone numbers": r"^(\+|00)[0-9][0-9 ()./-]{6,}[0-9]$|^\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}$",
}
# The distinct-share rules need enough customers: among 5 customers any column is "unique".
MIN_VALUES_FOR_SHARE = 20
# Whole numbers that nearly every customer has a different one of are a customer number, not a
# measure, when they run densely (a counter: max - min < 2 x distinct) or the name says so.
NUMERIC_ID_DISTINCT_SHARE = 0.95
IDENTIFIER_WORDS = ("id", "code", "number", "no", "nr", "num", "key", "ref", "uuid", "guid", "account")


class AttributePolicy(BaseModel):
    """Which customers columns may become `attr_<column>` features (config features.attributes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Kept despite a name on the leakage or personal-data lists, or a cardinality rule (matched
    # case-insensitively). Values that look like e-mail addresses, URLs or phone numbers never are.
    allow: tuple[str, ...] = ()
    # Never features, whatever they hold.
    exclude: tuple[str, ...] = ()
    # A text column with more distinct values than this is free text or a code, not a category.
    max_categories: Annotated[int, Field(gt=0)] = 100
    # A text column whose distinct values exceed this share of its non-empty values is identifier-like
    # (applied from MIN_VALUES_FOR_SHARE values on).
    max_distinct_share: Annotated[float, Field(gt=0, le=1)] = 0.5

    @model_validator(mode="after")
    def _allow_and_exclude_disjoint(self) -> AttributePolicy:
        both = {c.lower() for c in self.allow} & {c.lower() for c in self.exclude}
        if both:
            raise ValueError(f"features.attributes: {sorted(both)} are both in allow and exclude; keep each in one")
        return self


@dataclass(frozen=True)
class AttributeChoice:
    """The customers columns kept as attributes and the excluded ones with their reason."""

    kept: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]  # (column, reason)

    def as_dict(self) -> dict[str, object]:
        """Plain form for run summaries and MLflow: {kept: [...], excluded: {column: reason}}."""
        return {"kept": list(self.kept), "excluded": dict(self.excluded)}


def name_words(column: str) -> list[str]:
    """Lower-case words of a column name: 'isChurned' and 'is_churned' -> ['is', 'churned']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def leakage_name(column: str) -> str | None:
    """The word of the name that marks it as an outcome, or None."""
    for word in name_words(column):
        if word in LEAKAGE_WORDS or word.startswith(LEAKAGE_STEMS):
            return word
    return None


def personal_name(column: str) -> str | None:
    """The word of the name that marks it as personal data, or None."""
    words = name_words(column)
    joined = "".join(words)
    for word in words:
        if word in PERSONAL_WORDS:
            return word
    return joined if joined in PERSONAL_NAMES else None  # 'e_mail', 'first_name'


def _column_profile(customers: ir.Table, columns: list[str]) -> dict[str, object]:
    """One aggregate query: per column the non-empty values, distinct values and pattern counts."""
    aggregates: dict[str, ir.Value] = {}
    for i, column in enumerate(columns):
        value = customers[column]
        aggregates[f"n{i}"] = value.count()
        aggregates[f"d{i}"] = value.nunique()
        if value.type().is_numeric():
            aggregates[f"w{i}"] = (value == value.floor()).cast("int64").sum()
            aggregates[f"lo{i}"] = value.min().cast("float64")
            aggregates[f"hi{i}"] = value.max().cast("float64")
        else:
            for j, pattern in enumerate(VALUE_PATTERNS.values()):
                aggregates[f"p{i}_{j}"] = value.re_search(pattern).cast("int64").sum()
    if not aggregates:
        return {}
    row = customers.aggregate(**aggregates).to_pyarrow().to_pylist()[0]
    return {k: (v or 0) for k, v in row.items()}


def _numeric_identifier(column: str, i: int, profile: dict[str, object]) -> bool:
    """Whole numbers, nearly one per customer, running densely or named like an identifier."""
    n, distinct = int(profile[f"n{i}"]), int(profile[f"d{i}"])
    if int(profile[f"w{i}"]) < n or n < MIN_VALUES_FOR_SHARE or distinct < NUMERIC_ID_DISTINCT_SHARE * n:
        return False
    dense = float(profile[f"hi{i}"]) - float(profile[f"lo{i}"]) < 2 * distinct
    return dense or any(word in IDENTIFIER_WORDS for word in name_words(column))


def _value_reason(column: str, i: int, numeric: bool, profile: dict[str, object], policy: AttributePolicy) -> str | None:
    """Why the column's values make it no feature (personal data, identifier, free text), or None."""
    n, distinct = int(profile[f"n{i}"]), int(profile[f"d{i}"])
    if n == 0:
        return "no values"
    if numeric:
        if _numeric_identifier(column, i, profile):
            return f"identifier-like: whole numbers, {distinct:,} distinct in {n:,} customers"
        return None
    for j, what in enumerate(VALUE_PATTERNS):
        if profile[f"p{i}_{j}"]:
            return f"personal data: {int(profile[f'p{i}_{j}']):,} values look like {what}"
    if distinct > policy.max_categories:
        return f"free text or code: {distinct:,} distinct values, more than max_categories {policy.max_categories}"
    if n >= MIN_VALUES_FOR_SHARE and distinct > policy.max_distinct_share * n:
        return (f"identifier-like: {distinct:,} distinct values in {n:,} customers, more than "
                f"max_distinct_share {policy.max_distinct_share:g}")
    return None


def _personal_values_only(reason: str | None) -> str | None:
    """An allowed column is still dropped for values that identify a person or a site."""
    return reason if reason is not None and reason.startswith("personal data") else None


def _name_reason(column: str) -> str | None:
    """Why the column's name makes it no feature (an outcome, personal data), or None."""
    if (word := leakage_name(column)) is not None:
        return (f"name looks like an outcome ('{word}' is on the leakage list); list it in "
                f"features.attributes.allow if it is known before the outcome")
    if (word := personal_name(column)) is not None:
        return f"personal data by name ('{word}')"
    return None


def choose_attributes(customers: ir.Table, policy: AttributePolicy = AttributePolicy()) -> AttributeChoice:
    """Decide which attribute columns of the customers table become features, and why the others do not.

    Rules, in order: `exclude`; unless `allow`ed, a name on the leakage list (an outcome) or the
    personal-data list; values that look like e-mail addresses, URLs or phone numbers (even when
    allowed); unless allowed, text with more than `max_categories` distinct values or with
    distinct values above `max_distinct_share` of its values, and whole numbers nearly unique per
    customer (identifiers); a column without any value. Numbers and bounded categories are kept.
    """
    columns = attribute_source_columns(customers.columns)
    allowed = {c.lower() for c in policy.allow}
    excluded_names = {c.lower() for c in policy.exclude}
    profile = _column_profile(customers, [c for c in columns if c.lower() not in excluded_names])
    kept: list[str] = []
    excluded: list[tuple[str, str]] = []
    profiled = 0
    for column in columns:
        if column.lower() in excluded_names:
            excluded.append((column, "listed in features.attributes.exclude"))
            continue
        i, profiled = profiled, profiled + 1
        by_values = _value_reason(column, i, customers[column].type().is_numeric(), profile, policy)
        if column.lower() in allowed:
            reason = _personal_values_only(by_values)
        else:
            reason = _personal_values_only(by_values) or _name_reason(column) or by_values
        if reason is None:
            kept.append(column)
        else:
            excluded.append((column, reason))
    return AttributeChoice(tuple(kept), tuple(excluded))


def keep_chosen_attributes(customers: ir.Table, choice: AttributeChoice) -> ir.Table:
    """The customers table without the excluded attribute columns (what every feature query reads)."""
    dropped = [column for column, _ in choice.excluded if column in customers.columns]
    return customers.drop(*dropped) if dropped else customers
