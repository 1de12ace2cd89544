"""Customer attributes: `attr_<column>` for each kept customers column, and days_since_signup.

The customers table is a current snapshot, not a history (features/attributes.py decides which
columns may be features). A customer whose signup_date is on or after T did not exist at T:
their days_since_signup is null and they are never a prospect at T.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import datetime

import ibis
import ibis.expr.types as ir

from features.attributes import attribute_source_columns
from features.families.wording import Column, Family, Template, fixed, humanise, money, plural, whole
from features.transactions import SECONDS_PER_DAY, as_of_epoch_seconds

COLUMNS = (
    Column("attr_{col}", "text or number", "as given", "a kept customers column (text as a category)"),
    Column("days_since_signup", "days", "at T", "T - signup_date (with `signup_date`)"),
)


def names(spec, available) -> list[str]:
    return attribute_feature_columns(available["customers"]) if spec.include_attributes and "customers" in available else []


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


# Chinese names of common attribute columns; another column is named in words of its code.
ATTRIBUTE_NAMES_ZH = {
    "industry": "行业", "region": "地区", "size_band": "规模", "size": "规模", "channel": "渠道",
    "city": "城市", "province": "省份", "country": "国家", "company_size": "公司规模",
    "employees": "员工数", "segment": "客户类型", "tier": "等级", "sector": "行业",
}  # fmt: skip


def _attribute(x, g, _):
    col = g["col"]
    en_name, zh_name = humanise(col), ATTRIBUTE_NAMES_ZH.get(col, humanise(col))
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return f"{en_name}: unknown", f"{zh_name}：未知"
    text = x if isinstance(x, str) else money(x)
    return f"{en_name}: {text}", f"{zh_name}：{text}"


TEMPLATES = (
    Template("days_since_signup", "days", *fixed("days since sign-up", "注册天数"),
             lambda x, g, c: (f"signed up {plural(x, 'day')} ago", f"注册于{whole(x)}天前"), fact="tenure"),
    Template(r"attr_(?P<col>.+)", "text", lambda g: humanise(g["col"]), lambda g: ATTRIBUTE_NAMES_ZH.get(g["col"], humanise(g["col"])),
             _attribute),
)

FAMILY = Family("attributes", "attributes", COLUMNS, names, TEMPLATES)
