"""Value tiers (Pareto A/B/C) and strategy classes (docs/METHOD.md) from typed rules.

Rules live in configs/segments.yaml; the caller validates them into `SegmentRules`
(`SegmentRules.model_validate(dict)`). Shares ("top 5%") are ranks over the whole scoring
run, so `assign_segments` needs the whole score frame (a few columns per customer), not a
chunk.

Strategy classes are tried in `rules.order`; the first that matches wins and its
`segment_reason` says which numbers met which thresholds, e.g.
"clv 12,400 in top 0.3% (<= 5%)" (money with three significant figures). `regular`
matches everyone and is always last.

"Top x%" counts customers, not values: customers are ranked by value, equal values ordered
by customer_id, and the first x% of the run's customers are the top x%, so a rule selects at
most that share however many customers share a value. Only a strictly positive value can be
in the top of anything: a customer worth nothing now is not "valuable now" because most
customers are worth nothing too.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.number_text import round_sig3

logger = logging.getLogger(__name__)

SEGMENTS: tuple[str, ...] = ("most_valuable", "growth", "at_risk", "negative_value", "new", "regular")
SegmentName = Literal["most_valuable", "growth", "at_risk", "negative_value", "new", "regular"]
ValueColumn = Literal["clv", "net_value", "expected_margin", "expected_revenue"]
TIERS: tuple[str, ...] = ("A", "B", "C")
# The summary group of customers without a tier (no history, not scored); their value_tier is null.
NO_TIER = "none"
SCORE_INPUT_COLUMNS: tuple[str, ...] = (
    "customer_id", "p_churn", "expected_revenue", "expected_margin", "cost_to_serve",
    "net_value", "clv", "current_value", "is_new",
)  # fmt: skip
# Margin minus cost to serve over the trailing window as long as the value horizon, from the
# features as of the scoring date: the realised counterpart of the predicted net_value.
TRAILING_NET_VALUE = "trailing_net_value"
NegativeValueEvidence = Literal["trailing_net_value", "prediction_only"]
# The reason of a row left unscored: scoring had nothing to score it on.
NO_HISTORY_REASON = "no transaction before as_of: not scored"
Share = Annotated[float, Field(gt=0, le=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Label(_Frozen):
    """Display label of a class in English and Chinese."""

    en: str
    zh: str


DEFAULT_LABELS: dict[str, Label] = {
    "most_valuable": Label(en="most valuable", zh="最有价值客户"),
    "growth": Label(en="growth", zh="成长客户（二级客户）"),
    "at_risk": Label(en="at risk (churn warning)", zh="流失预警客户"),
    "negative_value": Label(en="negative value", zh="负值客户"),
    "new": Label(en="new", zh="新客户"),
    "regular": Label(en="regular", zh="普通客户"),
}
TIER_LABELS: dict[str, Label] = {
    "A": Label(en="tier A", zh="A类客户"),
    "B": Label(en="tier B", zh="B类客户"),
    "C": Label(en="tier C", zh="C类客户"),
    NO_TIER: Label(en="no tier (no history, not scored)", zh="无等级（无交易记录，未评分）"),
}


class SegmentRules(_Frozen):
    """Thresholds for value tiers and strategy classes (configs/segments.yaml)."""

    value_column: ValueColumn = "clv"  # predicted value used for tiers and "top x%" ranks
    tier_a_cumulative_share: Share = 0.80  # A: customers making up the first 80% of positive value
    tier_b_cumulative_share: Share = 0.95  # B: the next 15%; C: the rest
    order: tuple[SegmentName, ...] = ("new", "negative_value", "at_risk", "most_valuable", "growth", "regular")
    new_max_tenure_days: Annotated[int, Field(ge=0)] = 90  # used when the frame has tenure_days
    negative_value_below: float = 0.0  # net_value below this is negative_value ...
    # ... when the evidence agrees: "trailing_net_value" also needs the realised trailing net
    # value below the same threshold; "prediction_only" takes the predicted net_value alone.
    negative_value_evidence: NegativeValueEvidence = "trailing_net_value"
    at_risk_min_p_churn: Share = 0.5
    at_risk_value_column: Literal["current_value", "clv", "net_value", "expected_revenue"] = "current_value"
    at_risk_top_share: Share = 0.20  # "valuable": at_risk_value_column in the top 20%
    at_risk_min_value: float = 0.0  # ... and at least this much (and always more than 0)
    most_valuable_top_share: Share = 0.05  # value_column in the top 5%
    growth_ratio: Annotated[float, Field(gt=0)] = 1.5  # expected_revenue >= 1.5 x current_value
    growth_top_share: Share = 0.30  # and value_column in the top 30%
    # A customer with no current value passes any ratio; most such customers have lapsed and
    # need winning back, not growing. True lets them be growth when expected_revenue > 0.
    growth_from_zero: bool = False
    labels: dict[SegmentName, Label] = DEFAULT_LABELS

    @model_validator(mode="after")
    def _check(self) -> SegmentRules:
        if self.tier_a_cumulative_share >= self.tier_b_cumulative_share:
            raise ValueError(
                f"tier_a_cumulative_share ({self.tier_a_cumulative_share}) must be below "
                f"tier_b_cumulative_share ({self.tier_b_cumulative_share})"
            )
        if len(set(self.order)) != len(self.order):
            raise ValueError(f"order lists a segment twice: {list(self.order)}")
        if not self.order or self.order[-1] != "regular":
            raise ValueError(f"order must end with 'regular' (the class that takes everyone left), got {list(self.order)}")
        return self

    def label(self, segment: str) -> Label:
        """Return the display label of a segment (configured, else the default)."""
        return self.labels.get(segment) or DEFAULT_LABELS[segment]


# --------------------------------------------------------------------------- value tiers


def value_tiers(values: pd.Series | np.ndarray, a_share: float = 0.80, b_share: float = 0.95, *, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Return tier A/B/C per customer by cumulative share of positive value (Pareto).

    Customers are sorted by value descending (ties by `tiebreak`, e.g. customer_id, so runs
    are reproducible). A = those whose cumulative share *before* them is below a_share (the
    customers making up the first a_share of value), B up to b_share, C the rest; a value
    that is zero, negative or missing is C.
    """
    v = np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)
    positive = np.clip(v, 0.0, None)
    total = math.fsum(positive)  # exactly rounded: the same in any order of the rows
    tiers = np.full(len(v), "C", dtype=object)
    if total <= 0:
        return tiers
    order = np.argsort(-v, kind="stable")
    if tiebreak is not None:
        order = _ties_broken(order, v, np.asarray(tiebreak))
    before = (np.cumsum(positive[order]) - positive[order]) / total
    sorted_tiers = np.where(before < a_share, "A", np.where(before < b_share, "B", "C"))
    sorted_tiers[positive[order] <= 0] = "C"
    tiers[order] = sorted_tiers
    return tiers


def _ties_broken(order: np.ndarray, v: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """`order` (value descending) with runs of equal positive values sorted by `tiebreak`.

    Only positive values need it (the others are all C), and sorting just the tied rows by
    text is much cheaper than sorting every customer by (value, id).
    """
    ranked = v[order]
    tied_next = (ranked[1:] == ranked[:-1]) & (ranked[1:] > 0)
    if not tied_next.any():
        return order
    in_run = np.zeros(len(order), dtype=bool)
    in_run[1:] |= tied_next
    in_run[:-1] |= tied_next
    run_id = np.cumsum(np.concatenate([[True], ~tied_next]))  # same id along each run of equal values
    at = np.nonzero(in_run)[0]
    within = pd.DataFrame({"run": run_id[at], "t": tiebreak[order[at]]}).sort_values(["run", "t"], kind="stable").index.to_numpy()
    out = order.copy()
    out[at] = order[at[within]]
    return out


def top_share(values: pd.Series | np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Return each customer's rank as a share of all customers from the top: 0.01 = in the top 1%.

    Positive values are ranked one customer at a time (equal values ordered by `tiebreak`,
    e.g. customer_id), so at most x% of the customers have a share <= x. Zero, negative and
    missing values come after every positive one and share the best rank of their tie
    (missing last): they are never selected, and their texts do not depend on the row order.
    """
    v = np.asarray(values, dtype=float)
    n = max(len(v), 1)
    share = pd.Series(v).rank(ascending=False, method="min", na_option="bottom").to_numpy() / n
    positive = v > 0
    if positive.any():
        order = np.argsort(-v, kind="stable")
        if tiebreak is not None:
            order = _ties_broken(order, v, np.asarray(tiebreak))
        position = np.empty(len(v), dtype=float)
        position[order] = np.arange(1, len(v) + 1)
        share[positive] = position[positive] / n
    return share


def in_top(values: np.ndarray, share: np.ndarray, top: float) -> np.ndarray:
    """True where a strictly positive value ranks within the top `top` share of customers."""
    with np.errstate(invalid="ignore"):
        return (values > 0) & (share <= top)


# --------------------------------------------------------------------------- strategy classes


def assign_segments(scores: pd.DataFrame, rules: SegmentRules) -> pd.DataFrame:
    """Return `scores` with value_tier, segment, segment_label_en, segment_label_zh, segment_reason."""
    _check_input(scores, rules)
    out = scores.copy()
    value = out[rules.value_column].to_numpy(dtype=float)
    ids = out["customer_id"].astype(str).to_numpy()
    out["value_tier"] = _tiers_of_scored(value, _without_history(out), rules, ids)
    tests = _segment_tests(out, rules)
    chosen = np.full(len(out), -1, dtype=np.int64)
    for position, name in enumerate(rules.order):  # first match wins
        chosen[(chosen < 0) & tests[name][0]] = position
    names = np.array(rules.order, dtype=object)
    reasons = _chosen_reasons(chosen, [tests[name][1] for name in rules.order])
    out["segment"] = names[chosen]
    out["segment_label_en"] = np.array([rules.label(s).en for s in rules.order], dtype=object)[chosen]
    out["segment_label_zh"] = np.array([rules.label(s).zh for s in rules.order], dtype=object)[chosen]
    out["segment_reason"] = reasons.to_pandas().set_axis(out.index)
    return out


def _without_history(scores: pd.DataFrame) -> np.ndarray:
    """True for the rows scoring left unscored (`is_new`: no transaction line before as_of)."""
    return scores["is_new"].fillna(False).to_numpy(dtype=bool)


def _tiers_of_scored(value: np.ndarray, unscored: np.ndarray, rules: SegmentRules, ids: np.ndarray) -> np.ndarray:
    """Value tiers cut over the scored customers only; a customer without history has none (null).

    A prospect has no predicted value to rank: calling it C would tell a reader it was judged
    of little value, and any value it is given later must not move the cut-offs of the others.
    """
    tiers = np.full(len(value), None, dtype=object)
    scored = ~unscored
    tiers[scored] = value_tiers(value[scored], rules.tier_a_cumulative_share, rules.tier_b_cumulative_share,
                                tiebreak=ids[scored])
    return tiers


def _check_input(scores: pd.DataFrame, rules: SegmentRules) -> None:
    needed = set(SCORE_INPUT_COLUMNS) | {rules.value_column, rules.at_risk_value_column}
    if rules.negative_value_evidence == TRAILING_NET_VALUE:
        needed.add(TRAILING_NET_VALUE)
    missing = sorted(needed - set(scores.columns))
    if missing:
        raise ValueError(
            f"assign_segments: score frame lacks column(s) {missing}; it needs {sorted(needed)} "
            f"(current_value = trailing revenue over the same horizon as expected_revenue; {TRAILING_NET_VALUE} = trailing "
            "margin minus cost to serve over that horizon, needed by negative_value_evidence: trailing_net_value)"
        )
    if scores["customer_id"].duplicated().any():
        dup = scores.loc[scores["customer_id"].duplicated(), "customer_id"].head(3).tolist()
        raise ValueError(f"assign_segments: customer_id values occur more than once, e.g. {dup}; segment one row per customer")


def _money(x: np.ndarray) -> pa.DictionaryArray:
    """Money to three significant figures; an amount under 1 keeps its digits ("net_value -0.3 < 0", not "-0")."""
    return _texts(round_sig3(np.asarray(x, dtype=float)),
                  lambda u: f"{u:,.0f}" if abs(u) >= 1 or u == 0 else f"{u:g}")


def _fmt(x: np.ndarray, decimals: int = 0) -> pa.DictionaryArray:
    """Format numbers with thousands separators (`decimals` after the point)."""
    return _texts(np.round(np.asarray(x, dtype=float), decimals), lambda u: f"{u:,.{decimals}f}")


def _pct(share: np.ndarray) -> pa.DictionaryArray:
    """Format shares as percentages with at most one decimal ('0.3%')."""
    return _texts(np.round(np.asarray(share, dtype=float) * 100, 1), lambda u: f"{u:g}%")


def _texts(values: np.ndarray, text_of: Callable[[float], str]) -> pa.DictionaryArray:
    """The text of each value, formatted once per distinct value (dictionary-encoded), "n/a" for NaN.

    Adding 0.0 turns -0.0 into 0.0: factorize takes them for one value, and the text must not
    depend on which of the two comes first (scoring streams customers in no fixed order).
    """
    codes, uniques = pd.factorize(values + 0.0, use_na_sentinel=False)
    text = ["n/a" if np.isnan(u) else text_of(u) for u in uniques]
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), pa.array(text, type=pa.string()))


class _Shown:
    """Whole columns formatted on first use; `at(key, i)` gives the texts of rows i."""

    def __init__(self, makers: dict[str, Callable[[], pa.DictionaryArray]]) -> None:
        self._makers = makers
        self._done: dict[str, pa.DictionaryArray] = {}

    def at(self, key: str, rows: np.ndarray) -> pa.Array:
        if key not in self._done:
            self._done[key] = self._makers[key]()
        return self._done[key].take(pa.array(rows, type=pa.int64())).dictionary_decode()


def _share_text(share: float) -> str:
    return f"{share * 100:g}%"


def _cat(*pieces: pa.Array | str) -> pa.Array:
    """Concatenate text arrays and constants element-wise (Arrow kernel, no per-row Python)."""
    return pc.binary_join_element_wise(*pieces, "")


def _where(mask: np.ndarray, yes: pa.Array | str, no: pa.Array | str) -> pa.Array:
    return pc.if_else(pa.array(mask, type=pa.bool_()), yes, no)


def _chosen_reasons(chosen: np.ndarray, reason_of: list[Callable[[np.ndarray], pa.Array]]) -> pa.Array:
    """The reason text of each row's chosen class, written only for the rows that chose it."""
    by_class = np.argsort(chosen, kind="stable")
    bounds = np.searchsorted(chosen[by_class], np.arange(len(reason_of) + 1))
    texts = [reason_of[c](by_class[lo:hi]) for c, (lo, hi) in enumerate(itertools.pairwise(bounds))]
    back = np.empty(len(chosen), dtype=np.int64)
    back[by_class] = np.arange(len(chosen))
    return pa.concat_arrays([t.cast(pa.string()) for t in texts]).take(pa.array(back))


def _segment_tests(df: pd.DataFrame, rules: SegmentRules) -> dict[str, tuple[np.ndarray, Callable[[np.ndarray], pa.Array]]]:
    """For each class: (matches over all rows, reason text of the rows at given positions).

    Texts are written only for the rows a class is chosen for: formatting six texts for
    every customer and keeping one cost most of segmentation.
    """
    n = len(df)
    vcol = rules.value_column
    ids = df["customer_id"].astype(str).to_numpy()
    value = df[vcol].to_numpy(dtype=float)
    value_top = top_share(value, ids)
    p = df["p_churn"].to_numpy(dtype=float)
    net = df["net_value"].to_numpy(dtype=float)
    current = df["current_value"].to_numpy(dtype=float)
    expected = df["expected_revenue"].to_numpy(dtype=float)
    risk_col = rules.at_risk_value_column
    risk_value = df[risk_col].to_numpy(dtype=float)
    risk_top = top_share(risk_value, ids)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(current > 0, expected / current, np.inf)
    tenure = df["tenure_days"].to_numpy(dtype=float) if "tenure_days" in df.columns else None
    trailing = df[TRAILING_NET_VALUE].to_numpy(dtype=float) if TRAILING_NET_VALUE in df.columns else np.full(n, np.nan)
    shown = _Shown({
        "value": lambda: _money(value), "value_top": lambda: _pct(value_top), "p": lambda: _fmt(p, 2),
        "tenure": lambda: _fmt(tenure), "net": lambda: _money(net), "risk_value": lambda: _money(risk_value),
        "risk_top": lambda: _pct(risk_top), "ratio": lambda: _fmt(np.where(np.isfinite(ratio), ratio, 0), 1),
        "expected": lambda: _money(expected), "current": lambda: _money(current), "trailing": lambda: _money(trailing),
    })  # fmt: skip

    def value_txt(i: np.ndarray) -> pa.Array:
        return _cat(f"{vcol} ", shown.at("value", i), " in top ", shown.at("value_top", i))

    def p_txt(i: np.ndarray) -> pa.Array:
        return _cat("p_churn ", shown.at("p", i))

    tests: dict[str, tuple[np.ndarray, Callable[[np.ndarray], pa.Array]]] = {}
    # is_new marks the rows scoring left unscored: no transaction line before as_of.
    no_history = _without_history(df)
    is_new = no_history
    if tenure is not None:
        is_new = no_history | (tenure < rules.new_max_tenure_days)

    def new_why(i: np.ndarray) -> pa.Array:
        if tenure is None:
            return _where(no_history[i], NO_HISTORY_REASON, "")
        return _where(no_history[i], NO_HISTORY_REASON, _cat("tenure ", shown.at("tenure", i), f" days < {rules.new_max_tenure_days}"))

    tests["new"] = (is_new, new_why)

    below = f" < {rules.negative_value_below:,g}"
    with np.errstate(invalid="ignore"):
        neg = net < rules.negative_value_below
        if rules.negative_value_evidence == TRAILING_NET_VALUE:
            # A prediction alone is not evidence that a customer loses money: the last horizon must show it too.
            neg &= trailing < rules.negative_value_below

    def negative_why(i: np.ndarray) -> pa.Array:
        predicted = _cat("net_value ", shown.at("net", i), below)
        if rules.negative_value_evidence != TRAILING_NET_VALUE:
            return predicted
        return _cat(predicted, f"; {TRAILING_NET_VALUE} ", shown.at("trailing", i), below)

    tests["negative_value"] = (neg, negative_why)

    with np.errstate(invalid="ignore"):
        at_risk = ((p >= rules.at_risk_min_p_churn) & in_top(risk_value, risk_top, rules.at_risk_top_share)
                   & (risk_value >= rules.at_risk_min_value))

    def at_risk_why(i: np.ndarray) -> pa.Array:
        risk_txt = _cat(f"{risk_col} ", shown.at("risk_value", i), " in top ", shown.at("risk_top", i), f" (<= {_share_text(rules.at_risk_top_share)}); ")
        return _cat(risk_txt, p_txt(i), f" >= {rules.at_risk_min_p_churn:g}")

    tests["at_risk"] = (at_risk, at_risk_why)

    top = in_top(value, value_top, rules.most_valuable_top_share)
    tests["most_valuable"] = (top, lambda i: _cat(value_txt(i), f" (<= {_share_text(rules.most_valuable_top_share)})"))

    with np.errstate(invalid="ignore"):
        growth = ((expected >= rules.growth_ratio * np.clip(current, 0, None)) & (expected > 0)
                  & ((current > 0) | rules.growth_from_zero) & in_top(value, value_top, rules.growth_top_share))

    def growth_why(i: np.ndarray) -> pa.Array:
        r = ratio[i]
        ratio_txt = _where(np.isfinite(r), _cat("(", shown.at("ratio", i), f"x >= {rules.growth_ratio:g}x)"), "(up from zero)")
        return _cat(
            "expected_revenue ", shown.at("expected", i), " vs current_value ", shown.at("current", i), " ", ratio_txt,
            "; ", value_txt(i), f" (<= {_share_text(rules.growth_top_share)})",
        )  # fmt: skip

    tests["growth"] = (growth, growth_why)

    tests["regular"] = (np.ones(n, dtype=bool), lambda i: _cat("no other class matched: ", value_txt(i), "; ", p_txt(i)))
    return tests


# --------------------------------------------------------------------------- summary


def segment_summary(scored: pd.DataFrame, rules: SegmentRules | None = None) -> pd.DataFrame:
    """Per segment and per value tier: customers, their shares of customers, current and predicted value, mean p_churn.

    Shares are of plain sums (a negative predicted value lowers its group's share), so each
    share column sums to 1 over the segments and again over the tiers. Every class and
    tier appears, with zeros where nobody falls in it; customers without a tier (no history)
    form the group NO_TIER when there are any. Columns: serving.score_table.SUMMARY_COLUMNS minus run_id.
    """
    rules = rules or SegmentRules()
    missing = sorted({"segment", "value_tier", "p_churn", "current_value", rules.value_column} - set(scored.columns))
    if missing:
        raise ValueError(f"segment_summary: scored frame lacks column(s) {missing}; run assign_segments first")
    by_segment = _summarise(scored, "segment", list(rules.order), {s: rules.label(s) for s in SEGMENTS}, rules.value_column)
    with_tier_group = scored.assign(value_tier=scored["value_tier"].fillna(NO_TIER))
    by_tier = _summarise(with_tier_group, "value_tier", list(TIERS), TIER_LABELS, rules.value_column)
    return pd.concat([by_segment, by_tier], ignore_index=True)


def _summarise(scored: pd.DataFrame, column: str, groups: list[str], labels: dict[str, Label], value_column: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "group": scored[column].astype(str).to_numpy(),
            "current_value": scored["current_value"].to_numpy(dtype=float),
            "predicted_value": scored[value_column].to_numpy(dtype=float),
            "p_churn": scored["p_churn"].to_numpy(dtype=float),
        }
    )
    # Exactly rounded sums: the summary is the same in any order of the rows (scoring streams
    # customers in no fixed order).
    agg = frame.groupby("group").agg(
        customers=("group", "size"),
        current_value=("current_value", _exact_sum),
        predicted_value=("predicted_value", _exact_sum),
        mean_p_churn=("p_churn", _exact_mean),
    )
    order = groups + sorted(set(agg.index) - set(groups))
    agg = agg.reindex(order)
    agg["customers"] = agg["customers"].fillna(0).astype("int64")
    agg[["current_value", "predicted_value"]] = agg[["current_value", "predicted_value"]].fillna(0.0)
    out = agg.reset_index()
    out.insert(0, "group_by", column)
    out["label_en"] = [labels[g].en if g in labels else g for g in out["group"]]
    out["label_zh"] = [labels[g].zh if g in labels else g for g in out["group"]]
    out["share_customers"] = _share(out["customers"].to_numpy(dtype=float))
    out["share_current_value"] = _share(out["current_value"].to_numpy())
    out["share_predicted_value"] = _share(out["predicted_value"].to_numpy())
    return out[
        ["group_by", "group", "label_en", "label_zh", "customers", "share_customers", "current_value",
         "share_current_value", "predicted_value", "share_predicted_value", "mean_p_churn"]
    ]  # fmt: skip


def _exact_sum(values: pd.Series) -> float:
    """Exactly rounded sum of the non-missing values (0 when there are none), like pandas' sum."""
    return math.fsum(values.dropna())


def _exact_mean(values: pd.Series) -> float:
    """Mean of the non-missing values with an exactly rounded sum (NaN when there are none)."""
    present = values.dropna()
    return math.fsum(present) / len(present) if len(present) else float("nan")


def _share(x: np.ndarray) -> np.ndarray:
    total = math.fsum(x)
    return x / total if total != 0 else np.full(len(x), np.nan)
