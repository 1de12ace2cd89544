"""Reason sentences an account manager reads, and the top-k reasons picked from SHAP contributions."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from features.families.wording import humanise
from serving.reason_encoding import reason_columns
from serving.reason_selection import fact_groups, top_k_contributions
from serving.reasons import reasons_for_chunk, reasons_table
from serving.sentences import sentence


@pytest.mark.parametrize(
    ("feature", "value", "context", "en", "zh"),
    [
        ("revenue_change_pct_90d_vs_prev_90d", -62.0, None,
         "spend in the last 90 days fell 62% against the 90 days before", "近90天消费额比前90天下降62%"),
        ("revenue_change_pct_30d_vs_prev_30d", 40.0, None,
         "spend in the last 30 days rose 40% against the 30 days before", "近30天消费额比前30天上升40%"),
        ("revenue_change_pct_90d_vs_year_ago", -10.0, None,
         "spend in the last 90 days fell 10% against the same period a year earlier", "近90天消费额比去年同期下降10%"),
        ("days_since_last_order", 120, 3.14,
         "no order for 120 days, 3.1x the usual gap between orders", "已120天未下单，是平时下单间隔的3.1倍"),
        ("days_since_last_order", 1, None, "no order for 1 day", "已1天未下单"),
        ("order_days_lifetime", 7, None, "ordered on 7 different days in total", "累计在7个不同日期下单"),
        ("repeat_revenue_mean_per_order_day_lifetime", 2123.4, None,
         "average spend of 2,120 per repeat order day", "复购日平均消费额2,120"),
        ("days_since_first_order", 840, None,
         "customer for 2.3 years (first order 840 days ago)", "合作2.3年（首单于840天前）"),
        ("order_count_90d", 3, None, "3 orders in the last 90 days", "近90天下单3次"),
        ("order_count_lifetime", 1, None, "1 order in total", "累计下单1次"),
        ("revenue_sum_90d", 12437.3, None, "spend of 12,400 in the last 90 days", "近90天消费额12,400"),
        ("distinct_categories_180d", 4, None, "bought from 4 categories in the last 180 days", "近180天购买了4个品类"),
        ("return_share_90d", 0.153, None, "returns were 15% of spend in the last 90 days", "近90天退货额占消费额15%"),
        ("discount_share_365d", 0.12, None, "discounts were 12% of spend in the last 365 days", "近365天折扣占消费额12%"),
        ("invoice_on_time_rate_365d", 0.75, None,
         "paid 75% of invoices on time in the last 365 days", "近365天按时付款的发票占75%"),
        ("days_late_mean_90d", 12.4, None, "paid 12 days late on average in the last 90 days", "近90天平均逾期12天付款"),
        ("overdue_open_amount", 5000, None, "overdue unpaid invoices of 5,000", "逾期未付发票金额5,000"),
        ("complaint_count_90d", 2, None, "2 complaints in the last 90 days", "近90天投诉2次"),
        ("complaint_change_90d_vs_prev_90d", -1, None,
         "1 fewer complaint in the last 90 days than in the 90 days before", "近90天投诉比前90天少1次"),
        ("return_amount_90d", -1200, None, "returns worth 1,200 in the last 90 days", "近90天退货金额1,200"),
        ("revenue_sum_next_90d_year_ago", 1234.5, None,
         "spend of 1,230 in the same 90 days last year (the season ahead)", "去年同期（未来90天对应的时段）消费额1,230"),
        ("order_days_next_180d_year_ago", 0, None,
         "no orders in the same 180 days last year (the season ahead)", "去年同期（未来180天对应的时段）无订单"),
        ("revenue_share_next_90d_year_ago", 0.353, None,
         "35% of the last 365 days' spend fell in the same 90 days last year (the season ahead)",
         "近365天消费额的35%落在去年同期（未来90天对应的时段）"),
        ("season_share_next_90d", 0.28, None,
         "all customers spent 28% of the last 365 days' sales in the same 90 days last year (the season ahead)",
         "全部客户近365天消费额的28%落在去年同期（未来90天对应的时段）"),
        ("attr_industry", "retail", None, "industry: retail", "行业：retail"),
        ("attr_region", None, None, "region: unknown", "地区：未知"),
    ],
)  # fmt: skip
def test_sentence_states_the_fact_in_both_languages(feature, value, context, en, zh):
    assert sentence(feature, value, context=context) == (en, zh)


FAMILY_EXAMPLES = [
    "days_since_signup", "revenue_mean_per_order_90d", "margin_sum_lifetime", "margin_mean_per_order_30d",
    "order_gap_mean_days", "order_gap_std_days", "recency_over_gap_mean", "revenue_monthly_slope_12m",
    "distinct_products_90d", "new_category_count_365d", "return_count_30d", "discount_amount_90d",
    "discounted_order_count_90d", "days_late_max_180d", "days_late_change_90d_vs_prev_90d",
    "open_invoice_amount", "collection_rate_90d", "dso_days", "ticket_count_30d", "service_cost_90d",
    "interaction_count_90d", "cost_to_serve_365d", "revenue_sum_next_180d_year_ago", "order_days_next_90d_year_ago",
    "revenue_share_next_180d_year_ago", "season_share_next_180d",
]  # fmt: skip


@pytest.mark.parametrize("feature", FAMILY_EXAMPLES)
def test_every_catalogue_family_reads_as_words_not_codes(feature):
    en, zh = sentence(feature, 7.0)
    assert feature not in en and feature not in zh
    assert "_" not in en and "_" not in zh
    assert "7" in en and "7" in zh
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)  # the Chinese sentence has Chinese words


SEASON_FEATURES = ["revenue_sum_next_90d_year_ago", "order_days_next_90d_year_ago", "revenue_share_next_90d_year_ago",
                   "season_share_next_90d"]


@pytest.mark.parametrize("feature", SEASON_FEATURES)
@pytest.mark.parametrize("value", [0.0, 1.0, 0.42, -3.0, float("nan")])
def test_season_sentences_have_their_own_template_and_chinese_without_latin_letters(feature, value):
    en, zh = sentence(feature, value)
    assert "season ahead" in en and "去年同期" in zh  # not the fallback that prints the column name
    assert not re.search(r"[A-Za-z]", zh)


def test_season_windows_of_one_measure_are_one_fact():
    # the customer's spend and order days in last year's window are one fact; everyone's share another; spend now a third
    names = ("revenue_sum_next_90d_year_ago", "revenue_sum_next_180d_year_ago", "revenue_sum_90d",
             "season_share_next_90d", "season_share_next_180d", "order_days_next_90d_year_ago")
    assert [cols.tolist() for cols in fact_groups(names)] == [[0, 1, 5], [3, 4]]


def test_missing_values_say_no_data_instead_of_nan():
    en, zh = sentence("complaint_count_90d", float("nan"))
    assert en == "complaints in the last 90 days: no data"
    assert zh == "近90天投诉次数：无数据"
    assert sentence("days_since_last_order", None) == ("no orders before the scoring date", "评分日前无订单")


def test_unknown_feature_falls_back_to_readable_name_and_value():
    en, zh = sentence("loyalty_points_90d", 1234.5)
    assert en == "loyalty points (90 days): 1,230"
    assert zh == "loyalty points (90 days)：1,230"
    assert humanise("net_promoter_score") == "net promoter score"


def _hand_made_chunk():
    names = ["revenue_sum_90d", "order_count_90d", "complaint_count_90d", "attr_industry"]
    X = pd.DataFrame(
        {
            "revenue_sum_90d": [1000.0, 2500.0, 300.0],
            "order_count_90d": [2.0, 0.0, 5.0],
            "complaint_count_90d": [0.0, 3.0, 1.0],
            "attr_industry": pd.Categorical(["retail", None, "retail"]),
        }
    )
    contrib = np.array(
        [
            # revenue, orders, complaints, industry, bias
            [0.5, -0.2, 0.1, 0.0, -1.0],
            [-0.3, 0.9, 0.4, -0.05, -1.0],
            [0.0, 0.0, 0.0, 0.0, -1.0],  # nothing pushes either way
        ]
    )
    return names, X, contrib


def test_top_k_selection_on_a_hand_made_matrix():
    _, _, contrib = _hand_made_chunk()
    raise_idx, raise_val, lower_idx, lower_val = top_k_contributions(contrib[:, :-1], 2)
    assert raise_idx.tolist() == [[0, 2], [1, 2], [-1, -1]]
    assert raise_val.tolist() == [[0.5, 0.1], [0.9, 0.4], [0.0, 0.0]]
    assert lower_idx.tolist() == [[1, -1], [0, 3], [-1, -1]]
    assert lower_val.tolist() == [[-0.2, 0.0], [-0.3, -0.05], [0.0, 0.0]]


def test_reasons_for_chunk_gives_data_and_sentences_per_row():
    names, X, contrib = _hand_made_chunk()
    reasons = reasons_for_chunk(contrib, X, names, score="churn", k=2)
    row1 = reasons[reasons["row"] == 1]
    assert row1[["direction", "rank", "feature"]].values.tolist() == [
        ["raises", 1, "order_count_90d"],
        ["raises", 2, "complaint_count_90d"],
        ["lowers", 1, "revenue_sum_90d"],
        ["lowers", 2, "attr_industry"],
    ]
    assert row1["contribution"].tolist() == [0.9, 0.4, -0.3, -0.05]
    assert row1["value"].tolist()[:3] == ["0", "3", "2500"]
    assert pd.isna(row1["value"].tolist()[3])  # missing attribute: no value text
    assert row1["sentence_en"].tolist() == [
        "no orders in the last 90 days",
        "3 complaints in the last 90 days",
        "spend of 2,500 in the last 90 days",
        "industry: unknown",
    ]
    assert row1["sentence_zh"].tolist()[0] == "近90天无订单"
    assert set(reasons["score"]) == {"churn"}
    assert 2 not in set(reasons["row"])  # all-zero contributions give no reasons


def test_reasons_for_chunk_rejects_contributions_without_bias_column():
    names, X, contrib = _hand_made_chunk()
    with pytest.raises(ValueError, match="bias"):
        reasons_for_chunk(contrib[:, :-1], X, names, score="churn")


def test_recency_sentence_uses_the_gap_ratio_of_the_same_row():
    names = ["days_since_last_order"]
    X = pd.DataFrame({"days_since_last_order": [120.0, 10.0], "recency_over_gap_mean": [3.1, np.nan]})
    reasons = reasons_for_chunk(np.array([[1.0, 0.0], [1.0, 0.0]]), X, names, score="churn", k=1)
    assert reasons["sentence_en"].tolist() == [
        "no order for 120 days, 3.1x the usual gap between orders",
        "no order for 10 days",
    ]


def test_reason_columns_json_and_text_per_row():
    names, X, contrib = _hand_made_chunk()
    churn = reasons_table(contrib, X, names, score="churn", k=2)
    value = reasons_table(-contrib, X, names, score="value", k=2)
    cols = reason_columns([churn, value], 3)
    assert len(cols) == 3
    parsed = json.loads(cols.loc[1, "reasons"])
    assert [r["feature"] for r in parsed["churn"]["raises"]] == ["order_count_90d", "complaint_count_90d"]
    assert [r["feature"] for r in parsed["value"]["raises"]] == ["revenue_sum_90d", "attr_industry"]
    assert parsed["churn"]["lowers"][1] == {
        "rank": 2, "feature": "attr_industry", "family": "attributes", "value": None, "contribution": -0.05,
    }  # fmt: skip
    assert cols.loc[1, "reason_text_en"].startswith(
        "Raises churn risk: no orders in the last 90 days; 3 complaints in the last 90 days. Lowers churn risk: "
    )
    assert cols.loc[1, "reason_text_zh"].startswith("推高流失风险：近90天无订单；近90天投诉3次。降低流失风险：")
    # a row without any reason still gets valid JSON and empty texts (no row is lost)
    assert json.loads(cols.loc[2, "reasons"]) == {"churn": {"raises": [], "lowers": []}, "value": {"raises": [], "lowers": []}}
    assert cols.loc[2, "reason_text_en"] == ""


def test_json_escapes_quotes_in_attribute_values():
    X = pd.DataFrame({"attr_company": ['Acme "Best" \\ Co']})
    table = reasons_table(np.array([[1.0, 0.0]]), X, ["attr_company"], score="value", k=1)
    parsed = json.loads(reason_columns(table, 1).loc[0, "reasons"])
    assert parsed["value"]["raises"][0]["value"] == 'Acme "Best" \\ Co'


def test_many_rows_match_one_by_one_sentences():
    rng = np.random.default_rng(3)
    names = ["revenue_sum_90d", "return_share_90d", "days_late_mean_90d"]
    X = pd.DataFrame({n: rng.gamma(2.0, 300.0, 500) for n in names})
    X.loc[::7, "return_share_90d"] = np.nan
    contrib = rng.normal(size=(500, 4))
    reasons = reasons_for_chunk(contrib, X, names, score="value", k=3)
    for row in reasons.sample(40, random_state=1).itertuples():
        assert (row.sentence_en, row.sentence_zh) == sentence(row.feature, X.loc[row.row, row.feature])


def test_json_holds_numbers_and_keys_and_each_sentence_is_stored_once_per_language():
    names, X, contrib = _hand_made_chunk()
    churn = reasons_table(contrib, X, names, score="churn", k=2)
    cols = reason_columns([churn], 3)
    parsed = json.loads(cols.loc[1, "reasons"])
    assert parsed["churn"]["raises"][0] == {"rank": 1, "value": "0", "contribution": 0.9, "feature": "order_count_90d", "family": "volume"}
    assert "sentence" not in cols.loc[1, "reasons"] and "近90天" not in cols.loc[1, "reasons"]
    # the sentence is recomputed from feature and value, and it is the one the text holds
    en, zh = sentence("order_count_90d", float(parsed["churn"]["raises"][0]["value"]))
    assert en in cols.loc[1, "reason_text_en"] and zh in cols.loc[1, "reason_text_zh"]


def test_reason_columns_same_from_pandas_frames_and_arrow_tables():
    names, X, contrib = _hand_made_chunk()
    frames = pd.concat(
        [reasons_for_chunk(contrib, X, names, score="churn", k=2), reasons_for_chunk(-contrib, X, names, score="value", k=2)],
        ignore_index=True,
    )
    tables = [reasons_table(contrib, X, names, score="churn", k=2), reasons_table(-contrib, X, names, score="value", k=2)]
    pd.testing.assert_frame_equal(reason_columns(frames, 3, k=2), reason_columns(tables, 3, k=2))


def test_reason_columns_read_reasons_in_any_row_order():
    names, X, contrib = _hand_made_chunk()
    churn = reasons_table(contrib, X, names, score="churn", k=2)
    shuffled = churn.take(np.random.default_rng(0).permutation(churn.num_rows))
    pd.testing.assert_frame_equal(reason_columns([shuffled], 3, k=2), reason_columns([churn], 3, k=2))


def test_sentences_rendered_in_an_earlier_chunk_are_the_same_as_fresh_ones():
    from serving.sentences import sentences_for_feature

    first = sentences_for_feature("revenue_sum_90d", np.array([0.0, 12437.3, np.nan, -0.3]))
    # a later chunk: same values (served from what was rendered), and -0.0, which is zero
    later = sentences_for_feature("revenue_sum_90d", np.array([-0.0, 12437.3, np.nan, 0.0, -0.3]))
    assert [first[0][1], first[0][2], first[0][3]] == [later[0][1], later[0][2], later[0][4]]
    assert first[0][0] == later[0][0] == later[0][3] == sentence("revenue_sum_90d", -0.0)[0] == "spend of 0 in the last 90 days"
    assert later[0][4] == "spend of -0.3 in the last 90 days"


def test_a_sentence_does_not_depend_on_whether_zero_or_minus_zero_comes_first():
    from serving.sentences import sentences_for_feature

    for values in ([-0.0, 0.0, 5.0], [0.0, -0.0, 5.0]):
        en, zh = sentences_for_feature("margin_sum_90d", np.array(values))
        assert en[0] == en[1] == "gross margin of 0 in the last 90 days"
        assert zh[0] == zh[1]


def test_distinct_facts_give_one_reason_per_measure_the_window_that_pushes_hardest():
    names = ["revenue_sum_90d", "revenue_sum_180d", "revenue_sum_365d", "order_count_90d", "days_since_last_order", "attr_region", "attr_industry"]
    X = pd.DataFrame([[100.0, 300.0, 900.0, 2.0, 40.0, "north", "retail"]], columns=names)
    # spend raises the score over all three windows, most over 180 days; both attributes raise it too
    contrib = np.array([[0.30, 0.50, 0.40, -0.20, -0.60, 0.10, 0.05, 1.0]])
    plain = reasons_table(contrib, X, names, score="value", k=3).to_pandas()
    distinct = reasons_table(contrib, X, names, score="value", k=3, distinct_facts=True).to_pandas()
    raises = lambda t: t.loc[t["direction"] == "raises", "feature"].tolist()  # noqa: E731
    assert raises(plain) == ["revenue_sum_180d", "revenue_sum_365d", "revenue_sum_90d"]
    assert raises(distinct) == ["revenue_sum_180d", "attr_region", "attr_industry"]  # two attributes are two facts
    assert distinct.loc[distinct["direction"] == "lowers", "feature"].tolist() == ["days_since_last_order", "order_count_90d"]
    assert distinct["contribution"].tolist() == [0.50, 0.10, 0.05, -0.60, -0.20]  # the contributions themselves, unchanged


def test_a_measure_can_raise_over_one_window_and_lower_over_another():
    names = ["revenue_sum_90d", "revenue_sum_365d"]
    X = pd.DataFrame([[10.0, 900.0]], columns=names)
    table = reasons_table(np.array([[-0.4, 0.7, 0.0]]), X, names, score="value", k=3, distinct_facts=True).to_pandas()
    assert list(zip(table["direction"], table["feature"], strict=True)) == [("raises", "revenue_sum_365d"), ("lowers", "revenue_sum_90d")]


def test_fact_groups_join_windows_and_lifetime_but_not_other_measures():
    from serving.reason_selection import fact_groups

    names = ("revenue_sum_30d", "revenue_sum_90d", "revenue_sum_lifetime", "order_count_30d", "order_count_90d", "attr_a", "attr_b",
             "revenue_change_pct_90d_vs_prev_90d", "revenue_change_pct_30d_vs_prev_30d")
    assert sorted(sorted(g.tolist()) for g in fact_groups(names)) == [[0, 1, 2], [3, 4], [7, 8]]


def test_strongest_per_fact_equals_a_row_by_row_reference_with_ties():
    from serving.reason_selection import strongest_per_fact

    rng = np.random.default_rng(7)
    # rounded to whole numbers, so many rows tie inside a fact; zeros are no reason either way
    contrib = np.round(rng.normal(scale=1.5, size=(400, 9)))
    groups = (np.array([0, 3, 5]), np.array([1, 2]), np.array([6, 7, 8]))
    expected = contrib.copy()
    for row in range(len(contrib)):
        for cols in groups:
            values = contrib[row, cols]
            up, down = int(np.argmax(values)), int(np.argmin(values))  # first of equals
            for j, col in enumerate(cols):
                keep = (j == up and values[j] > 0) or (j == down and values[j] < 0)
                expected[row, col] = values[j] if keep else 0.0
    result = strongest_per_fact(contrib, groups)
    np.testing.assert_array_equal(result, expected)
    assert result.flags.c_contiguous and (result[:, 4] == contrib[:, 4]).all()  # a feature in no fact is untouched


def test_every_display_kind_of_the_families_has_its_rounding():
    from features.families.wording import DISPLAY_KINDS
    from serving.sentences import _KEYS

    assert set(DISPLAY_KINDS) - {"text"} == set(_KEYS)


def _sides(table: pd.DataFrame) -> dict[str, list[str]]:
    return {d: table.loc[table["direction"] == d, "feature"].tolist() for d in ("raises", "lowers")}


def test_one_fact_in_other_words_or_nested_windows_is_one_reason_per_score_and_direction():
    # Days since the last order, that as a multiple of the usual gap and as a share of tenure are one fact
    # (time since the last order); order counts in nested windows and the usual gap another (order frequency);
    # complaints and their change a third. The strongest of each fact is kept, the next fact takes the freed place.
    names = ["days_since_last_order", "recency_over_gap_mean", "recency_over_tenure", "order_count_90d", "order_count_365d",
             "order_gap_mean_days", "complaint_count_90d", "complaint_change_90d_vs_prev_90d", "revenue_sum_90d"]
    X = pd.DataFrame([[667.0, 9.2, 0.6, 0.0, 1.0, 72.0, 2.0, 1.0, 0.0]], columns=names)
    contrib = np.array([[0.50, 0.60, 0.20, 0.30, 0.35, 0.10, 0.25, 0.28, -0.40, -1.0]])
    plain = reasons_table(contrib, X, names, score="churn", k=3).to_pandas()
    distinct = reasons_table(contrib, X, names, score="churn", k=3, distinct_facts=True).to_pandas()
    assert _sides(plain)["raises"] == ["recency_over_gap_mean", "days_since_last_order", "order_count_365d"]
    assert _sides(distinct)["raises"] == ["recency_over_gap_mean", "order_count_365d", "complaint_change_90d_vs_prev_90d"]
    assert _sides(distinct)["lowers"] == ["revenue_sum_90d"]
    texts = distinct["sentence_en"].tolist()
    assert sum("usual gap" in t for t in texts) == 1, texts  # "9.2x the usual gap" is said once


def test_a_fact_may_raise_one_score_side_and_lower_the_other_once_each():
    names = ["days_since_last_order", "recency_over_gap_mean", "recency_over_tenure"]
    X = pd.DataFrame([[30.0, 0.5, 0.1]], columns=names)
    table = reasons_table(np.array([[0.2, -0.3, 0.4, 0.0]]), X, names, score="value", k=3, distinct_facts=True).to_pandas()
    assert _sides(table) == {"raises": ["recency_over_tenure"], "lowers": ["recency_over_gap_mean"]}


def test_the_btyd_horizons_of_one_probability_are_one_fact():
    names = ("btyd_p_no_order_90d", "btyd_p_no_order_365d", "btyd_p_alive", "btyd_expected_orders_90d", "btyd_expected_orders_365d")
    assert sorted(sorted(g.tolist()) for g in fact_groups(names)) == [[0, 1, 2], [3, 4]]


def test_a_reason_whose_sentence_plainly_says_the_opposite_of_its_direction_gives_way_to_the_next():
    # Spend up 279% raising churn risk reads as good news listed as bad: left out. The fall over 365 days,
    # plain bad news, raises it; paying on time lowers it; an order count (a level, no plain reading) stays.
    names = ["revenue_change_pct_90d_vs_prev_90d", "revenue_change_pct_365d_vs_prev_365d", "days_late_mean_90d", "order_count_90d"]
    X = pd.DataFrame([[279.0, -40.0, 0.0, 2.0]], columns=names)
    contrib = np.array([[0.80, 0.30, -0.20, 0.10, -2.0]])
    raw = reasons_table(contrib, X, names, score="churn", k=3).to_pandas()
    plain = reasons_table(contrib, X, names, score="churn", k=3, plain_reading=True).to_pandas()
    assert _sides(raw)["raises"][0] == "revenue_change_pct_90d_vs_prev_90d"
    assert _sides(plain) == {"raises": ["revenue_change_pct_365d_vs_prev_365d", "order_count_90d"], "lowers": ["days_late_mean_90d"]}
    assert plain["contribution"].tolist() == [0.30, 0.10, -0.20]  # the contributions themselves, unchanged
    assert contrib.tolist() == [[0.80, 0.30, -0.20, 0.10, -2.0]]  # and the caller's SHAP matrix untouched
    # with distinct facts the two changes are one fact (spend trend): the fall stands in for the rise left out
    both = reasons_table(contrib, X, names, score="churn", k=3, plain_reading=True, distinct_facts=True).to_pandas()
    assert _sides(both)["raises"] == ["revenue_change_pct_365d_vs_prev_365d", "order_count_90d"]
    # for value the same rise is good news: lowering value contradicts it, raising value does not
    value = reasons_table(np.array([[-0.5, 0.0, 0.0, 0.0, 0.0]]), X, names, score="value", k=3, plain_reading=True).to_pandas()
    assert value.empty
    value = reasons_table(np.array([[0.5, 0.0, 0.0, 0.0, 0.0]]), X, names, score="value", k=3, plain_reading=True).to_pandas()
    assert _sides(value)["raises"] == ["revenue_change_pct_90d_vs_prev_90d"]


def test_plain_reading_of_shares_has_a_band_that_reads_as_neither_and_cost_is_news_for_value_only():
    names = ["invoice_on_time_rate_365d", "collection_rate_90d", "service_cost_90d"]
    X = pd.DataFrame([[1.0, 0.0, 200.0], [0.7, 0.7, 200.0]], columns=names)
    contrib = np.array([[0.4, -0.3, 0.2, 0.0], [0.4, -0.3, 0.2, 0.0]])
    churn = reasons_table(contrib, X, names, score="churn", k=3, plain_reading=True).to_pandas()
    # row 0: "paid 100% on time" raising churn and "collected 0%" lowering it contradict their words; cost says nothing of churn
    assert churn.loc[churn["row"] == 0, "feature"].tolist() == ["service_cost_90d"]
    # row 1: 70% is neither good nor bad news: both stay
    assert sorted(churn.loc[churn["row"] == 1, "feature"]) == ["collection_rate_90d", "invoice_on_time_rate_365d", "service_cost_90d"]
    value = reasons_table(contrib, X, names, score="value", k=3, plain_reading=True).to_pandas()
    assert "service_cost_90d" not in value["feature"].tolist()  # a cost of 200 raising value contradicts its words
