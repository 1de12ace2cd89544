"""Which customers columns become attr_ features: no personal data, identifiers, free text or outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from features.attributes import AttributePolicy, choose_attributes, keep_chosen_attributes
from features.build import FeatureSpec, build_features
from features.tables import tables_from_frames

T = datetime(2024, 7, 1)
N = 60  # enough customers for the distinct-share rules (they start at 20 values)

CUSTOMERS = pd.DataFrame({
    "customer_id": [f"C{i:03d}" for i in range(N)],
    "industry": ["retail", "wholesale", "steel"] * (N // 3),
    "employees": [5, 12, 250, 40, 7, 1000] * (N // 6),
    "email": [f"person{i}@example.com" for i in range(N)],
    "customer_code": [f"K-{i * 7:05d}" for i in range(N)],
    "churned": [i % 2 for i in range(N)],
    "CancelDate": ["2024-05-01" if i % 4 == 0 else None for i in range(N)],
    "member_no": list(range(1000, 1000 + N)),
    "notes": [f"called on day {i}, wants a discount" for i in range(N)],
    "homepage": ["www.example.com"] + ["" for _ in range(N - 1)],
    "phone": ["+49 30 1234567"] * N,
    "tier": ["gold", "silver"] * (N // 2),
})
TRANSACTIONS = pd.DataFrame({
    "customer_id": CUSTOMERS.customer_id, "order_id": [f"o{i}" for i in range(N)],
    "ts": [T - timedelta(days=10)] * N, "amount": [10.0] * N,
})


@pytest.fixture(scope="module")
def tables(con):
    return tables_from_frames({"transactions": TRANSACTIONS, "customers": CUSTOMERS}, con)[1]


def test_only_bounded_categories_and_numbers_are_kept_each_exclusion_has_its_reason(tables):
    choice = choose_attributes(tables["customers"])
    assert choice.kept == ("employees", "industry", "tier")
    reasons = dict(choice.excluded)
    assert set(reasons) == {"CancelDate", "churned", "customer_code", "email", "homepage", "member_no", "notes", "phone"}
    assert reasons["email"] == f"personal data: {N} values look like e-mail addresses"
    assert reasons["homepage"] == "personal data: 1 values look like URLs"  # one address is enough
    assert reasons["phone"] == f"personal data: {N} values look like phone numbers"  # even if all the same
    assert reasons["customer_code"].startswith(f"identifier-like: {N} distinct values in {N} customers")
    assert reasons["notes"].startswith(f"identifier-like: {N} distinct values")
    assert reasons["member_no"] == f"identifier-like: whole numbers, {N} distinct in {N} customers"
    assert "'churned' is on the leakage list" in reasons["churned"]
    assert "'cancel' is on the leakage list" in reasons["CancelDate"]  # camelCase split into words


def test_category_count_threshold_is_configurable(tables):
    choice = choose_attributes(tables["customers"], AttributePolicy(max_categories=2))
    assert "industry" not in choice.kept and "tier" in choice.kept
    assert dict(choice.excluded)["industry"] == "free text or code: 3 distinct values, more than max_categories 2"


def test_allow_keeps_a_listed_outcome_name_and_exclude_drops_any_column_case_insensitively(tables):
    choice = choose_attributes(tables["customers"], AttributePolicy(allow=("CHURNED", "email"), exclude=("Tier",)))
    assert "churned" in choice.kept
    reasons = dict(choice.excluded)
    assert reasons["tier"] == "listed in features.attributes.exclude"
    assert reasons["email"].startswith("personal data")  # addresses stay out even when allowed


def test_allow_and_exclude_of_the_same_column_is_a_config_error():
    with pytest.raises(ValidationError, match="both in allow and exclude"):
        AttributePolicy(allow=("region",), exclude=("Region",))


def test_excluded_columns_never_reach_the_feature_table(tables):
    choice = choose_attributes(tables["customers"])
    vetted = {**tables, "customers": keep_chosen_attributes(tables["customers"], choice)}
    frame = build_features(vetted, T, FeatureSpec(windows_days=(30,)))
    attrs = sorted(c for c in frame.columns if c.startswith("attr_"))
    assert attrs == ["attr_employees", "attr_industry", "attr_tier"]
    text = frame.astype(str).to_string()
    assert "@example.com" not in text and "K-000" not in text


def test_few_customers_keep_their_columns_one_cannot_tell_a_code_from_a_category(con):
    few = CUSTOMERS.head(5)[["customer_id", "industry", "employees", "customer_code"]]
    tables = tables_from_frames({"transactions": TRANSACTIONS.head(5), "customers": few}, con)[1]
    assert choose_attributes(tables["customers"]).kept == ("customer_code", "employees", "industry")
