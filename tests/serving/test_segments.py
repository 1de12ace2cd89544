"""Value tiers and strategy classes on hand-made customers with hand-checked answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from serving.segments import (
    SEGMENTS,
    SegmentRules,
    assign_segments,
    segment_summary,
    top_share,
    value_tiers,
)

SEGMENTS_YAML = Path(__file__).resolve().parents[2] / "configs" / "segments.yaml"

RULES = SegmentRules(most_valuable_top_share=0.2, at_risk_top_share=0.3, growth_top_share=0.5)


def _customers() -> pd.DataFrame:
    rows = [
        # id, clv, p_churn, net_value, current_value, expected_revenue, is_new, trailing_net_value
        ("c01", 5000, 0.10, 3000, 4000, 4500, False, 2500),  # top clv -> most_valuable
        ("c02", 4000, 0.80, 2000, 6000, 3000, False, 1800),  # top current value, leaving -> at_risk (before most_valuable)
        ("c03", 3000, 0.20, 1500, 500, 2000, False, 150),  # 4x current, clv top 30% -> growth
        ("c04", 2500, 0.30, -100, 100, 1000, False, -50),  # would be growth, but net value < 0, now and predicted, comes first
        ("c05", 2000, 0.90, 500, 0, 800, True, np.nan),  # no transaction before as_of -> new
        ("c06", 1000, 0.60, 700, 3000, 900, False, 900),  # current value rank 3 of 10 (top 30%) and p 0.6 -> at_risk
        ("c07", 800, 0.40, 400, 900, 900, False, 270),  # nothing special -> regular
        ("c08", 500, 0.70, 300, 200, 300, False, 60),  # likely to churn but not valuable -> regular
        ("c09", 0, 0.20, 0, 100, 0, False, 30),
        ("c10", -200, 0.50, -300, 50, 100, False, 20),  # predicted negative, but it made money: no evidence -> regular
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "clv", "p_churn", "net_value", "current_value", "expected_revenue", "is_new",
                                     "trailing_net_value"])
    df["expected_margin"] = df["expected_revenue"] * 0.3
    df["cost_to_serve"] = 10.0
    return df


def test_hand_checked_segments_and_reasons():
    out = assign_segments(_customers(), RULES).set_index("customer_id")
    assert out["segment"].to_dict() == {
        "c01": "most_valuable", "c02": "at_risk", "c03": "growth", "c04": "negative_value", "c05": "new",
        "c06": "at_risk", "c07": "regular", "c08": "regular", "c09": "regular", "c10": "regular",
    }  # fmt: skip
    assert out.loc["c01", "segment_reason"] == "clv 5,000 in top 10% (<= 20%)"
    assert out.loc["c02", "segment_reason"] == "current_value 6,000 in top 10% (<= 30%); p_churn 0.80 >= 0.5"
    assert out.loc["c03", "segment_reason"] == (
        "expected_revenue 2,000 vs current_value 500 (4.0x >= 1.5x); clv 3,000 in top 30% (<= 50%)"
    )
    assert out.loc["c04", "segment_reason"] == "net_value -100 < 0; trailing_net_value -50 < 0"
    assert out.loc["c05", "segment_reason"] == "no transaction before as_of: not scored"
    assert out.loc["c07", "segment_reason"].startswith("no other class matched: clv 800 in top 70%")
    assert out.loc["c02", "segment_label_zh"] == "流失预警客户"
    assert out.loc["c01", "segment_label_zh"] == "最有价值客户"
    assert out.loc["c07", "segment_label_en"] == "regular"


def test_order_of_evaluation_is_the_configured_one():
    rules = RULES.model_copy(update={"order": ("most_valuable", "at_risk", "new", "negative_value", "growth", "regular")})
    out = assign_segments(_customers(), rules).set_index("customer_id")
    assert out.loc["c02", "segment"] == "most_valuable"  # at_risk first by default, most_valuable first here
    assert out.loc["c05", "segment"] == "new"


def test_value_tiers_follow_cumulative_share_of_value():
    out = assign_segments(_customers(), RULES).set_index("customer_id")
    # c05 has no history: no tier, and its value is not counted. Positive clv of the others 16,800;
    # share before each customer: 0, .30, .54, .71 | .86, .92 | .97
    assert out["value_tier"].fillna("none").to_dict() == {
        "c01": "A", "c02": "A", "c03": "A", "c04": "A", "c05": "none",
        "c06": "B", "c07": "B", "c08": "C", "c09": "C", "c10": "C",
    }  # fmt: skip
    # shares before: 50 -> 0, 30 -> .5, 10 -> .8 (not < .8: B), first 5 -> .9 (B), second 5 -> .95 (C)
    assert value_tiers(np.array([5, 50, 10, 30, 5])).tolist() == ["B", "A", "B", "A", "C"]


def test_tenure_below_threshold_counts_as_new():
    df = _customers()
    df["tenure_days"] = [400, 400, 30, 400, 0, 400, 400, 400, 400, 400]
    out = assign_segments(df, RULES).set_index("customer_id")
    assert out.loc["c03", "segment"] == "new"
    assert out.loc["c03", "segment_reason"] == "tenure 30 days < 90"


def test_every_customer_gets_exactly_one_segment_and_tier():
    rng = np.random.default_rng(5)
    n = 2000
    df = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "clv": rng.normal(1000, 2000, n),
            "p_churn": rng.uniform(0, 1, n),
            "net_value": rng.normal(300, 500, n),
            "current_value": rng.gamma(1.0, 1000.0, n),
            "expected_revenue": rng.gamma(1.0, 1000.0, n),
            "expected_margin": 0.0,
            "cost_to_serve": 0.0,
            "is_new": rng.uniform(size=n) < 0.05,
            "trailing_net_value": rng.normal(300, 500, n),
        }
    )
    df.loc[::50, "clv"] = np.nan
    out = assign_segments(df, SegmentRules())
    assert len(out) == n
    assert out["segment"].isin(SEGMENTS).all()
    assert out.loc[~out["is_new"], "value_tier"].isin(["A", "B", "C"]).all() and out.loc[out["is_new"], "value_tier"].isna().all()
    assert out["segment_reason"].str.len().gt(0).all()
    assert (out["segment"] == "most_valuable").mean() <= 0.05


def test_summary_shares_sum_to_one_and_count_customers():
    scored = assign_segments(_customers(), RULES)
    summary = segment_summary(scored, RULES)
    for group_by in ("segment", "value_tier"):
        part = summary[summary["group_by"] == group_by]
        for column in ("share_customers", "share_current_value", "share_predicted_value"):
            assert part[column].sum() == pytest.approx(1.0)
        assert part["customers"].sum() == 10
    seg = summary[summary["group_by"] == "segment"].set_index("group")
    assert seg.loc["at_risk", "customers"] == 2
    assert seg.loc["at_risk", "share_current_value"] == pytest.approx(9000 / 14850)
    assert seg.loc["at_risk", "mean_p_churn"] == pytest.approx(0.7)
    assert seg.loc["most_valuable", "label_zh"] == "最有价值客户"
    tiers = summary[summary["group_by"] == "value_tier"].set_index("group")
    # A: c01-c04 (c05, new, has no tier and forms the group "none"); all predicted value 18,600
    assert tiers.loc["A", "share_predicted_value"] == pytest.approx(14500 / 18600)
    assert tiers.loc["none", "customers"] == 1


def test_segments_reasons_and_summary_do_not_depend_on_the_order_of_the_rows():
    # Scoring streams customers in no fixed order: sums, tiers and texts must come out the same.
    rng = np.random.default_rng(9)
    n = 3000
    df = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "clv": rng.gamma(0.5, 3000.0, n) * rng.uniform(0.9, 1.1, n),
            "p_churn": rng.uniform(0, 1, n),
            "net_value": rng.choice([-0.0, 0.0, -0.3, 0.2, -250.5, 1234.5678], n),
            "current_value": rng.gamma(1.0, 1000.0, n) / 7.0,
            "expected_revenue": rng.gamma(1.0, 1000.0, n) / 3.0,
            "expected_margin": 0.0,
            "cost_to_serve": 0.0,
            "is_new": rng.uniform(size=n) < 0.05,
            "trailing_net_value": rng.choice([-0.0, 0.0, -0.3, 0.2, -250.5, 1234.5678], n),
        }
    )
    df.loc[df["is_new"], ["clv", "p_churn", "trailing_net_value"]] = np.nan  # new customers have no model output
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)

    def by_customer(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values("customer_id").reset_index(drop=True)

    segmented, segmented_shuffled = assign_segments(df, RULES), assign_segments(shuffled, RULES)
    pd.testing.assert_frame_equal(by_customer(segmented), by_customer(segmented_shuffled), check_exact=True)
    summary = segment_summary(segmented, RULES)
    pd.testing.assert_frame_equal(summary, segment_summary(segmented_shuffled, RULES), check_exact=True)
    assert summary[["current_value", "predicted_value", "share_predicted_value"]].notna().all().all()
    assert summary.loc[summary["group"] == "new", "mean_p_churn"].isna().all()
    reasons = segmented["segment_reason"]
    assert not reasons.str.contains("net_value -0 ").any()
    assert reasons.str.contains("net_value -0.3 < 0").any()


def test_default_yaml_is_valid_and_matches_the_defaults():
    rules = SegmentRules.model_validate(yaml.safe_load(SEGMENTS_YAML.read_text(encoding="utf-8")))
    assert rules == SegmentRules()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"order": ["new", "regular", "growth"]}, "must end with 'regular'"),
        ({"tier_a_cumulative_share": 0.96}, "must be below"),
        ({"p_churn_threshold": 0.5}, "Extra inputs are not permitted"),
        ({"order": ["most_valuable", "vip", "regular"]}, "order"),
    ],
)
def test_bad_rules_are_rejected_with_the_key(change, message):
    with pytest.raises(ValidationError, match=message):
        SegmentRules.model_validate(change)


def test_missing_input_column_is_named():
    with pytest.raises(ValueError, match="current_value"):
        assign_segments(_customers().drop(columns=["current_value"]), RULES)


def test_equal_values_are_tiered_by_customer_id_whatever_the_row_order():
    # four customers of 25 each, shares before them 0, .25, .5, .75: the cuts fall inside the tie, so ids decide
    ids = np.array(["d", "b", "a", "c"])
    tiers = dict(zip(ids, value_tiers(np.full(4, 25.0), 0.5, 0.7, tiebreak=ids), strict=True))
    assert tiers == {"a": "A", "b": "A", "c": "B", "d": "C"}
    shuffled = ids[[2, 0, 3, 1]]
    again = dict(zip(shuffled, value_tiers(np.full(4, 25.0), 0.5, 0.7, tiebreak=shuffled), strict=True))
    assert again == tiers


def test_segment_reasons_do_not_depend_on_which_rows_chose_a_class():
    df = pd.concat([_customers()] * 3, ignore_index=True)
    df["customer_id"] = [f"c{i:03d}" for i in range(len(df))]
    out = assign_segments(df, RULES)
    # every row's reason is the one its class gives when the whole frame is formatted at once
    regular = out[out["segment"] == "regular"]
    assert regular["segment_reason"].str.startswith("no other class matched: clv ").all()
    reason = out.set_index("customer_id")["segment_reason"]
    # three customers of clv 5,000: ranked one by one, in customer_id order, each reason giving its own rank
    assert [reason["c000"], reason["c010"], reason["c020"]] == [
        "clv 5,000 in top 3.3% (<= 20%)", "clv 5,000 in top 6.7% (<= 20%)", "clv 5,000 in top 10% (<= 20%)"]
    # classes whose reasons hold no rank read the same for equal customers
    same = out[out["segment"].isin(["negative_value", "new"])]
    assert same.groupby(same["customer_id"].str[1:].astype(int) % 10)["segment_reason"].nunique().max() == 1


def _population(current_value: np.ndarray, **columns) -> pd.DataFrame:
    """Scored customers c000, c001, ... with the given current values, all likely to churn, nothing else special."""
    n = len(current_value)
    frame = pd.DataFrame({
        "customer_id": [f"c{i:03d}" for i in range(n)], "current_value": np.asarray(current_value, dtype=float),
        "p_churn": 0.9, "clv": 10.0, "net_value": 10.0, "expected_revenue": 0.0, "expected_margin": 3.0,
        "cost_to_serve": 0.0, "is_new": False, "trailing_net_value": 10.0,
    })  # fmt: skip
    for name, values in columns.items():
        frame[name] = values
    return frame


def test_at_risk_takes_at_most_its_share_and_no_customer_worth_nothing_now():
    # 100 customers likely to churn, 80 of them with no revenue in the last horizon: the rule
    # "current value in the top 20%" must not let the 80 tied zeros in
    current = np.zeros(100)
    current[80:] = np.arange(1, 21) * 10.0
    out = assign_segments(_population(current), SegmentRules()).set_index("customer_id")
    at_risk = out.index[out["segment"] == "at_risk"]
    assert sorted(at_risk) == [f"c{i:03d}" for i in range(80, 100)]
    assert (out.loc[out["current_value"] == 0, "segment"] != "at_risk").all()
    # fewer positive values than the share: only those; more: at most 20 of the 100
    current[80:90] = 0.0
    out = assign_segments(_population(current), SegmentRules())
    assert (out["segment"] == "at_risk").sum() == 10
    out = assign_segments(_population(np.arange(100, 0, -1) * 1.0), SegmentRules()).set_index("customer_id")
    assert sorted(out.index[out["segment"] == "at_risk"]) == [f"c{i:03d}" for i in range(20)]


def test_equal_values_at_the_cut_are_split_by_customer_id_whatever_the_row_order():
    # 30 customers with the same positive current value, 70 with none: top 20% is 20 customers, the lowest ids
    current = np.where(np.arange(100) % 10 < 3, 50.0, 0.0)
    frame = _population(current)
    out = assign_segments(frame, SegmentRules()).set_index("customer_id")
    tied = [f"c{i:03d}" for i in range(100) if i % 10 < 3]
    assert sorted(out.index[out["segment"] == "at_risk"]) == tied[:20]
    assert out.loc[tied[19], "segment_reason"] == "current_value 50 in top 20% (<= 20%); p_churn 0.90 >= 0.5"
    assert out.loc[tied[20], "segment_reason"].startswith("no other class matched")
    shuffled = assign_segments(frame.sample(frac=1.0, random_state=4), SegmentRules()).set_index("customer_id")
    pd.testing.assert_series_equal(shuffled.loc[out.index, "segment_reason"], out["segment_reason"])


def test_most_valuable_and_growth_count_customers_and_skip_worthless_ones():
    # everyone has the same clv: the top 5% is five customers, not all hundred
    frame = _population(np.zeros(100), p_churn=0.1)
    out = assign_segments(frame, SegmentRules()).set_index("customer_id")
    assert sorted(out.index[out["segment"] == "most_valuable"]) == ["c000", "c001", "c002", "c003", "c004"]
    # growth: expected revenue 10x the current value for all, clv in the top 30% -> the next 25 by id
    frame["expected_revenue"], frame["current_value"] = 100.0, 10.0
    out = assign_segments(frame, SegmentRules()).set_index("customer_id")
    assert (out["segment"] == "growth").sum() == 25 and out.loc["c005", "segment"] == "growth"
    assert out.loc["c005", "segment_reason"] == (
        "expected_revenue 100 vs current_value 10 (10.0x >= 1.5x); clv 10 in top 6% (<= 30%)")
    # nobody is worth anything: no one is most valuable or growth, however tied
    frame["clv"] = 0.0
    out = assign_segments(frame, SegmentRules())
    assert set(out["segment"]) == {"regular"}


def test_growth_from_zero_current_value_only_when_asked():
    # no revenue in the last horizon passes any ratio: by default that is not growth (mostly lapsed customers)
    frame = _population(np.zeros(100), p_churn=0.1, expected_revenue=100.0)
    out = assign_segments(frame, SegmentRules()).set_index("customer_id")
    assert (out["segment"] == "growth").sum() == 0
    out = assign_segments(frame, SegmentRules(growth_from_zero=True)).set_index("customer_id")
    assert (out["segment"] == "growth").sum() == 25
    assert out.loc["c005", "segment_reason"] == (
        "expected_revenue 100 vs current_value 0 (up from zero); clv 10 in top 6% (<= 30%)")


def test_top_share_ranks_positive_values_one_by_one_and_ties_the_rest():
    shares = top_share(np.array([5.0, 0.0, 5.0, -1.0, 0.0, np.nan, 7.0, 5.0]), np.array(list("hgfedcba")))
    # 7 first; the three 5s by id (b, f, h); the zeros share rank 5, -1 is 7th, missing last
    assert shares.tolist() == [4 / 8, 5 / 8, 3 / 8, 7 / 8, 5 / 8, 8 / 8, 1 / 8, 2 / 8]


def test_negative_value_needs_the_trailing_horizon_to_lose_money_too():
    frame = _population(np.full(4, 100.0), p_churn=0.1)
    frame["net_value"] = [-50.0, -50.0, -50.0, 20.0]
    frame["trailing_net_value"] = [-5.0, 40.0, np.nan, -80.0]
    out = assign_segments(frame, SegmentRules()).set_index("customer_id")
    # only c000 loses money both in its prediction and in the last horizon
    assert out["segment"].eq("negative_value").tolist() == [True, False, False, False]
    assert out.loc["c000", "segment_reason"] == "net_value -50 < 0; trailing_net_value -5 < 0"
    prediction_only = SegmentRules(negative_value_evidence="prediction_only")
    out = assign_segments(frame.drop(columns=["trailing_net_value"]), prediction_only).set_index("customer_id")
    assert out["segment"].eq("negative_value").tolist() == [True, True, True, False]
    assert out.loc["c001", "segment_reason"] == "net_value -50 < 0"
    with pytest.raises(ValueError, match="trailing_net_value"):
        assign_segments(frame.drop(columns=["trailing_net_value"]), SegmentRules())


def test_a_customer_without_history_has_no_tier_and_does_not_move_the_cut_offs():
    # Five scored customers cut as value_tiers([50, 30, 10, 5, 5]) -> A, A, B, B, C (hand-computed above);
    # a prospect is given a large value on purpose: it must neither take a tier nor push the others down.
    df = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e", "p"], "clv": [50.0, 30.0, 10.0, 5.0, 5.0, 1000.0],
        "p_churn": [0.1] * 5 + [np.nan], "net_value": [1.0] * 5 + [np.nan], "current_value": [1.0] * 5 + [0.0],
        "expected_revenue": [1.0] * 5 + [np.nan], "expected_margin": 0.0, "cost_to_serve": 0.0,
        "is_new": [False] * 5 + [True], "trailing_net_value": [1.0] * 5 + [np.nan],
    })  # fmt: skip
    out = assign_segments(df, SegmentRules()).set_index("customer_id")
    assert out["value_tier"].fillna("none").to_dict() == {"a": "A", "b": "A", "c": "B", "d": "B", "e": "C", "p": "none"}
    assert out.loc["p", "segment"] == "new"
    tiers = segment_summary(out.reset_index(), SegmentRules()).query("group_by == 'value_tier'").set_index("group")
    assert tiers["customers"].to_dict() == {"A": 2, "B": 2, "C": 1, "none": 1}
