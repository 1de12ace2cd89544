"""features.model_features: only the listed columns reach the models; a typo stops the run by name."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.training import feature_names_of

FRAME = pd.DataFrame({
    "customer_id": ["a"], "as_of": [pd.Timestamp("2024-01-01")], "is_validation": [False],
    "days_since_last_order": [3.0], "days_since_first_order": [90.0], "recency_over_tenure": [0.03],
    "label_churn": [0], "label_revenue": [1.0],
})


def test_all_features_by_default_and_never_ids_or_labels():
    assert feature_names_of(FRAME) == ["days_since_last_order", "days_since_first_order", "recency_over_tenure"]


def test_only_the_listed_columns_in_table_order():
    allowed = ("recency_over_tenure", "days_since_last_order")
    assert feature_names_of(FRAME, allowed) == ["days_since_last_order", "recency_over_tenure"]


def test_a_listed_column_the_table_lacks_is_named():
    with pytest.raises(ValueError, match=r"model_features.*'recency_over_tenur'"):
        feature_names_of(FRAME, ("recency_over_tenur",))


def test_a_label_cannot_be_smuggled_in_as_a_feature():
    with pytest.raises(ValueError, match="label_churn"):
        feature_names_of(FRAME, ("label_churn",))
