"""The key-account scorecard on five customers, each rule worked out by hand, and its point in time.

Default weights: value 0.30, loyalty 0.20, growth 0.15, credit 0.20, cost to serve 0.15;
thresholds: key from 70, regular from 40. A measure's score is 100 x (rank - 1) / (n - 1)
among the n customers that have it (ties share their mean rank; lower-is-better measures
are 100 minus that).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from features.build import FeatureSpec, build_features
from features.tables import tables_from_frames
from features.training_set import build_training_set
from models.churn import ChurnModel
from models.params import ChurnParams, ValueParams
from models.value import ValueModel
from serving.score_run import score_run
from serving.scorecard import (
    ACCOUNT_GRADES_SCHEMA,
    DIMENSIONS,
    DimensionWeights,
    GradeThresholds,
    ScorecardRules,
    account_grades,
    grades,
    percentile_scores,
    scorecard_features,
    scorecard_inputs,
)
from serving.scoring import ScoringModels
from serving.settings import ScoringSettings
from tests.features.conftest import random_frames

RULES = ScorecardRules()


def numbers() -> pd.DataFrame:
    """The score table's numbers of five customers and one prospect.

    value (clv 5000, 4000, 3000, 200, -100):            a 100, c 75, b 50, d 25, e 0
    loyalty, the mean of three measures:
      tenure_days 200, 1000, 600, 800, 400:            a 0, b 100, c 50, d 75, e 25
      order_days_lifetime 5, 40, 20, 10, 12:           a 0, d 25, e 50, c 75, b 100
      repurchase_rate = (order days - 1) / tenure months (days / 30.4375):
        a 4/6.571 = 0.609, b 39/32.854 = 1.187, c 19/19.713 = 0.964, d 9/26.283 = 0.342, e 11/13.142 = 0.837
                                                        d 0, a 25, e 50, c 75, b 100
      loyalty: a (0+0+25)/3 = 8.333, b 100, c (50+75+75)/3 = 66.667, d (75+25+0)/3 = 33.333, e (25+50+50)/3 = 41.667
    growth = expected_revenue / current_value: a 1500/1000 = 1.5, b 1300/1000 = 1.3, c 1000/500 = 2.0,
      d no current revenue (left out), e 120/100 = 1.2; n = 4: e 0, b 33.333, a 66.667, c 100
    cost to serve = cost_to_serve / expected_revenue, lower is better: a 0.10, c 0.12, d 0.20, b 0.30, e 0.50
                                                        a 100, c 75, d 50, b 25, e 0
    """
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e", "p"],
        "clv": [5000.0, 3000.0, 4000.0, 200.0, -100.0, np.nan],
        "tenure_days": [200.0, 1000.0, 600.0, 800.0, 400.0, np.nan],
        "current_value": [1000.0, 1000.0, 500.0, 0.0, 100.0, 0.0],
        "expected_revenue": [1500.0, 1300.0, 1000.0, 300.0, 120.0, np.nan],
        "cost_to_serve": [150.0, 390.0, 120.0, 60.0, 60.0, np.nan],
        "is_new": [False, False, False, False, False, True],
    })  # fmt: skip


def features() -> pd.DataFrame:
    """Feature columns as of the run's date, named as scorecard_features names them.

    credit: c has no invoices (left out); n = 4 on both measures:
      collection_rate 1.0, 0.9, -, 0.5, 0.9: d 0, b and e share ranks 2 and 3 (50 each), a 100
      invoice_on_time_rate 0.8, 0.6, -, 0.2, 0.6: the same order, so the same scores
      credit: a 100, b 50, c -, d 0, e 50
    """
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "order_days_lifetime": [5.0, 40.0, 20.0, 10.0, 12.0],
        "collection_rate": [1.0, 0.9, np.nan, 0.5, 0.9],
        "invoice_on_time_rate": [0.8, 0.6, np.nan, 0.2, 0.6],
    })  # fmt: skip


@pytest.fixture()
def card() -> pd.DataFrame:
    return account_grades(scorecard_inputs(numbers(), features()), RULES).set_index("customer_id")


def test_percentile_scores_rank_evenly_share_ties_and_keep_missing_missing():
    # present: 5 (rank 1), 10 (2), 20 and 20 (ranks 3 and 4: 3.5 each), 40 (5); n = 5, so 100 x (rank - 1) / 4
    scores = percentile_scores(pd.Series([10.0, 20.0, 20.0, 40.0, np.nan, 5.0]))
    assert scores.tolist()[:4] == [25.0, 62.5, 62.5, 100.0] and math.isnan(scores[4]) and scores[5] == 0.0
    assert percentile_scores(pd.Series([10.0, 40.0, 5.0]), higher_is_better=False).tolist() == [50.0, 0.0, 100.0]
    assert percentile_scores(pd.Series([np.nan, 7.0])).tolist()[1] == 50.0  # alone: nothing to compare with


def test_each_dimension_is_scored_by_hand(card):
    expected = {
        "value_score": [100, 50, 75, 25, 0],
        "loyalty_score": [25 / 3, 100, 200 / 3, 100 / 3, 125 / 3],
        "growth_score": [200 / 3, 100 / 3, 100, np.nan, 0],
        "credit_score": [100, 50, np.nan, 0, 50],
        "cost_to_serve_score": [100, 25, 75, 50, 0],
    }
    for column, values in expected.items():
        assert card.loc[list("abcde"), column].tolist() == pytest.approx(values, nan_ok=True), column


def test_customers_without_a_transaction_are_not_graded(card):
    assert "p" not in card.index and len(card) == 5


def test_weighted_scores_renormalise_over_the_dimensions_with_data(card):
    # a: 0.3 x 100 + 0.2 x 8.333 + 0.15 x 66.667 + 0.2 x 100 + 0.15 x 100 = 30 + 1.667 + 10 + 20 + 15 = 76.667
    # b: 15 + 20 + 5 + 10 + 3.75 = 53.75
    # c has no credit: (22.5 + 13.333 + 15 + 11.25) / (1 - 0.2) = 62.083 / 0.8 = 77.604 (62.1 would be regular)
    # d has no growth: (7.5 + 6.667 + 0 + 7.5) / 0.85 = 25.490
    # e: 0 + 8.333 + 0 + 10 + 0 = 18.333
    assert card["weighted_score"].tolist() == pytest.approx([76.6667, 53.75, 77.6042, 25.4902, 18.3333], abs=1e-4)
    assert card["account_grade"].tolist() == ["key", "regular", "key", "potential", "potential"]


def test_only_the_weights_ratios_count():
    doubled = ScorecardRules(weights=DimensionWeights(**{d: 2 * getattr(RULES.weights, d) for d in DIMENSIONS}))
    twice = account_grades(scorecard_inputs(numbers(), features()), doubled)
    once = account_grades(scorecard_inputs(numbers(), features()), RULES)
    pd.testing.assert_frame_equal(twice, once)


def test_a_dimension_of_weight_zero_neither_counts_nor_is_named():
    # value off: a = (1.667 + 10 + 20 + 15) / 0.7 = 66.667 -> regular
    rules = ScorecardRules(weights=DimensionWeights(value=0.0))
    card = account_grades(scorecard_inputs(numbers(), features()), rules).set_index("customer_id")
    assert card.loc["a", "weighted_score"] == pytest.approx(46.6667 / 0.7, abs=1e-4)
    assert card.loc["a", "account_grade"] == "regular"
    assert "value" not in card.loc["a", "sentence_en"]


def test_a_customer_without_data_on_any_weighted_dimension_is_not_graded():
    # credit alone counts; c has no invoices
    rules = ScorecardRules(weights=DimensionWeights(value=0, loyalty=0, growth=0, credit=1, cost_to_serve=0))
    card = account_grades(scorecard_inputs(numbers(), features()), rules).set_index("customer_id")
    assert pd.isna(card.loc["c", "account_grade"]) and math.isnan(card.loc["c", "weighted_score"])
    assert card.loc["c", "sentence_en"] == "not graded: none of the weighted dimensions has data for this customer."
    assert card.loc["a", "account_grade"] == "key" and card.loc["a", "weighted_score"] == 100


def test_grades_follow_the_thresholds_inclusively():
    weighted = pd.Series([70.0, 69.99, 40.0, 39.99, np.nan])
    graded = grades(weighted, GradeThresholds(key=70, regular=40))
    assert graded[:4].tolist() == ["key", "regular", "regular", "potential"] and pd.isna(graded[4])  # no score, no grade


def test_the_sentence_names_the_dimensions_that_decided_the_grade(card):
    # the score shown is cut to whole points (76.7 shows 76: never rounded up to a threshold it missed)
    # a key: weight x score lifts value 30, credit 20, cost to serve 15, growth 10, loyalty 1.7
    assert card.loc["a", "sentence_en"] == "key account (score 76 of 100; key from 70): decided by value 100 and credit 100."
    assert card.loc["a", "sentence_zh"] == "重点客户（综合得分 76/100；70 分起为重点）：主要因为价值 100、信用 100。"
    # b regular: lifts most loyalty (0.2 x 100 = 20); holds back most value (0.3 x (100 - 50) = 15)
    assert card.loc["b", "sentence_en"] == ("regular account (score 53 of 100; regular from 40, key from 70): "
                                            "lifted by loyalty 100, held back by value 50.")
    # c key thanks to the renormalisation, and says credit was left out
    assert card.loc["c", "sentence_en"] == ("key account (score 77 of 100; key from 70): decided by value 75 and growth 100. "
                                            "Left out for lack of data: credit (the other weights count in full).")
    assert card.loc["c", "sentence_zh"].endswith("无数据未计入：信用（权重按其余维度重新分配）。")
    # d potential: holds back value 0.3 x 75 = 22.5, credit 0.2 x 100 = 20, loyalty 13.3, cost to serve 7.5
    assert card.loc["d", "sentence_en"].startswith("potential account (score 25 of 100; regular from 40): "
                                                   "held back by value 25 and credit 0.")
    # e potential: value 30, then growth and cost to serve both 0.15 x 100 = 15: the tie goes to growth, listed first
    assert card.loc["e", "sentence_en"] == ("potential account (score 18 of 100; regular from 40): "
                                            "held back by value 0 and growth 0.")
    assert card.loc["e", "sentence_zh"] == "潜在客户（综合得分 18/100；40 分起为普通）：主要受价值 0、成长性 0 拖累。"


def test_p_pay_late_joins_credit_when_a_run_has_it():
    # p_pay_late 0.5, 0.1, -, 0.9, 0.3, lower is better: b 100, e 66.667, a 33.333, d 0
    # credit a = (100 + 100 + 33.333) / 3 = 77.778; b = (50 + 50 + 100) / 3 = 66.667
    with_risk = numbers().assign(p_pay_late=[0.5, 0.1, np.nan, 0.9, 0.3, np.nan])
    card = account_grades(scorecard_inputs(with_risk, features()), RULES).set_index("customer_id")
    assert card.loc[["a", "b"], "credit_score"].tolist() == pytest.approx([700 / 9, 200 / 3])


def test_a_run_without_invoices_leaves_credit_out_for_everyone():
    card = account_grades(scorecard_inputs(numbers(), features()[["customer_id", "order_days_lifetime"]]), RULES)
    assert card["credit_score"].isna().all()
    # d lacks growth as well: "Left out for lack of data: growth, credit"
    assert card["sentence_en"].str.contains(r"Left out for lack of data: (?:growth, )?credit \(", regex=True).all()


def test_scorecard_features_take_the_longest_payment_window_and_customers_with_an_order():
    chunk = pd.DataFrame({"customer_id": ["a", "p"], "days_since_first_order": [10.0, np.nan],
                          "order_days_lifetime": [3.0, np.nan], "collection_rate_90d": [0.1, np.nan],
                          "collection_rate_365d": [0.9, np.nan], "invoice_on_time_rate_365d": [0.5, np.nan]})
    taken = scorecard_features(chunk)
    assert taken.to_dict("records") == [{"customer_id": "a", "order_days_lifetime": 3.0, "collection_rate": 0.9,
                                         "invoice_on_time_rate": 0.5}]


# ---------------------------------------------------------------- point in time, through score_run

AS_OF = datetime(2024, 12, 31)
SPEC = FeatureSpec(windows_days=(90, 365))


def _tables(frames: dict[str, pd.DataFrame]):
    return tables_from_frames({k: frames[k] for k in ("transactions", "invoices")}, ibis.duckdb.connect())[1]


@pytest.fixture(scope="module")
def worlds():
    """The same history twice; the second also knows a large order and a payment made after the as-of date."""
    frames = random_frames(40, seed=5, start=datetime(2022, 1, 1), end=AS_OF)
    later = {k: v.copy() for k, v in frames.items()}
    tx = later["transactions"]
    big = tx.iloc[[0]].assign(order_id="late", ts=AS_OF + timedelta(days=3), amount=90_000.0, margin=30_000.0)
    at_as_of = tx.iloc[[1]].assign(order_id="at", ts=AS_OF, amount=50_000.0, margin=10_000.0)
    later["transactions"] = pd.concat([tx, big, at_as_of], ignore_index=True)
    invoices = later["invoices"]
    unpaid = invoices.index[invoices["paid_at"].isna() & (invoices["due_at"] < AS_OF)][:3]
    invoices.loc[unpaid, "paid_at"] = AS_OF + timedelta(days=10)
    assert len(unpaid) == 3
    return _tables(frames), _tables(later)


def _models(tables) -> ScoringModels:
    training = build_training_set(tables, AS_OF, spec=SPEC, n_snapshots=3, step_days=90, min_history_days=180)
    names = [c for c in training.columns if c not in ("customer_id", "as_of", "is_validation") and not c.startswith("label_")]
    train, valid = training[~training["is_validation"]], training[training["is_validation"]]
    churn = ChurnModel(ChurnParams(n_estimators=10)).fit(train, train["label_churn"], valid, valid["label_churn"], names)
    value = ValueModel(ValueParams(n_estimators=10, interval_n_estimators=10, revenue_model="direct")).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        cost_to_serve=train["label_cost_to_serve"], cost_to_serve_val=valid["label_cost_to_serve"],
    )
    return ScoringModels(churn, value, "1", "1")


def test_an_order_or_payment_after_the_as_of_date_changes_no_grade(worlds, tmp_path):
    before, after = worlds
    models = _models(before)
    settings = ScoringSettings(value_horizon_days=365, annual_discount_rate=0.1)
    cards = []
    for i, tables in enumerate((before, after)):
        chunks = build_features(tables, AS_OF, SPEC)
        run = score_run([chunks.iloc[:15], chunks.iloc[15:]], models, settings, tmp_path / str(i), run_id="r",
                        as_of=AS_OF.date())
        cards.append(run.tables["account_grades"].to_pandas())
    assert len(cards[0]) == 40 and cards[0]["credit_score"].notna().any()
    assert set(cards[0]["account_grade"]) <= {"key", "regular", "potential"} and cards[0]["account_grade"].nunique() > 1
    pd.testing.assert_frame_equal(cards[0], cards[1])


def test_the_run_carries_its_grades_as_its_only_further_table_and_its_timings_apart(worlds, tmp_path):
    before, _ = worlds
    run = score_run([build_features(before, AS_OF, SPEC)], _models(before),
                    ScoringSettings(value_horizon_days=365, annual_discount_rate=0.1), tmp_path, run_id="r", as_of=AS_OF.date())
    assert list(run.tables) == ["account_grades"] and "predict" in run.timings
    assert run.tables["account_grades"].schema == ACCOUNT_GRADES_SCHEMA
