"""Reason sentences: SHAP contributions turned into facts an account manager reads at a glance.

A reason is (feature, value, contribution). Its sentence states the fact behind the feature
("spend in the last 90 days fell 62% against the 90 days before" / "近90天消费额比前90天下降62%"),
in English and Chinese, from a template chosen by the feature-name patterns of
docs/ARCHITECTURE.md "Feature names". Whether the fact raises or lowers a score is told by
the reason's direction (sign of the contribution), not by the sentence, so one sentence
serves both scores.

Units (the convention every feature of the catalogue follows):
- `*_pct_*` are percentages, as the features compute them: -62 means a fall of 62%.
- `*_share_*`, `*_rate_*` are fractions: 0.62 means 62%.
- money columns (revenue, margin, returns, discounts, costs, invoices) are in the data's one
  currency and are shown with three significant figures (12,437 -> "12,400").
- `days_*`, `*_days`, counts are shown as whole numbers; ratios such as
  `recency_over_gap_mean` with one decimal ("3.1x").
- `days_late_change_*` and `complaint_change_*` are differences (days, complaints), not %.

Speed: sentences are formatted once per distinct displayed value of a feature in a chunk
(values are rounded to what the sentence shows first), then broadcast with numpy, so the
cost grows with the number of distinct values, not with rows x reasons.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from serving.number_text import round_sig3
from serving.unusual import ReasonReference, unusual_only

logger = logging.getLogger(__name__)

ScoreKind = Literal["churn", "value"]
SCORE_KINDS: tuple[str, ...] = ("churn", "value")
DIRECTIONS: tuple[str, ...] = ("raises", "lowers")
REASON_COLUMNS: tuple[str, ...] = (
    "row", "score", "direction", "rank", "feature", "value", "contribution",
    "sentence_en", "sentence_zh",
)  # fmt: skip

_HEADERS = {
    ("churn", "raises"): ("Raises churn risk: ", "推高流失风险："),
    ("churn", "lowers"): ("Lowers churn risk: ", "降低流失风险："),
    ("value", "raises"): ("Raises value: ", "提升价值："),
    ("value", "lowers"): ("Lowers value: ", "拉低价值："),
}

Render = Callable[[float | str, dict, float], tuple[str, str]]


# --------------------------------------------------------------------------- formatting


def _int(x: float) -> str:
    return f"{x:,.0f}"


def _money(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _dec(x: float) -> str:
    return f"{x:g}"


def _plural(n: float, word: str, plural: str | None = None) -> str:
    return f"{_int(n)} {word if abs(n) == 1 else (plural or word + 's')}"


def _w_en(g: dict) -> str:
    return "in total" if g.get("life") else f"in the last {g['w']} days"


def _w_zh(g: dict) -> str:
    return "累计" if g.get("life") else f"近{g['w']}天"


_KEYS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "count": np.round,
    "days": np.round,
    "money": round_sig3,
    "pct": lambda v: np.round(v * 100.0),
    "pct_points": lambda v: np.round(v),  # already in percent (revenue_change_pct_*)
    "ratio": lambda v: np.round(v, 1),
    "number": round_sig3,
}


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class _Family:
    """Feature family: name pattern, display kind, noun for missing values and a renderer."""

    pattern: str
    kind: str  # key of _KEYS, or 'text'
    noun_en: Callable[[dict], str]
    noun_zh: Callable[[dict], str]
    render: Render
    context: str | None = None  # another feature of the same row the sentence uses


W = r"(?:(?P<w>\d+)d|(?P<life>lifetime))"


def _count_family(
    stem: str, word: str, plural: str | None, zh: Callable[[dict, str], str], none_en: str, none_zh: Callable[[dict], str],
    noun_zh: str, *, verb_en: str = "",
) -> _Family:
    def render(x, g, _):
        if x == 0:
            return f"{none_en} {_w_en(g)}", none_zh(g)
        return f"{verb_en}{_plural(x, word, plural)} {_w_en(g)}", zh(g, _int(x))

    return _Family(
        rf"{stem}_{W}",
        "count",
        lambda g: f"{plural or word + 's'} {_w_en(g)}",
        lambda g: f"{_w_zh(g)}{noun_zh}",
        render,
    )


def _money_family(stem: str, en: str, zh: str, *, noun_en: str | None = None, absolute: bool = False) -> _Family:
    """`en` holds {m} where the amount goes: 'spend of {m}'."""

    def render(x, g, _):
        m = _money(abs(x) if absolute else x)
        return f"{en.format(m=m)} {_w_en(g)}", f"{_w_zh(g)}{zh}{m}"

    noun = noun_en or en.replace(" of {m}", "").replace(" {m}", "")
    return _Family(rf"{stem}_{W}", "money", lambda g: f"{noun} {_w_en(g)}", lambda g: f"{_w_zh(g)}{zh}", render)


def _share_family(stem: str, en: str, zh: str) -> _Family:
    return _Family(
        rf"{stem}_{W}",
        "pct",
        lambda g: f"{en} share of spend {_w_en(g)}",
        lambda g: f"{_w_zh(g)}{zh}占比",
        lambda x, g, _: (f"{en} were {_int(x)}% of spend {_w_en(g)}", f"{_w_zh(g)}{zh}占消费额{_int(x)}%"),
    )


def _recency(x, g, ratio):
    en, zh = f"no order for {_plural(x, 'day')}", f"已{_int(x)}天未下单"
    if ratio is not None and not (isinstance(ratio, float) and math.isnan(ratio)):
        en += f", {_dec(ratio)}x the usual gap between orders"
        zh += f"，是平时下单间隔的{_dec(ratio)}倍"
    return en, zh


def _tenure(x, _g, _c):
    if x >= 365:
        years = _dec(round(x / 365.0, 1))
        return f"customer for {years} years (first order {_int(x)} days ago)", f"合作{years}年（首单于{_int(x)}天前）"
    return f"first order {_plural(x, 'day')} ago", f"首单于{_int(x)}天前"


def _spend_change(against_en: Callable[[dict], str], against_zh: Callable[[dict], str]) -> Render:
    def render(x, g, _):
        what_en, what_zh = f"spend in the last {g['w']} days", f"近{g['w']}天消费额"
        if math.isinf(x):
            return (f"{what_en} rose from nothing against {against_en(g)}", f"{what_zh}比{against_zh(g)}从零开始增长")
        if x == 0:
            return f"{what_en} was level with {against_en(g)}", f"{what_zh}与{against_zh(g)}持平"
        verb_en, verb_zh = ("rose", "上升") if x > 0 else ("fell", "下降")
        return f"{what_en} {verb_en} {_int(abs(x))}% against {against_en(g)}", f"{what_zh}比{against_zh(g)}{verb_zh}{_int(abs(x))}%"

    return render


def _slope(x, g, _):
    months = g["m"]
    if x == 0:
        return f"monthly spend flat over {months} months", f"近{months}个月月消费额持平"
    en, zh = ("up", "上升") if x > 0 else ("down", "下降")
    return (f"monthly spend trending {en} by {_money(abs(x))} a month over {months} months", f"近{months}个月月消费额每月{zh}{_money(abs(x))}")


def _late_mean(x, g, _):
    if x == 0:
        return f"paid on time on average {_w_en(g)}", f"{_w_zh(g)}平均按时付款"
    if x < 0:
        return f"paid {_plural(-x, 'day')} early on average {_w_en(g)}", f"{_w_zh(g)}平均提前{_int(-x)}天付款"
    return f"paid {_plural(x, 'day')} late on average {_w_en(g)}", f"{_w_zh(g)}平均逾期{_int(x)}天付款"


def _late_max(x, g, _):
    if x <= 0:
        return f"never paid late {_w_en(g)}", f"{_w_zh(g)}从未逾期付款"
    return f"paid up to {_plural(x, 'day')} late {_w_en(g)}", f"{_w_zh(g)}最长逾期{_int(x)}天付款"


def _late_change(x, g, _):
    p = g["p"]
    if x == 0:
        return f"paying as punctually as in the {p} days before", f"{_w_zh(g)}付款及时性与前{p}天持平"
    en, zh = ("later", "晚") if x > 0 else ("earlier", "早")
    return (f"paying {_plural(abs(x), 'day')} {en} on average than in the {p} days before", f"{_w_zh(g)}付款比前{p}天平均{zh}{_int(abs(x))}天")


def _complaint_change(x, g, _):
    p = g["p"]
    if x == 0:
        return f"as many complaints {_w_en(g)} as in the {p} days before", f"{_w_zh(g)}投诉次数与前{p}天持平"
    en, zh = ("more", "多") if x > 0 else ("fewer", "少")
    return (f"{_int(abs(x))} {en} complaint{'s' if abs(x) != 1 else ''} {_w_en(g)} than in the {p} days before", f"{_w_zh(g)}投诉比前{p}天{zh}{_int(abs(x))}次")


def _season_en(g: dict) -> str:
    return f"in the same {g['w']} days last year (the season ahead)"


def _season_zh(g: dict) -> str:
    return f"去年同期（未来{g['w']}天对应的时段）"


def _season_spend(x, g, _):
    if x == 0:
        return f"no spend {_season_en(g)}", f"{_season_zh(g)}无消费"
    return f"spend of {_money(x)} {_season_en(g)}", f"{_season_zh(g)}消费额{_money(x)}"


def _season_order_days(x, g, _):
    if x == 0:
        return f"no orders {_season_en(g)}", f"{_season_zh(g)}无订单"
    return f"ordered on {_plural(x, 'different day')} {_season_en(g)}", f"{_season_zh(g)}在{_int(x)}个不同日期下单"


def _season_share_of_year(x, g, _):
    return (f"{_int(x)}% of the last 365 days' spend fell {_season_en(g)}",
            f"近365天消费额的{_int(x)}%落在{_season_zh(g)}")


def _season_share_of_everyone(x, g, _):
    return (f"all customers spent {_int(x)}% of the last 365 days' sales {_season_en(g)}",
            f"全部客户近365天消费额的{_int(x)}%落在{_season_zh(g)}")


def _amount_or_none(en: str, zh: str, none_en: str, none_zh: str) -> Render:
    def render(x, _g, _c):
        if x == 0:
            return none_en, none_zh
        return f"{en} of {_money(x)}", f"{zh}{_money(x)}"

    return render


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
    text = x if isinstance(x, str) else _money(x)
    return f"{en_name}: {text}", f"{zh_name}：{text}"


def _fixed(en: str, zh: str) -> tuple[Callable[[dict], str], Callable[[dict], str]]:
    return (lambda g: en), (lambda g: zh)


FAMILIES: tuple[_Family, ...] = (
    _Family("days_since_last_order", "days", *_fixed("days since the last order", "距上次下单天数"), _recency, context="recency_over_gap_mean"),
    _Family("days_since_first_order", "days", *_fixed("days since the first order", "距首单天数"), _tenure),
    _Family("days_since_signup", "days", *_fixed("days since sign-up", "注册天数"),
            lambda x, g, c: (f"signed up {_plural(x, 'day')} ago", f"注册于{_int(x)}天前")),
    _count_family("order_count", "order", None, lambda g, n: f"{_w_zh(g)}下单{n}次", "no orders", lambda g: f"{_w_zh(g)}无订单", "订单数"),
    _money_family("revenue_sum", "spend of {m}", "消费额"),
    _money_family("revenue_mean_per_order", "average order value of {m}", "平均每单金额"),
    _money_family("margin_sum", "gross margin of {m}", "毛利"),
    _money_family("margin_mean_per_order", "average margin per order of {m}", "平均每单毛利"),
    _Family("order_days_lifetime", "count", *_fixed("days with an order", "下单天数"),
            lambda x, g, c: (f"ordered on {_plural(x, 'different day')} in total", f"累计在{_int(x)}个不同日期下单")),
    _Family("repeat_revenue_mean_per_order_day_lifetime", "money", *_fixed("average spend per repeat order day", "复购日平均消费额"),
            lambda x, g, c: (f"average spend of {_money(x)} per repeat order day", f"复购日平均消费额{_money(x)}")),
    _Family("has_orders", "count", *_fixed("has ordered", "是否下过单"),
            lambda x, g, c: (("has ordered before", "曾经下单") if x > 0 else ("has never ordered", "从未下单"))),
    _Family("order_gap_mean_days", "days", *_fixed("usual gap between orders", "平均下单间隔"),
            lambda x, g, c: (f"orders every {_plural(x, 'day')} on average", f"平均每{_int(x)}天下单一次")),
    _Family("order_gap_std_days", "days", *_fixed("variation of the gap between orders", "下单间隔波动"),
            lambda x, g, c: (f"gap between orders varies by about {_plural(x, 'day')}", f"下单间隔波动约{_int(x)}天")),
    _Family("recency_over_gap_mean", "ratio", *_fixed("time since the last order against the usual gap", "距上次下单时间与平时间隔之比"),
            lambda x, g, c: (f"time since the last order is {_dec(x)}x the usual gap between orders", f"距上次下单的时间是平时下单间隔的{_dec(x)}倍")),
    _Family(r"revenue_change_pct_(?P<w>\d+)d_vs_prev_(?P<p>\d+)d", "pct_points",
            lambda g: f"change in spend in the last {g['w']} days", lambda g: f"近{g['w']}天消费额变化",
            _spend_change(lambda g: f"the {g['p']} days before", lambda g: f"前{g['p']}天")),
    _Family(r"revenue_change_pct_(?P<w>\d+)d_vs_year_ago", "pct_points",
            lambda g: f"change in spend in the last {g['w']} days against a year ago", lambda g: f"近{g['w']}天消费额同比变化",
            _spend_change(lambda g: "the same period a year earlier", lambda g: "去年同期")),
    _Family(r"revenue_monthly_slope_(?P<m>\d+)m", "money",
            lambda g: f"monthly spend trend over {g['m']} months", lambda g: f"近{g['m']}个月月消费额趋势", _slope),
    _Family(r"revenue_sum_next_(?P<w>\d+)d_year_ago", "money",
            lambda g: f"spend {_season_en(g)}", lambda g: f"{_season_zh(g)}消费额", _season_spend),
    _Family(r"order_days_next_(?P<w>\d+)d_year_ago", "count",
            lambda g: f"days with an order {_season_en(g)}", lambda g: f"{_season_zh(g)}下单天数", _season_order_days),
    _Family(r"revenue_share_next_(?P<w>\d+)d_year_ago", "pct",
            lambda g: f"share of the last 365 days' spend {_season_en(g)}", lambda g: f"近365天消费额中{_season_zh(g)}的占比",
            _season_share_of_year),
    _Family(r"season_share_next_(?P<w>\d+)d", "pct",
            lambda g: f"all customers' share of the last 365 days' sales {_season_en(g)}",
            lambda g: f"全部客户近365天消费额中{_season_zh(g)}的占比", _season_share_of_everyone),
    _count_family("distinct_categories", "category", "categories", lambda g, n: f"{_w_zh(g)}购买了{n}个品类", "bought from no category", lambda g: f"{_w_zh(g)}未购买任何品类", "品类数", verb_en="bought from "),
    _count_family("distinct_products", "different product", None, lambda g, n: f"{_w_zh(g)}购买了{n}种产品", "bought no product", lambda g: f"{_w_zh(g)}未购买任何产品", "产品种数", verb_en="bought "),
    _count_family("new_category_count", "new category", "new categories", lambda g, n: f"{_w_zh(g)}新增购买{n}个品类", "no new categories", lambda g: f"{_w_zh(g)}无新增品类", "新增品类数", verb_en="bought from "),
    _count_family("return_count", "return", None, lambda g, n: f"{_w_zh(g)}退货{n}次", "no returns", lambda g: f"{_w_zh(g)}无退货", "退货次数"),
    _money_family("return_amount", "returns worth {m}", "退货金额", noun_en="returned amount", absolute=True),
    _share_family("return_share", "returns", "退货额"),
    _money_family("discount_amount", "discounts worth {m}", "折扣金额", noun_en="discounts given", absolute=True),
    _share_family("discount_share", "discounts", "折扣"),
    _count_family("discounted_order_count", "discounted order", None, lambda g, n: f"{_w_zh(g)}折扣订单{n}笔", "no discounted orders", lambda g: f"{_w_zh(g)}无折扣订单", "折扣订单数"),
    _Family(rf"invoice_on_time_rate_{W}", "pct", lambda g: f"share of invoices paid on time {_w_en(g)}", lambda g: f"{_w_zh(g)}按时付款率",
            lambda x, g, c: (f"paid {_int(x)}% of invoices on time {_w_en(g)}", f"{_w_zh(g)}按时付款的发票占{_int(x)}%")),
    _Family(rf"days_late_mean_{W}", "days", lambda g: f"average days late {_w_en(g)}", lambda g: f"{_w_zh(g)}平均逾期天数", _late_mean),
    _Family(rf"days_late_max_{W}", "days", lambda g: f"longest delay in payment {_w_en(g)}", lambda g: f"{_w_zh(g)}最长逾期天数", _late_max),
    _Family(r"days_late_change_(?P<w>\d+)d_vs_prev_(?P<p>\d+)d", "days",
            lambda g: f"change in days late in the last {g['w']} days", lambda g: f"近{g['w']}天逾期天数变化", _late_change),
    _Family("overdue_open_amount", "money", *_fixed("overdue unpaid invoices", "逾期未付发票金额"),
            _amount_or_none("overdue unpaid invoices", "逾期未付发票金额", "no overdue invoices", "无逾期未付发票")),
    _Family("open_invoice_amount", "money", *_fixed("unpaid invoices", "未付发票金额"),
            _amount_or_none("unpaid invoices", "未付发票金额", "no unpaid invoices", "无未付发票")),
    _Family(rf"collection_rate_{W}", "pct", lambda g: f"share of the invoiced amount collected {_w_en(g)}", lambda g: f"{_w_zh(g)}回款率",
            lambda x, g, c: (f"collected {_int(x)}% of the invoiced amount {_w_en(g)}", f"{_w_zh(g)}回款率{_int(x)}%")),
    _Family("dso_days", "days", *_fixed("days sales outstanding (DSO)", "应收账款周转天数（DSO）"),
            lambda x, g, c: (f"takes {_plural(x, 'day')} on average to pay (DSO)", f"应收账款周转天数（DSO）{_int(x)}天")),
    _count_family("ticket_count", "support ticket", None, lambda g, n: f"{_w_zh(g)}服务工单{n}个", "no support tickets", lambda g: f"{_w_zh(g)}无服务工单", "服务工单数"),
    _count_family("complaint_count", "complaint", None, lambda g, n: f"{_w_zh(g)}投诉{n}次", "no complaints", lambda g: f"{_w_zh(g)}无投诉", "投诉次数"),
    _Family(r"complaint_change_(?P<w>\d+)d_vs_prev_(?P<p>\d+)d", "count",
            lambda g: f"change in complaints in the last {g['w']} days", lambda g: f"近{g['w']}天投诉变化", _complaint_change),
    _money_family("service_cost", "service cost of {m}", "服务成本"),
    _count_family("interaction_count", "contact", None, lambda g, n: f"{_w_zh(g)}互动{n}次（工单、电话、拜访等）", "no contacts", lambda g: f"{_w_zh(g)}无互动", "互动次数"),
    _Family(rf"cost_to_serve_{W}", "money", lambda g: f"cost to serve {_w_en(g)}", lambda g: f"{_w_zh(g)}服务总成本",
            lambda x, g, c: (f"cost to serve of {_money(x)} {_w_en(g)} (service, returns, discounts)", f"{_w_zh(g)}服务总成本{_money(x)}（服务、退货、折扣）")),
    _Family(r"attr_(?P<col>.+)", "text", lambda g: humanise(g["col"]), lambda g: ATTRIBUTE_NAMES_ZH.get(g["col"], humanise(g["col"])), _attribute),
)  # fmt: skip


def humanise(name: str) -> str:
    """Return a feature code as words: 'loyalty_points_90d' -> 'loyalty points (90 days)'."""
    words = []
    for token in name.split("_"):
        if re.fullmatch(r"\d+d", token):
            words.append(f"({token[:-1]} days)")
        elif re.fullmatch(r"\d+m", token):
            words.append(f"({token[:-1]} months)")
        else:
            words.append({"pct": "%", "prev": "previous", "vs": "vs", "attr": ""}.get(token, token))
    return " ".join(w for w in words if w) or name


def _fallback(name: str) -> _Family:
    human = humanise(name)

    def render(x, _g, _c):
        text = x if isinstance(x, str) else _money(x)
        return f"{human}: {text}", f"{human}：{text}"

    return _Family(re.escape(name), "number", lambda g: human, lambda g: human, render)


@lru_cache(maxsize=4096)
def family_of(feature: str) -> tuple[_Family, dict]:
    """Return the template family of a feature name and the groups its pattern captured."""
    for family in FAMILIES:
        match = re.fullmatch(family.pattern, feature)
        if match:
            return family, {k: v for k, v in match.groupdict().items() if v is not None}
    return _fallback(feature), {}


# --------------------------------------------------------------------------- sentences


def _is_missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _render_one(family: _Family, groups: dict, x: object, context: object) -> tuple[str, str]:
    if _is_missing(x) and family.kind != "text":
        if family.pattern == "days_since_last_order":
            return "no orders before the scoring date", "评分日前无订单"
        return f"{family.noun_en(groups)}: no data", f"{family.noun_zh(groups)}：无数据"
    if family.kind != "text" and isinstance(x, str):  # a text value in a numeric family: show it as is
        return f"{family.noun_en(groups)}: {x}", f"{family.noun_zh(groups)}：{x}"
    return family.render(x, groups, context)


def sentence(feature: str, value: object, *, context: object = None) -> tuple[str, str]:
    """Return the (English, Chinese) sentence for one feature value (context: see module doc)."""
    family, groups = family_of(feature)
    values = _as_values(np.array([value], dtype=object), family.kind)
    ctx = None if context is None else float(_KEYS["ratio"](np.array([float(context)]))[0]) + 0.0
    return _render_one(family, groups, values[0], ctx)


def _as_values(raw: np.ndarray, kind: str) -> np.ndarray:
    """Round raw values to what the sentence shows (the key used to format each value once)."""
    if kind == "text":
        return raw
    try:
        numeric = raw.astype(float)
    except (TypeError, ValueError):
        return np.array([None if _is_missing(v) else str(v) for v in raw], dtype=object)
    # + 0.0 turns -0.0 into 0.0: factorize and the text cache take them for one value, and the
    # sentence must not depend on which comes first (chunks hold customers in no fixed order).
    return _KEYS[kind](numeric) + 0.0


def sentences_for_feature(feature: str, values: np.ndarray, context: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return English and Chinese sentences for many values of one feature (formatted once per distinct value)."""
    codes, en_u, zh_u = _sentence_codes(feature, values, context)
    return en_u[codes], zh_u[codes]


def _sentence_codes(feature: str, values: np.ndarray, context: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (codes, distinct English sentences, distinct Chinese sentences) for one feature."""
    family, groups = family_of(feature)
    keys = _as_values(np.asarray(values), family.kind)
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    ctx_uniques: np.ndarray = np.array([None], dtype=object)
    if family.context is not None and context is not None:
        ctx_codes, ctx_uniques = pd.factorize(_KEYS["ratio"](np.asarray(context, dtype=float)) + 0.0, use_na_sentinel=False)
        codes, pairs = pd.factorize(codes.astype(np.int64) * len(ctx_uniques) + ctx_codes)
        value_index, ctx_index = pairs // len(ctx_uniques), pairs % len(ctx_uniques)
        if isinstance(uniques, np.ndarray) and uniques.dtype == np.float64 and ctx_uniques.dtype == np.float64:
            en_u, zh_u = _float_sentences_with_context(feature, family, groups, uniques[value_index], ctx_uniques, ctx_index)
            return np.asarray(codes, dtype=np.int64), en_u, zh_u
    elif isinstance(uniques, np.ndarray) and uniques.dtype == np.float64:
        en_u, zh_u = _float_sentences(feature, family, groups, uniques)
        return np.asarray(codes, dtype=np.int64), en_u, zh_u
    else:
        value_index, ctx_index = np.arange(len(uniques)), np.zeros(len(uniques), dtype=np.int64)
    en_u = np.empty(len(value_index), dtype=object)
    zh_u = np.empty(len(value_index), dtype=object)
    seen = _RENDERED.setdefault(feature, {})
    if len(seen) > _RENDERED_PER_FEATURE:
        seen.clear()
    for i, (vi, ci) in enumerate(zip(value_index, ctx_index, strict=True)):
        x = uniques[vi]
        x = float(x) if isinstance(x, (np.floating, np.integer)) else x
        c = ctx_uniques[ci]
        c = None if _is_missing(c) else float(c)
        key = (_exact(x), _exact(c))
        pair = seen.get(key) if key[0] is not _UNCACHED else None
        if pair is None:
            pair = _render_one(family, groups, x, c)
            if key[0] is not _UNCACHED and key[1] is not _UNCACHED:
                seen[key] = pair
        en_u[i], zh_u[i] = pair
    return np.asarray(codes, dtype=np.int64), en_u, zh_u


# Sentences already rendered, per feature, keyed by the exact displayed value and context:
# later chunks of a run mostly show values seen before. Bounded so memory stays flat.
_RENDERED: dict[str, dict[tuple, tuple[str, str]]] = {}
_RENDERED_PER_FEATURE = 50_000
_UNCACHED = object()


@dataclass(frozen=True)
class _RenderedFloats:
    """Sentences of one feature rendered so far, keyed by the bit pattern of the displayed value."""

    keys: pd.Index  # int64 view of the float64 values: -0.0 and 0.0 differ, every NaN is one key
    en: np.ndarray
    zh: np.ndarray


_RENDERED_FLOATS: dict[str, _RenderedFloats] = {}


# Sentences of (value, context) pairs rendered so far, per feature, keyed by the bit patterns of
# both floats. A plain dict: a chunk has a few thousand distinct pairs, and one probe per pair
# costs less than one vectorised probe per distinct context value.
_RENDERED_PAIRS: dict[str, dict[tuple[int, int], tuple[str, str]]] = {}


def _float_sentences_with_context(
    feature: str, family: _Family, groups: dict, values: np.ndarray, ctx_uniques: np.ndarray, ctx_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sentences of distinct (value, context) pairs, rendering only pairs not seen before."""
    cache = _RENDERED_PAIRS.setdefault(feature, {})
    if len(cache) > _RENDERED_PER_FEATURE:
        cache.clear()
    contexts = np.asarray(ctx_uniques, dtype=np.float64)[ctx_index]
    en_u, zh_u = np.empty(len(values), dtype=object), np.empty(len(values), dtype=object)
    value_bits, context_bits = values.view(np.int64).tolist(), contexts.view(np.int64).tolist()
    for i, key in enumerate(zip(value_bits, context_bits, strict=True)):
        pair = cache.get(key)
        if pair is None:
            c = contexts[i]
            pair = cache[key] = _render_one(family, groups, float(values[i]), None if math.isnan(c) else float(c))
        en_u[i], zh_u[i] = pair
    return en_u, zh_u


def _float_sentences(
    key: str, family: _Family, groups: dict, uniques: np.ndarray, context: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """English and Chinese sentence of each distinct displayed value (float64), rendering only unseen ones.

    `key` names the feature the cache is for. The look-up is one hash
    probe per value in numpy, so a warm chunk costs no Python per value.
    """
    bits = uniques.view(np.int64)
    cache = _RENDERED_FLOATS.get(key)
    if cache is None or len(cache.keys) > _RENDERED_PER_FEATURE:
        cache = _RenderedFloats(pd.Index([], dtype=np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object))
    position = cache.keys.get_indexer(bits)
    unseen = np.nonzero(position < 0)[0]
    if len(unseen):
        rendered = [_render_one(family, groups, float(x), context) for x in uniques[unseen]]
        en_new, zh_new = np.empty(len(unseen), dtype=object), np.empty(len(unseen), dtype=object)
        en_new[:], zh_new[:] = [en for en, _ in rendered], [zh for _, zh in rendered]
        position[unseen] = len(cache.keys) + np.arange(len(unseen))
        cache = _RenderedFloats(cache.keys.append(pd.Index(bits[unseen])), np.concatenate([cache.en, en_new]), np.concatenate([cache.zh, zh_new]))
        _RENDERED_FLOATS[key] = cache
    return cache.en[position], cache.zh[position]


def _exact(x: object) -> object:
    """A key equal only for values that render alike: NaN is not cached, and 0.0 and -0.0 differ ('-0')."""
    if isinstance(x, float):
        return _UNCACHED if math.isnan(x) else (x, math.copysign(1.0, x))
    if x is None or isinstance(x, str):
        return x
    return _UNCACHED


def value_text(values: np.ndarray) -> pa.Array:
    """Return feature values as text for the explanations table (null for missing; 3.0 -> '3').

    Numbers keep four decimals: enough to recompute a sentence, without float noise
    such as 378.16749999999996.
    """
    values = np.asarray(values)
    if values.dtype.kind not in "fiub":
        return pa.array([None if _is_missing(v) else str(v) for v in values], type=pa.string())
    rounded = np.round(values.astype(float), 4)
    whole = _small_whole_numbers(rounded)
    if not whole.any():
        return pc.cast(pa.array(rounded, from_pandas=True), pa.string())
    # Whole numbers print alike as integers, and integer-to-text is ~4x cheaper than float-to-text.
    as_int = pc.cast(pa.array(rounded[whole].astype(np.int64)), pa.string())
    if whole.all():
        return as_int
    as_float = pc.cast(pa.array(rounded[~whole], from_pandas=True), pa.string())
    order = np.concatenate([np.nonzero(whole)[0], np.nonzero(~whole)[0]])
    back = np.empty(len(order), dtype=np.int64)
    back[order] = np.arange(len(order))
    return pa.concat_arrays([as_int, as_float]).take(pa.array(back))


def _small_whole_numbers(values: np.ndarray) -> np.ndarray:
    """True where a float is a whole number that Arrow prints without exponent or sign quirk (not -0.0)."""
    with np.errstate(invalid="ignore"):
        return (np.abs(values) < 1e6) & (values == np.trunc(values)) & ~((values == 0) & np.signbit(values))


# --------------------------------------------------------------------------- top-k selection


def top_k_contributions(contrib: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (raise_idx, raise_val, lower_idx, lower_val), each n x k, strongest first.

    Slots without a positive (resp. negative) contribution hold index -1 and value 0.
    `contrib` holds feature contributions only (bias column already removed).

    k + 1 passes of argmax find the strongest reasons (~2x less CPU than argpartition here).
    Where that choice is not unique (two equal non-zero contributions among the k + 1
    strongest, or a non-finite one), the row is chosen by argpartition as before, so every
    row gets exactly the reasons, in the order, it always got.
    """
    n, f = contrib.shape
    if n == 0 or k + 1 > f:
        return _top_k_by_partition(contrib, k)
    raise_idx, raise_val, raise_unsure = _strongest(np.array(contrib, dtype=float), k)
    lower_idx, lower_val, lower_unsure = _strongest(-np.asarray(contrib, dtype=float), k)
    out = [raise_idx, raise_val, lower_idx, -lower_val + 0.0]  # + 0.0: the empty slots' -0.0 back to 0.0
    unsure = np.nonzero(raise_unsure | lower_unsure | ~np.isfinite(contrib).all(axis=1))[0]
    if len(unsure):
        for target, exact in zip(out, _top_k_by_partition(contrib[unsure], k), strict=True):
            target[unsure] = exact
    return out[0], out[1], out[2], out[3]


def _strongest(work: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and values of the k largest positive entries per row, largest first (-1 and 0 where fewer).

    `work` is a scratch copy (overwritten). The third array marks rows where ties make the choice
    or the order ambiguous.
    """
    n = len(work)
    rows = np.arange(n)
    idx = np.empty((n, k + 1), dtype=np.int64)
    val = np.empty((n, k + 1))
    for j in range(k + 1):
        idx[:, j] = work.argmax(axis=1)
        val[:, j] = work[rows, idx[:, j]]
        work[rows, idx[:, j]] = -np.inf
    keep = val[:, :k] > 0
    unsure = (keep & (val[:, :k] == val[:, 1:])).any(axis=1)
    return np.where(keep, idx[:, :k], -1), np.where(keep, val[:, :k], 0.0), unsure


def _top_k_by_partition(contrib: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """top_k_contributions by argpartition: ties broken as numpy's introselect breaks them."""
    n, f = contrib.shape
    kk = min(k, f)
    raise_idx, raise_val = _top_k(-contrib, kk)
    lower_idx, lower_val = _top_k(contrib, kk)
    raise_val = -raise_val
    out = []
    for idx, val, keep in ((raise_idx, raise_val, raise_val > 0), (lower_idx, lower_val, lower_val < 0)):
        idx = np.where(keep, idx, -1)
        val = np.where(keep, val, 0.0)
        if kk < k:  # fewer features than reasons asked for: pad
            idx = np.hstack([idx, np.full((n, k - kk), -1)])
            val = np.hstack([val, np.zeros((n, k - kk))])
        out += [idx, val]
    return out[0], out[1], out[2], out[3]


def _top_k(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k smallest entries per row, smallest first (NaN last)."""
    if k == 0:
        return np.empty((a.shape[0], 0), dtype=np.int64), np.empty((a.shape[0], 0))
    part = np.argpartition(a, k - 1, axis=1)[:, :k] if k < a.shape[1] else np.tile(np.arange(a.shape[1]), (a.shape[0], 1))
    vals = np.take_along_axis(a, part, axis=1)
    order = np.argsort(vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


# Pattern groups that only name the window of a measure: features differing only in these say the same fact.
WINDOW_GROUPS = frozenset({"w", "p", "m", "life"})


@lru_cache(maxsize=64)
def fact_groups(feature_names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Column positions of each fact measured by two or more features (same template, other window)."""
    members: dict[tuple, list[int]] = {}
    for position, name in enumerate(feature_names):
        family, groups = family_of(name)
        fact = (family.pattern, tuple(sorted((k, v) for k, v in groups.items() if k not in WINDOW_GROUPS)))
        members.setdefault(fact, []).append(position)
    return tuple(np.array(cols) for cols in members.values() if len(cols) > 1)


def strongest_per_fact(contrib: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Contributions with, per row and fact, only the strongest raising and strongest lowering feature kept (others 0).

    Ties go to the first feature of the fact, as argmax and argmin pick them.
    """
    # Worked on features x rows, where each feature's values are contiguous: the per-fact column
    # gathers of the row-major matrix cost 1.6x as much CPU.
    by_feature = np.asarray(contrib, dtype=float).T.copy()
    for cols in groups:
        block = by_feature[cols]
        strongest_up, strongest_down = block.argmax(axis=0), block.argmin(axis=0)
        for j, col in enumerate(cols):
            values = block[j]
            kept = ((strongest_up == j) & (values > 0)) | ((strongest_down == j) & (values < 0))
            by_feature[col] = np.where(kept, values, 0.0)
    return np.ascontiguousarray(by_feature.T)


# --------------------------------------------------------------------------- chunk API


def reasons_for_chunk(
    contrib: np.ndarray,
    X: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    score: ScoreKind,
    k: int = 3,
) -> pd.DataFrame:
    """Return the top-k raising and top-k lowering reasons of every row as a long table.

    `contrib` is n x (f + 1) SHAP contributions with the bias in the last column (LightGBM
    `pred_contrib=True`); `X` holds the feature values of the same rows (by name). Columns:
    REASON_COLUMNS; `row` is the 0-based position of the row in the chunk. Rows are sorted by
    row, direction (raises first) and rank; a row has fewer than k reasons in a direction
    when fewer features push that way (a zero contribution is no reason).
    """
    table = reasons_table(contrib, X, feature_names, score=score, k=k)
    return _decode_dictionaries(table).to_pandas()


def reasons_table(
    contrib: np.ndarray,
    X: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    score: ScoreKind,
    k: int = 3,
    distinct_facts: bool = False,
    reference: ReasonReference | None = None,
    unusual_percentile: int | None = None,
) -> pa.Table:
    """`reasons_for_chunk` as an Arrow table (sentences dictionary-encoded; no pandas round trip).

    With `distinct_facts`, a measure taken over several windows (spend in 90, 180 and 365
    days) gives at most one reason per direction: the window that pushes hardest. With a
    `reference` population and an `unusual_percentile`, a feature is a reason only where the
    customer's value is unusual in the direction it pushes (serving/unusual.py).
    """
    contrib = _check_chunk(contrib, X, feature_names, score=score, k=k)
    candidates = contrib[:, :-1]
    if reference is not None and unusual_percentile is not None:
        candidates = unusual_only(candidates, X, reference.aligned(feature_names), unusual_percentile)
    if distinct_facts:
        candidates = strongest_per_fact(candidates, fact_groups(tuple(feature_names)))
    raise_idx, raise_val, lower_idx, lower_val = top_k_contributions(candidates, k)
    parts = [_long_part(raise_idx, raise_val, 0), _long_part(lower_idx, lower_val, 1)]
    rows, ranks, feats, contribs, dirs = (np.concatenate([p[i] for p in parts]) for i in range(5))
    order = np.lexsort((ranks, dirs, rows))
    rows, ranks, feats, contribs, dirs = rows[order], ranks[order], feats[order], contribs[order], dirs[order]
    values, en, zh = _render_reasons(X, list(feature_names), rows, feats)
    names = pa.array(list(feature_names), type=pa.string())
    return pa.table(
        {
            "row": pa.array(rows, type=pa.int64()),
            "score": pa.repeat(pa.scalar(score, pa.string()), len(rows)),
            "direction": pa.DictionaryArray.from_arrays(pa.array(dirs, type=pa.int32()), pa.array(DIRECTIONS)).dictionary_decode(),
            "rank": pa.array(ranks.astype(np.int16)),
            "feature": pa.DictionaryArray.from_arrays(pa.array(feats, type=pa.int32()), names).dictionary_decode(),
            "value": values,
            "contribution": pa.array(contribs, type=pa.float64()),
            "sentence_en": en,
            "sentence_zh": zh,
        }
    )


def _decode_dictionaries(table: pa.Table) -> pa.Table:
    """Return the table with dictionary-encoded string columns as plain strings."""
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


def _check_chunk(contrib: np.ndarray, X: pd.DataFrame, feature_names: Sequence[str], *, score: str, k: int) -> np.ndarray:
    contrib = np.asarray(contrib, dtype=float)
    if score not in SCORE_KINDS:
        raise ValueError(f"reasons_for_chunk: score={score!r} is not one of {SCORE_KINDS}")
    if k < 1:
        raise ValueError(f"reasons_for_chunk: k={k} must be at least 1")
    if contrib.ndim != 2 or contrib.shape[1] != len(feature_names) + 1:
        raise ValueError(
            f"reasons_for_chunk: contributions have shape {contrib.shape}, expected (rows, "
            f"{len(feature_names) + 1}) = one column per feature name plus the bias as the last column"
        )
    if contrib.shape[0] != len(X):
        raise ValueError(f"reasons_for_chunk: {contrib.shape[0]} contribution rows but {len(X)} feature rows in X")
    missing = [name for name in feature_names if name not in X.columns]
    if missing:
        raise ValueError(f"reasons_for_chunk: feature(s) {missing[:5]} not among the columns of X; pass the matrix the model scored")
    return contrib


def _long_part(idx: np.ndarray, val: np.ndarray, direction: int):
    rows, slots = np.nonzero(idx >= 0)
    return rows, slots + 1, idx[rows, slots], val[rows, slots], np.full(len(rows), direction, dtype=np.int64)


def _render_reasons(X: pd.DataFrame, names: list[str], rows: np.ndarray, feats: np.ndarray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Value text and sentences of each long reason row, one feature at a time."""
    n = len(rows)
    if n == 0:
        empty = pa.array([], type=pa.string())
        no_sentences = pa.DictionaryArray.from_arrays(pa.array([], type=pa.int32()), empty)
        return empty, no_sentences, no_sentences
    by_feature = np.argsort(feats, kind="stable")
    uniq, starts = np.unique(feats[by_feature], return_index=True)
    bounds = np.append(starts, n)
    codes = np.empty(n, dtype=np.int64)  # in by_feature order
    value_parts, en_parts, zh_parts, offset = [], [], [], 0
    for j, lo, hi in zip(uniq, bounds[:-1], bounds[1:], strict=True):
        name = names[j]
        at = rows[by_feature[lo:hi]]
        raw = _column_values(X, name)[at]
        family, _ = family_of(name)
        context = None
        if family.context is not None and family.context in X.columns:
            context = _column_values(X, family.context)[at]
        value_parts.append(value_text(raw))
        feature_codes, en_u, zh_u = _sentence_codes(name, raw, context)
        codes[lo:hi] = feature_codes + offset
        offset += len(en_u)
        en_parts.append(en_u)
        zh_parts.append(zh_u)
    back = np.empty(n, dtype=np.int64)
    back[by_feature] = np.arange(n)  # position in by_feature order of each long row
    order = pa.array(back)
    values = pa.concat_arrays(value_parts).take(order)
    long_codes = pa.array(codes[back], type=pa.int32())
    # Sentences stay dictionary-encoded (few distinct texts): cheap to escape for JSON and to write.
    en = pa.DictionaryArray.from_arrays(long_codes, pa.array(np.concatenate(en_parts), type=pa.string()))
    zh = pa.DictionaryArray.from_arrays(long_codes, pa.array(np.concatenate(zh_parts), type=pa.string()))
    return values, en, zh


def _column_values(X: pd.DataFrame, name: str) -> np.ndarray:
    col = X[name]
    if pd.api.types.is_numeric_dtype(col.dtype) and not isinstance(col.dtype, pd.CategoricalDtype):
        return col.to_numpy(dtype=float, na_value=np.nan)
    return col.astype(object).to_numpy()


# --------------------------------------------------------------------------- score-table columns


def reason_columns(
    reasons: pd.DataFrame | pa.Table | Sequence[pd.DataFrame | pa.Table],
    n_rows: int,
    *,
    k: int | None = None,
    json_sentences: bool = True,
) -> pd.DataFrame:
    """Return per-row `reasons` (JSON text), `reason_text_en`, `reason_text_zh` (see reason_columns_table)."""
    return reason_columns_table(reasons, n_rows, k=k, json_sentences=json_sentences).to_pandas()


def reason_columns_table(
    reasons: pd.DataFrame | pa.Table | Sequence[pd.DataFrame | pa.Table],
    n_rows: int,
    *,
    k: int | None = None,
    json_sentences: bool = True,
    block_rows: int = 20_000,
) -> pa.Table:
    """Return per-row `reasons` (JSON text), `reason_text_en`, `reason_text_zh` as an Arrow table.

    Fastest with the Arrow tables of `reasons_table` (sentences stay dictionary-encoded).

    `reasons` is the output of `reasons_for_chunk`/`reasons_table` for the chunk's n_rows rows,
    one per score kind (a list, or already concatenated). JSON shape: {"churn": {"raises":
    [{rank, value, contribution, feature, sentence_en, sentence_zh}, ...], "lowers": [...]},
    "value": {...}}; with json_sentences=False the JSON leaves the sentences out (they are in
    the text columns and the explanations table) and is about 60% smaller and faster to build.
    Text: "Raises churn risk: a; b; c. Lowers churn risk: ... Raises value: ...".

    How: every piece a text is made of (fixed JSON punctuation and headers, each reason's
    value and contribution text, each distinct sentence) sits once in a pool; numpy works out
    which pool pieces each row's text lists, in order, and one Arrow take + one join per column
    builds the texts, `block_rows` chunk rows at a time so the intermediate pieces stay small.
    The result keeps one Arrow chunk per block (no copy into one buffer).
    """
    per_score = _reason_tables_by_score(reasons)
    for score, table in per_score.items():
        rows = table.column("row").to_numpy()
        if len(rows) and (rows.max() >= n_rows or rows.min() < 0):
            raise ValueError(f"reason_columns: {score} reasons have row positions up to {rows.max()} but the chunk has {n_rows} rows")
    if k is None:
        k = max((int(pc.max(t.column("rank")).as_py() or 1) for t in per_score.values() if t.num_rows), default=1)
    if not per_score:
        return _no_reason_columns(n_rows)
    layout = _ReasonLayout.build(per_score, k, json_sentences)
    blocks = [layout.block(start, min(start + block_rows, n_rows)) for start in range(0, n_rows, block_rows)]
    return pa.concat_tables(blocks) if blocks else layout.block(0, 0)


def _no_reason_columns(n_rows: int) -> pa.Table:
    """The text columns of rows without any reason table: empty JSON object, empty texts."""
    empty = pa.array([""] * n_rows, type=pa.string())
    return pa.table({"reasons": pa.array(["{}"] * n_rows, type=pa.string()), "reason_text_en": empty, "reason_text_zh": empty})


# Pieces of one JSON reason object: '{"rank":R,"value":' V ',"contribution":' C ',"feature":...}'.
_JSON_PIECES_PER_REASON = 5


@dataclass
class _ReasonGroup:
    """The reasons of one (score, direction) in reading order, as pool positions per piece."""

    rows: np.ndarray  # chunk row of each reason, ascending
    rank: np.ndarray
    value: np.ndarray  # position of the JSON value text in the JSON pool
    contribution: np.ndarray
    head: np.ndarray  # ',"feature":...}' (with the sentences) in the JSON pool
    en: np.ndarray  # sentence in the English pool
    zh: np.ndarray

    def between(self, start: int, stop: int) -> _ReasonGroup:
        """The reasons of chunk rows start..stop-1, rows renumbered from 0."""
        lo, hi = np.searchsorted(self.rows, [start, stop])
        return _ReasonGroup(self.rows[lo:hi] - start, *(getattr(self, f)[lo:hi] for f in ("rank", "value", "contribution", "head", "en", "zh")))


class _Pool:
    """Strings gathered into one array; `add` returns the position of the first one added."""

    def __init__(self) -> None:
        self.arrays: list[pa.Array] = []
        self.size = 0

    def add(self, texts: pa.Array | Sequence[str]) -> int:
        array = texts if isinstance(texts, pa.Array) else pa.array(list(texts), type=pa.string())
        self.arrays.append(array.cast(pa.string()) if array.type != pa.string() else array)
        self.size += len(array)
        return self.size - len(array)

    def array(self) -> pa.Array:
        return pa.concat_arrays(self.arrays)


@dataclass
class _ReasonLayout:
    """Pools of text pieces of one chunk and the reason groups pointing into them."""

    groups: list[_ReasonGroup]
    json_pool: pa.Array
    en_pool: pa.Array
    zh_pool: pa.Array
    json_between: int  # first of len(groups) + 1 fixed JSON texts around and between the groups
    rank_prefix: int  # '{"rank":R,"value":' for rank min_rank.., two per rank (first of its list, or after a comma)
    min_rank: int
    contribution_label: int
    headers: int  # one header per group, in the text pools
    separator: int  # between the sentences of one group, in the text pools
    group_end: int  # after a group followed by another, in the text pools
    text_end: int  # after the last group

    @classmethod
    def build(cls, per_score: dict[str, pa.Table], k: int, json_sentences: bool) -> _ReasonLayout:
        """Pool the pieces of every reason of the chunk (each distinct sentence once)."""
        json_pool, en_pool, zh_pool = _Pool(), _Pool(), _Pool()
        json_between = json_pool.add(_json_between(list(per_score)))
        contribution_label = json_pool.add([',"contribution":'])
        headers = en_pool.add([_HEADERS[(s, d)][0] for s in per_score for d in DIRECTIONS])
        zh_pool.add([_HEADERS[(s, d)][1] for s in per_score for d in DIRECTIONS])
        separator = en_pool.add(["; ", ". ", "."])  # separator, group end, text end: same places in both pools
        zh_pool.add(["；", "。", "。"])
        groups: list[_ReasonGroup] = []
        for table in per_score.values():
            table = _in_reading_order(table, k)
            value = json_pool.add(_json_string(table.column("value")))
            contribution = json_pool.add(pc.cast(pc.round(table.column("contribution").combine_chunks(), 6), pa.string()))
            head_texts, head_codes = _json_heads(table, json_sentences)
            head = json_pool.add(head_texts)
            en_texts, en_codes = _sentence_pieces(table.column("sentence_en"))
            zh_texts, zh_codes = _sentence_pieces(table.column("sentence_zh"))
            en, zh = en_pool.add(en_texts), zh_pool.add(zh_texts)
            rows = table.column("row").to_numpy()
            rank = table.column("rank").to_numpy().astype(np.int64)
            raises = pc.equal(table.column("direction"), "raises").to_numpy(zero_copy_only=False)
            for direction_rows in (raises, ~raises):
                sel = np.nonzero(direction_rows & (rank <= k))[0]
                groups.append(_ReasonGroup(rows[sel], rank[sel], value + sel, contribution + sel, head + head_codes[sel],
                                           en + en_codes[sel], zh + zh_codes[sel]))
        ranks = np.concatenate([g.rank for g in groups])
        min_rank = int(ranks.min(initial=1))
        prefixes = [f'{sep}{{"rank":{r},"value":' for r in range(min_rank, int(ranks.max(initial=1)) + 1) for sep in ("", ",")]
        rank_prefix = json_pool.add(prefixes)
        return cls(groups, json_pool.array(), en_pool.array(), zh_pool.array(), json_between, rank_prefix, min_rank,
                   contribution_label, headers, separator, separator + 1, separator + 2)

    def block(self, start: int, stop: int) -> pa.Table:
        """The three text columns of chunk rows start..stop-1."""
        n = stop - start
        groups = [g.between(start, stop) for g in self.groups]
        counts = np.stack([np.bincount(g.rows, minlength=n) for g in groups])  # reasons per group and row
        ordinals = [np.arange(len(g.rows)) - _exclusive_cumsum(c)[g.rows] for g, c in zip(groups, counts, strict=True)]
        json_offsets, json_index = self._json_index(groups, counts, ordinals)
        text_offsets, en_index, zh_index = self._text_index(groups, counts, ordinals)
        return pa.table({
            "reasons": _join_pieces(self.json_pool, json_offsets, json_index),
            "reason_text_en": _join_pieces(self.en_pool, text_offsets, en_index),
            "reason_text_zh": _join_pieces(self.zh_pool, text_offsets, zh_index),
        })  # fmt: skip

    def _json_index(self, groups: list[_ReasonGroup], counts: np.ndarray, ordinals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per row: fixed text, the reasons of group 0, fixed text, ... fixed text (pool positions)."""
        per = _JSON_PIECES_PER_REASON
        before = np.cumsum(counts, axis=0) - counts  # reasons of earlier groups in the row
        offsets = _offsets(len(groups) + 1 + per * counts.sum(axis=0))
        row_start = offsets[:-1]
        index = np.empty(offsets[-1], dtype=np.int64)
        for c in range(len(groups) + 1):
            index[row_start + c + per * (before[c] if c < len(groups) else counts.sum(axis=0))] = self.json_between + c
        for g, (group, ordinal) in enumerate(zip(groups, ordinals, strict=True)):
            at = row_start[group.rows] + g + 1 + per * (before[g][group.rows] + ordinal)
            index[at] = self.rank_prefix + 2 * (group.rank - self.min_rank) + (ordinal > 0)
            index[at + 1] = group.value
            index[at + 2] = self.contribution_label
            index[at + 3] = group.contribution
            index[at + 4] = group.head
        return offsets, index

    def _text_index(self, groups: list[_ReasonGroup], counts: np.ndarray, ordinals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row, for each group with reasons: header, sentences with separators, end mark (pool positions)."""
        present = counts > 0
        pieces = np.where(present, 2 * counts + 1, 0)
        before = np.cumsum(pieces, axis=0) - pieces
        last = len(groups) - 1 - np.argmax(present[::-1], axis=0)  # last group with reasons, per row
        offsets = _offsets(pieces.sum(axis=0))
        row_start = offsets[:-1]
        en = np.empty(offsets[-1], dtype=np.int64)
        zh = np.empty(offsets[-1], dtype=np.int64)
        for g, (group, ordinal) in enumerate(zip(groups, ordinals, strict=True)):
            rows = np.nonzero(present[g])[0]
            start = row_start[rows] + before[g][rows]
            en[start] = zh[start] = self.headers + g
            end = start + 2 * counts[g][rows]
            en[end] = zh[end] = np.where(last[rows] == g, self.text_end, self.group_end)
            at = row_start[group.rows] + before[g][group.rows] + 1 + 2 * ordinal
            en[at], zh[at] = group.en, group.zh
            after_first = at[ordinal > 0] - 1
            en[after_first] = zh[after_first] = self.separator
        return offsets, en, zh


def _json_between(scores: list[str]) -> list[str]:
    """The fixed JSON texts before, between and after the reason lists of each (score, direction)."""
    texts, pending = [], "{"
    for number, score in enumerate(scores):
        texts.append(pending + ("," if number else "") + f'"{score}":{{"raises":[')
        texts.append('],"lowers":[')
        pending = "]}"
    texts.append(pending + "}")
    return texts


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=out[1:])
    return out


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _join_pieces(pool: pa.Array, offsets: np.ndarray, index: np.ndarray) -> pa.Array:
    """Per row: the pool pieces index[offsets[i]:offsets[i+1]] joined into one string.

    `take` already lays the pieces' bytes out in row order, so the joined strings are the same
    bytes with one offset per row: no second copy as a join kernel would make.
    """
    pieces = pool.take(pa.array(index, type=pa.int64()))
    if pieces.null_count or pieces.offset:
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pieces), "")
    _, piece_offsets, data = pieces.buffers()
    row_offsets = np.frombuffer(piece_offsets, dtype=np.int32, count=len(pieces) + 1)[offsets]
    return pa.Array.from_buffers(pa.string(), len(offsets) - 1, [None, pa.py_buffer(row_offsets.astype(np.int32)), data])


def _sentence_pieces(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Distinct texts of a sentence column and each row's position among them (dictionaries kept as they are)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type) and array.null_count == 0:
        return array.dictionary, array.indices.to_numpy().astype(np.int64)
    return _plain(array), np.arange(len(array), dtype=np.int64)


def _json_heads(table: pa.Table, sentences: bool) -> tuple[pa.Array, np.ndarray]:
    """',"feature":...,"sentence_en":...,"sentence_zh":...}' texts and each row's position among them.

    Built once per sentence-dictionary entry when both sentence columns share one dictionary
    index (as `reasons_table` makes them), else once per row.
    """
    if sentences:
        dictionary = _sentence_head_dictionary(table)
        if dictionary is not None:
            codes = table.column("sentence_en").combine_chunks().indices.to_numpy().astype(np.int64)
            return pc.binary_join_element_wise(",", dictionary, "}", ""), codes
        heads = _json_sentence_heads(table, None)
    else:
        heads = pc.binary_join_element_wise('"feature":', _json_string(table.column("feature")), "")
    return pc.binary_join_element_wise(",", heads, "}", ""), np.arange(table.num_rows, dtype=np.int64)


def _in_reading_order(table: pa.Table, k: int) -> pa.Table:
    """The reasons sorted by row, direction (raises first) and rank, as the texts list them."""
    rows = table.column("row").to_numpy()
    rank = table.column("rank").to_numpy().astype(np.int64)
    lowers = pc.equal(table.column("direction"), "lowers").to_numpy(zero_copy_only=False)
    span = max(k, int(rank.max(initial=0))) + 1
    key = (rows * 2 + lowers) * span + rank
    if len(key) < 2 or np.all(key[1:] >= key[:-1]):
        return table  # reasons_table already gives this order
    return table.take(pa.array(np.argsort(key, kind="stable")))


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A string column as one plain (not dictionary) string array; dictionaries decode cheaply."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _reason_tables_by_score(reasons) -> dict[str, pa.Table]:
    """Split reason tables by score kind (SCORE_KINDS order), keeping dictionary-encoded sentences."""
    if isinstance(reasons, (pa.Table, pd.DataFrame)):
        reasons = [reasons]
    out: dict[str, list[pa.Table]] = {}
    for item in reasons:
        table = item if isinstance(item, pa.Table) else pa.Table.from_pandas(item, preserve_index=False)
        missing = [c for c in REASON_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"reason_columns: reason table lacks column(s) {missing}; pass the output of reasons_for_chunk")
        table = _small_strings(table.select(list(REASON_COLUMNS)))
        score_col = _plain(table.column("score"))
        for score in pc.unique(score_col).to_pylist():
            if score not in SCORE_KINDS:
                raise ValueError(f"reason_columns: score {score!r} is not one of {SCORE_KINDS}")
            same = pc.equal(score_col, score)
            out.setdefault(score, []).append(table if pc.all(same).as_py() else table.filter(same))
    return {
        s: out[s][0].combine_chunks() if len(out[s]) == 1 else pa.concat_tables([_decode_dictionaries(t) for t in out[s]]).combine_chunks()
        for s in SCORE_KINDS
        if s in out
    }


def _small_strings(table: pa.Table) -> pa.Table:
    """Cast large_string columns (pandas 3 str) to string, which the Arrow join kernels mix with constants."""
    fields = []
    for field in table.schema:
        typ = field.type
        if pa.types.is_large_string(typ):
            typ = pa.string()
        elif pa.types.is_dictionary(typ) and pa.types.is_large_string(typ.value_type):
            typ = pa.dictionary(typ.index_type, pa.string())
        fields.append(pa.field(field.name, typ))
    return table.cast(pa.schema(fields))


def _json_sentence_heads(table: pa.Table, head_dictionary: pa.Array | None) -> pa.Array:
    """Per row: '"feature":...,"sentence_en":...,"sentence_zh":...' as JSON members."""
    en = table.column("sentence_en").combine_chunks()
    if head_dictionary is not None and pa.types.is_dictionary(en.type):
        return head_dictionary.take(en.indices)
    zh = table.column("sentence_zh").combine_chunks()
    feature = table.column("feature").combine_chunks()
    return pc.binary_join_element_wise(
        '"feature":', _json_string(feature), ',"sentence_en":', _json_string(en), ',"sentence_zh":', _json_string(zh), ""
    )


def _sentence_head_dictionary(table: pa.Table) -> pa.Array | None:
    """The JSON members of each sentence-dictionary entry, built once per score table.

    Only when both sentence columns share one dictionary index (as `reasons_table` makes
    them): then each entry belongs to exactly one feature.
    """
    en = table.column("sentence_en").combine_chunks()
    zh = table.column("sentence_zh").combine_chunks()
    if table.num_rows == 0 or not (pa.types.is_dictionary(en.type) and pa.types.is_dictionary(zh.type) and en.indices.equals(zh.indices)):
        return None
    codes = en.indices.to_numpy(zero_copy_only=False)
    # Any row of an entry tells its feature (no sort needed); unused entries get none.
    row_of_entry = np.full(len(en.dictionary), -1, dtype=np.int64)
    row_of_entry[codes] = np.arange(len(codes))
    entry_feature = _plain(table.column("feature")).take(pa.array(row_of_entry, mask=row_of_entry < 0))
    return pc.binary_join_element_wise(
        '"feature":', _json_string(entry_feature),
        ',"sentence_en":', _json_string(en.dictionary),
        ',"sentence_zh":', _json_string(zh.dictionary), "",
    )  # fmt: skip


def _json_string(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """JSON string literal of each value (null -> null); dictionary columns are escaped once per text."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(values.type):
        quoted = _quote_json(values.dictionary)
        return pa.DictionaryArray.from_arrays(values.indices, quoted).dictionary_decode().fill_null("null")
    return _quote_json(values).fill_null("null")


def _quote_json(texts: pa.Array) -> pa.Array:
    if pc.any(pc.match_substring_regex(texts, r'[\x00-\x1f"\\]')).as_py():
        for raw, esc in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            texts = pc.replace_substring(texts, raw, esc)
        texts = pc.replace_substring_regex(texts, r"[\x00-\x1f]", " ")  # other control characters: blank
    return pc.binary_join_element_wise('"', texts, '"', "")
