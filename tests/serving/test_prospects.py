"""A run's prospects scored and explained, and the potential ones joining the account grades."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.params import ChurnParams
from models.prospect import ProspectModel
from serving.prospects import (
    PROSPECT_SCHEMA,
    PotentialRule,
    ProspectRules,
    potential_threshold,
    prospect_table,
    with_potential_prospects,
)
from serving.scorecard import ACCOUNT_GRADES_SCHEMA
from tests.models.test_prospect_model import NAMES, converters, prospects


@pytest.fixture(scope="module")
def model() -> ProspectModel:
    train, valid = prospects(3000, 1), prospects(1500, 2)
    X_conv, revenue = converters(120, 80)
    return ProspectModel(ChurnParams(num_threads=1)).fit(
        train[NAMES], train["label_first_order"], valid[NAMES], valid["label_first_order"], NAMES, X_conv, revenue)


def test_the_potential_threshold_is_an_amount_or_the_top_share_of_the_run():
    values = np.arange(1.0, 11.0)
    assert potential_threshold(values, PotentialRule(top_share=0.2)) == 9.0  # 9 and 10: the top fifth
    assert potential_threshold(values, PotentialRule(min_expected_value=4.5, top_share=0.2)) == 4.5
    assert potential_threshold(np.array([]), PotentialRule()) == float("inf")


def test_prospects_are_scored_best_first_with_reasons_in_both_languages(model):
    frame = prospects(40, 5).drop(columns="label_first_order")
    table = prospect_table(frame, model, "3", ProspectRules())
    assert table.schema == PROSPECT_SCHEMA and table.num_rows == 40
    out = table.to_pandas()
    assert out["expected_value"].is_monotonic_decreasing
    assert (out["prospect_model_version"] == "3").all()
    expected = model.predict(frame.set_index("customer_id").loc[out["customer_id"], NAMES])
    assert np.allclose(out["p_first_order"], expected["p_first_order"])
    assert out["potential"].sum() == 8  # the top fifth of 40
    best = out.iloc[0]
    reasons = json.loads(best["reasons"])
    raising = [r for r in reasons if r["direction"] == "raises"]
    assert raising and raising[0]["rank"] == 1
    assert best["reason_text_en"].startswith("more likely to buy: ")
    assert best["reason_text_zh"].startswith("更可能下单：")
    # The attribute and contact wording of the feature catalog, not column names.
    texts = " ".join(out["reason_text_en"])
    assert "channel: direct_sales" in texts and "sales visit" in texts
    assert "渠道：direct_sales" in " ".join(out["reason_text_zh"])


def test_potential_prospects_join_the_account_grades_as_potential(model):
    frame = prospects(10, 6).drop(columns="label_first_order")
    table = prospect_table(frame, model, "1", ProspectRules(potential=PotentialRule(top_share=0.2)))
    graded = pa.Table.from_pandas(pd.DataFrame({
        "customer_id": ["a"], "value_score": [80.0], "loyalty_score": [70.0], "growth_score": [60.0],
        "credit_score": [90.0], "cost_to_serve_score": [50.0], "weighted_score": [72.0], "account_grade": ["key"],
        "sentence_en": ["key account"], "sentence_zh": ["重点客户"]}), schema=ACCOUNT_GRADES_SCHEMA, preserve_index=False)
    out = with_potential_prospects(graded, table, ProspectRules(potential=PotentialRule(top_share=0.2))).to_pandas()
    top = table.to_pandas().head(2)
    assert out["customer_id"].tolist() == ["a", *top["customer_id"]]
    added = out.iloc[1:]
    assert (added["account_grade"] == "potential").all() and added["weighted_score"].isna().all()
    pct = round(100 * top["p_first_order"].iloc[0])
    assert added["sentence_en"].iloc[0].startswith(f"potential account (prospect, no order yet): {pct}% chance of a first "
                                                   "order within 90 days")
    assert added["sentence_zh"].iloc[0].startswith(f"潜在客户（尚未下单）：90天内首单概率{pct}%")


def test_a_run_without_prospects_has_an_empty_table_and_no_potential_rows(model):
    empty = prospect_table(prospects(0, 7).drop(columns="label_first_order"), model, "1", ProspectRules())
    assert empty.num_rows == 0 and empty.schema == PROSPECT_SCHEMA
    assert with_potential_prospects(None, empty, ProspectRules()).num_rows == 0
