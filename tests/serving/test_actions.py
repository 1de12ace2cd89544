"""The action list on a small example whose gains are computed by hand: order, budget, owners, reasons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from serving.actions import (
    NO_OWNER,
    ActionPolicy,
    action_list,
    actions_of_run,
    churn_raising_sentences,
    owner_summary,
    sensitivity,
    sensitivity_of_run,
)
from serving.reason_encoding import reason_columns

# save rate 0.2, offer cost 10: gain = p_churn x 0.2 x clv - 10
#   A  0.5 x 0.2 x 1000 - 10 = 100 - 10 =  90
#   B  0.9 x 0.2 x  300 - 10 =  54 - 10 =  44
#   C  0.1 x 0.2 x 2000 - 10 =  40 - 10 =  30
#   D  0.2 x 0.2 x  200 - 10 =   8 - 10 =  -2  (left out: negative)
#   E  0.5 x 0.2 x  100 - 10 =  10 - 10 =   0  (left out: nothing gained)
#   F  unscored (new customer, no p_churn)     (left out)
#   G  0.8 x 0.2 x -500 - 10 = -80 - 10 = -90  (left out: negative value)
#   H  0.3 x 0.2 x  500 - 10 =  30 - 10 =  20
#   I  0.6 x 0.2 x  250 - 10 =  30 - 10 =  20  (ties with H: H first by customer id)
# Highest first: A 90, B 44, C 30, H 20, I 20. The highest CLV (C) is third, the highest p_churn (B) second.
P_CHURN = {"A": 0.5, "B": 0.9, "C": 0.1, "D": 0.2, "E": 0.5, "F": math.nan, "G": 0.8, "H": 0.3, "I": 0.6}
CLV = {"A": 1000, "B": 300, "C": 2000, "D": 200, "E": 100, "F": math.nan, "G": -500, "H": 500, "I": 250}
POLICY = ActionPolicy(save_rate=0.2, offer_cost=10, budget=50, budget_kind="count")


def scores(order: list[str] | None = None) -> pd.DataFrame:
    ids = order or list(P_CHURN)
    return pd.DataFrame({
        "customer_id": ids,
        "p_churn": [P_CHURN[i] for i in ids],
        "clv": [float(CLV[i]) for i in ids],
        "value_tier": "A",
        "segment": ["new" if i == "F" else "at_risk" for i in ids],
        "reasons": None,
        "reason_text_en": [f"Raises churn risk: reason of {i}." for i in ids],
        "reason_text_zh": [f"推高流失风险：{i}的原因。" for i in ids],
    })


def test_customers_are_ranked_by_expected_net_gain_and_only_positive_gains_kept():
    listed = action_list(scores(), POLICY)
    assert listed["customer_id"].tolist() == ["A", "B", "C", "H", "I"]
    assert listed["expected_gain"].tolist() == pytest.approx([90, 44, 30, 20, 20])
    assert listed["rank"].tolist() == [1, 2, 3, 4, 5]
    assert listed["cumulative_offer_cost"].tolist() == pytest.approx([10, 20, 30, 40, 50])
    assert listed["cumulative_gain"].tolist() == pytest.approx([90, 134, 164, 184, 204])


def test_the_order_does_not_depend_on_the_order_of_the_score_table():
    shuffled = ["I", "G", "C", "E", "A", "H", "F", "D", "B"]
    assert action_list(scores(shuffled), POLICY)["customer_id"].tolist() == ["A", "B", "C", "H", "I"]


def test_a_count_budget_keeps_the_first_customers_of_the_list():
    listed = action_list(scores(), POLICY.model_copy(update={"budget": 3}))
    assert listed["customer_id"].tolist() == ["A", "B", "C"]


def test_a_money_budget_keeps_offers_whose_summed_cost_fits():
    # offers cost 10 each: 35 pays for three (30), not four (40); 50 pays exactly for all five
    three = action_list(scores(), POLICY.model_copy(update={"budget": 35, "budget_kind": "money"}))
    assert three["customer_id"].tolist() == ["A", "B", "C"]
    assert three["cumulative_offer_cost"].iloc[-1] == pytest.approx(30)
    every = action_list(scores(), POLICY.model_copy(update={"budget": 50, "budget_kind": "money"}))
    assert every["customer_id"].tolist() == ["A", "B", "C", "H", "I"]


def test_a_higher_offer_cost_drops_customers_whose_saved_value_no_longer_pays_for_it():
    # cost 35: A 100-35=65, B 54-35=19, C 40-35=5, H and I 30-35<0
    listed = action_list(scores(), POLICY.model_copy(update={"offer_cost": 35}))
    assert listed["customer_id"].tolist() == ["A", "B", "C"]
    assert listed["expected_gain"].tolist() == pytest.approx([65, 19, 5])


def test_owners_group_the_list_by_total_gain_each_in_list_order():
    owners = pd.Series({"A": "ann", "B": "bob", "C": "ann", "H": None, "D": "dan"})  # I is in no owner's book
    listed = action_list(scores(), POLICY, owners=owners)
    # ann 90 + 30 = 120, (no owner) H 20 + I 20 = 40, bob 44: ann, bob, then no owner
    assert listed["owner"].tolist() == ["ann", "ann", "bob", NO_OWNER, NO_OWNER]
    assert listed["customer_id"].tolist() == ["A", "C", "B", "H", "I"]
    assert listed["owner_rank"].tolist() == [1, 2, 1, 1, 2]
    assert listed["rank"].tolist() == [1, 3, 2, 4, 5]  # the place in the whole list is kept
    summary = owner_summary(listed)
    assert summary["owner"].tolist() == ["ann", "bob", NO_OWNER]
    assert summary["customers"].tolist() == [2, 1, 2]
    assert summary["expected_gain"].tolist() == pytest.approx([120, 44, 40])


def test_the_budget_is_spent_on_the_whole_list_before_grouping_by_owner():
    owners = pd.Series({"A": "ann", "B": "bob", "C": "ann", "H": "bob", "I": "bob"})
    listed = action_list(scores(), POLICY.model_copy(update={"budget": 2}), owners=owners)
    assert sorted(listed["customer_id"]) == ["A", "B"]


def test_nothing_to_gain_gives_an_empty_list_with_its_columns():
    listed = action_list(scores(), POLICY.model_copy(update={"offer_cost": 1000}))
    assert listed.empty
    assert "expected_gain" in listed and "reason_to_call_en" in listed


def real_reason_texts() -> pd.DataFrame:
    """Reason texts as scoring writes them (serving.reason_encoding), for two customers."""
    def reason(row, score, direction, rank, feature, en, zh):
        return dict(row=row, score=score, direction=direction, rank=rank, feature=feature, family="x", value="1",
                    contribution=0.1, sentence_en=en, sentence_zh=zh)

    churn = pd.DataFrame([
        reason(0, "churn", "raises", 1, "days_since_last_order", "no order for 120 days", "已120天未下单"),
        reason(0, "churn", "raises", 2, "complaints_90d", "3 complaints in 90 days", "近90天投诉3次"),
        reason(0, "churn", "raises", 3, "dso_days", "pays 35 days late", "付款平均逾期35天"),
        reason(0, "churn", "lowers", 1, "days_since_first_order", "customer for 5 years", "合作5年"),
        reason(1, "churn", "lowers", 1, "days_since_first_order", "customer for 2 years", "合作2年"),
    ])
    value = pd.DataFrame([reason(0, "value", "raises", 1, "revenue_sum_365d", "spent 12,400 last year", "近一年消费12,400")])
    return reason_columns([churn, value], 2, k=3)


def test_each_customer_carries_the_reasons_raising_churn_in_both_languages():
    texts = real_reason_texts()
    table = pd.DataFrame({"customer_id": ["X", "Y"], "p_churn": [0.6, 0.5], "clv": [1000.0, 900.0],
                          "value_tier": "A", "segment": "at_risk", **{c: texts[c] for c in texts}})
    listed = action_list(table, POLICY.model_copy(update={"reasons": 2}))
    x, y = listed.iloc[0], listed.iloc[1]
    assert x["reason_to_call_en"] == "no order for 120 days; 3 complaints in 90 days"  # top two, not the lowering one
    assert x["reason_to_call_zh"] == "已120天未下单；近90天投诉3次"
    assert x["churn_reason_features"] == "days_since_last_order, complaints_90d"
    assert y["reason_to_call_en"] == "" and y["reason_to_call_zh"] == ""  # nothing raises Y's risk


def test_explanations_name_the_churn_raising_features_in_rank_order():
    explanations = pd.DataFrame({
        "customer_id": ["A", "A", "A", "B"], "score": ["churn", "churn", "value", "churn"],
        "direction": ["raises", "raises", "raises", "lowers"], "rank": [2, 1, 1, 1],
        "feature": ["complaints_90d", "days_since_last_order", "revenue_sum_365d", "days_since_first_order"],
    })
    listed = action_list(scores(), POLICY, explanations=explanations).set_index("customer_id")
    assert listed.at["A", "churn_reason_features"] == "days_since_last_order, complaints_90d"
    assert listed.at["B", "churn_reason_features"] == ""


def test_the_churn_part_ends_at_the_next_header_even_when_it_is_the_only_group():
    assert churn_raising_sentences("Raises churn risk: a; b.", 0, 3) == "a; b"
    assert churn_raising_sentences("Raises value: x. Raises churn risk: a.", 0, 3) == "a"
    assert churn_raising_sentences("推高流失风险：甲；乙。提升价值：丙。", 1, 1) == "甲"
    assert churn_raising_sentences(None, 0, 3) == ""


def test_sensitivity_shows_gain_and_list_size_growing_with_the_save_rate():
    view = sensitivity(scores(), POLICY, save_rates=[0.1, 0.2, 0.5])
    # save rate 0.1: A 50-10=40, B 27-10=17, C 20-10=10, H 15-10=5, I 15-10=5, E 5-10<0: 5 customers, 77
    # save rate 0.2: the list above: 5 customers, 204
    # save rate 0.5: A 240, B 125, C 90, H 65, I 65, E 15, D 10: 7 customers, 610
    assert view["customers"].tolist() == [5, 5, 7]
    assert view["total_expected_gain"].tolist() == pytest.approx([77, 204, 610])
    assert view["total_offer_cost"].tolist() == pytest.approx([50, 50, 70])


def test_sensitivity_holds_the_budget():
    view = sensitivity(scores(), POLICY.model_copy(update={"budget": 2}), save_rates=[0.1, 0.5])
    assert view["customers"].tolist() == [2, 2]
    assert view["total_expected_gain"].tolist() == pytest.approx([40 + 17, 240 + 125])
    # what a larger budget could add: 0.1: C 10, H 5, I 5; 0.5: C 90, H 65, I 65, E 15, D 10
    assert view["customers_with_gain"].tolist() == [5, 7]
    assert view["gain_beyond_budget"].tolist() == pytest.approx([20, 245])


@pytest.mark.parametrize("settings", [{"save_rate": 0}, {"save_rate": 1.5}, {"offer_cost": -1}, {"budget": 0},
                                      {"budget": 2.5, "budget_kind": "count"}, {"budget_kind": "calls"}])
def test_a_policy_outside_its_range_is_refused(settings):
    with pytest.raises(ValidationError):
        ActionPolicy(**settings)


def test_a_money_budget_may_be_a_fraction():
    assert ActionPolicy(budget=2.5, budget_kind="money").budget == 2.5


def test_gains_are_the_formula_on_every_row():
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"customer_id": [f"c{i}" for i in range(200)], "p_churn": rng.uniform(0, 1, 200),
                          "clv": rng.normal(300, 400, 200), "value_tier": "A", "segment": "regular"})
    listed = action_list(table, POLICY.model_copy(update={"budget": 200})).set_index("customer_id")
    expected = (table["p_churn"] * 0.2 * table["clv"] - 10).set_axis(table["customer_id"])
    positive = expected[expected > 1e-6].sort_values(ascending=False)
    assert listed.index.tolist() == positive.index.tolist()
    assert listed["expected_gain"].to_numpy() == pytest.approx(positive.to_numpy(), abs=1e-6)


def test_a_published_run_gives_the_same_list_and_sensitivity_as_its_tables(tmp_path):
    import datetime as dt

    from serving.scored_run import ScoredRun
    from serving.store import RunMetadata, ScoreStore
    from tests.serving.test_store import make_scores

    table = make_scores(9).assign(p_churn=[P_CHURN[i] for i in P_CHURN], clv=[float(CLV[i]) for i in CLV])
    store = ScoreStore(tmp_path)
    store.publish(RunMetadata(run_id="r1", as_of=dt.date(2026, 9, 30)), ScoredRun.from_tables(table))
    store.publish(RunMetadata(run_id="r2", as_of=dt.date(2026, 10, 31)), ScoredRun.from_tables(table.assign(p_churn=0.0)))
    # the latest run has no churn risk, so nothing to gain; the first has the hand-checked list
    assert actions_of_run(store, POLICY).empty
    first = actions_of_run(store, POLICY, run_id="r1")
    assert first["customer_id"].tolist() == ["c00000", "c00001", "c00002", "c00007", "c00008"]
    assert first["expected_gain"].tolist() == pytest.approx([90, 44, 30, 20, 20])
    assert first["reason_to_call_en"].tolist() == ["no order for 120 days"] * 5
    view = sensitivity_of_run(store, POLICY, run_id="r1", save_rates=[0.2])
    assert view["total_expected_gain"].tolist() == pytest.approx([204])


def test_the_save_rate_changes_how_far_down_the_list_offers_pay_never_the_order():
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"customer_id": [f"c{i:03d}" for i in range(300)], "p_churn": rng.uniform(0, 1, 300),
                          "clv": rng.lognormal(6, 1, 300), "value_tier": "A", "segment": "regular"})
    lists = [action_list(table, POLICY.model_copy(update={"save_rate": r, "budget": 300}))["customer_id"].tolist()
             for r in (0.05, 0.2, 0.5)]
    assert len(lists[0]) < len(lists[1]) < len(lists[2])
    assert lists[1][: len(lists[0])] == lists[0] and lists[2][: len(lists[1])] == lists[1]


@pytest.mark.parametrize("budget,kind", [(40, "count"), (1000, "count"), (900, "money"), (10**6, "money")])
def test_sensitivity_totals_are_those_of_the_list_at_each_save_rate(budget, kind):
    rng = np.random.default_rng(8)
    table = pd.DataFrame({"customer_id": [f"c{i:03d}" for i in range(400)], "p_churn": rng.uniform(0, 1, 400),
                          "clv": rng.normal(200, 300, 400).round(), "value_tier": "A", "segment": "regular"})
    policy = POLICY.model_copy(update={"budget": budget, "budget_kind": kind, "offer_cost": 7})
    view = sensitivity(table, policy, save_rates=[0.05, 0.3, 1.0])
    for row in view.itertuples():
        listed = action_list(table, policy.model_copy(update={"save_rate": row.save_rate}))
        unlimited = action_list(table, policy.model_copy(update={"save_rate": row.save_rate, "budget": 10**9}))
        assert row.customers == len(listed)
        assert row.total_expected_gain == pytest.approx(listed["expected_gain"].sum())
        assert row.total_offer_cost == pytest.approx(listed["offer_cost"].sum())
        assert row.total_expected_saved_value == pytest.approx(listed["expected_saved_value"].sum())
        assert row.customers_with_gain == len(unlimited)
        assert row.gain_beyond_budget == pytest.approx(unlimited["expected_gain"].sum() - listed["expected_gain"].sum())
