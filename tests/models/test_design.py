"""The design menu's rule: ties go to the simpler design, blends must not cost calibration."""

from __future__ import annotations

import math

from models.design import (
    CHURN_MENU,
    VALUE_MENU,
    available,
    candidate_columns,
    is_tenure_relative,
    pick_blend_weight,
    pick_index,
)

NAMES = ["days_since_last_order", "revenue_sum_365d", "revenue_sum_lifetime", "order_count_lifetime",
         "recency_over_tenure", "revenue_per_month_lifetime", "days_late_max_90d", "attr_region",
         "btyd_p_alive", "btyd_p_no_order_90d"]


def test_the_best_metric_wins_when_it_is_clearly_better():
    assert pick_index([0.80, 0.83, 0.81]) == 1


def test_candidates_within_the_tolerance_tie_and_the_earliest_wins():
    # 0.8305 is within 0.001 of the best (0.8310): the earlier, simpler design is kept.
    assert pick_index([0.8305, 0.8310, 0.70]) == 0
    assert pick_index([0.8280, 0.8310, 0.8305]) == 1


def test_missing_metrics_never_win():
    assert pick_index([float("nan"), 0.7, None]) == 1
    assert pick_index([float("nan")]) == 0


def test_a_blend_that_costs_calibration_is_not_taken_even_if_it_ranks_better():
    weights = (0.0, 0.25, 0.5)
    # 0.5 ranks best but its Brier is 0.004 worse than the unblended model's: only 0 and 0.25 are allowed.
    assert pick_blend_weight(weights, [0.80, 0.81, 0.82], [0.150, 0.1505, 0.154]) == 1
    assert pick_blend_weight(weights, [0.80, 0.8005, 0.80], [0.15, 0.15, 0.15]) == 0
    assert pick_blend_weight(weights, [0.70, 0.72, 0.75]) == 2  # value: Gini alone


def test_candidate_columns_by_variant():
    all_menu = {c.features: c for c in CHURN_MENU}
    assert candidate_columns(all_menu["all"], NAMES) == [n for n in NAMES if not n.startswith("btyd_")]
    assert candidate_columns(all_menu["all_btyd"], NAMES) == NAMES
    relative = candidate_columns(all_menu["tenure_relative"], NAMES)
    # Lifetime totals and long windows grow with tenure; recency, rates and other families do not.
    assert relative == ["days_since_last_order", "recency_over_tenure", "revenue_per_month_lifetime",
                        "days_late_max_90d", "attr_region"]
    assert not is_tenure_relative("revenue_sum_lifetime") and is_tenure_relative("revenue_sum_next_180d_year_ago")


def test_candidates_without_their_columns_are_left_out_of_the_menu():
    plain = [n for n in NAMES if not n.startswith("btyd_")]
    assert [c.name for c in available(VALUE_MENU, plain)] == ["all", "tenure_relative"]
    assert [c.name for c in available(VALUE_MENU, ["revenue_sum_365d", "days_since_last_order"])] == ["all"]
    assert math.isclose(len(available(CHURN_MENU, NAMES)), len(CHURN_MENU))
