"""The key-account scorecard: five dimensions scored 0-100, weighted, graded key / regular / potential.

The method judges a customer on value, loyalty and stability, growth, credit and cost to serve
(docs/METHOD.md) and sorts accounts into key 重点, regular 普通 and potential 潜在. Each
dimension reads one or more measures of the run (the score table's numbers and a few feature
columns as of the run's date, captured as the feature chunks pass); every measure is scored by
its percentile rank among the customers of the run that have it, a dimension is the mean of its
measures' scores, and the weighted score is the weights' average over the dimensions the
customer has data for (the weights of the others are spread over the rest). Grades follow from
thresholds on that score; a sentence per customer, in English and Chinese, names the dimensions
that decided the grade and those left out for lack of data. docs/SCORECARD.md has the rules.

Pure pandas/numpy: the configuration arrives as `ScorecardRules`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

DIMENSIONS: tuple[str, ...] = ("value", "loyalty", "growth", "credit", "cost_to_serve")
GRADES: tuple[str, ...] = ("key", "regular", "potential")
TABLE_NAME = "account_grades"
Score = Annotated[float, Field(ge=0, le=100)]
Weight = Annotated[float, Field(ge=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DimensionWeights(_Frozen):
    """How much each dimension counts; only their ratios matter (they are divided by their sum)."""

    value: Weight = 0.30
    loyalty: Weight = 0.20
    growth: Weight = 0.15
    credit: Weight = 0.20
    cost_to_serve: Weight = 0.15

    @model_validator(mode="after")
    def _some_weight(self) -> DimensionWeights:
        if not any(getattr(self, d) > 0 for d in DIMENSIONS):
            raise ValueError("every weight is 0: give at least one dimension (value, loyalty, growth, credit, "
                             "cost_to_serve) a positive weight")
        return self


class GradeThresholds(_Frozen):
    """Weighted score (0-100) from which an account is key, and from which it is regular; below: potential."""

    key: Score = 70.0
    regular: Score = 40.0

    @model_validator(mode="after")
    def _ordered(self) -> GradeThresholds:
        if not self.key > self.regular:
            raise ValueError(f"key ({self.key:g}) must be above regular ({self.regular:g}): a key account scores "
                             "higher than a regular one; swap or change them")
        return self


class ScorecardRules(_Frozen):
    weights: DimensionWeights = DimensionWeights()
    thresholds: GradeThresholds = GradeThresholds()
    # Dimensions a key or potential account's sentence names (a regular one names its strongest and weakest).
    deciding_dimensions: Annotated[int, Field(ge=1, le=len(DIMENSIONS))] = 2


@dataclass(frozen=True)
class Measure:
    column: str
    higher_is_better: bool


# What each dimension reads. A measure whose column a run lacks (no invoices table, no payment
# risk model yet) is skipped; a dimension none of whose measures a customer has is left out of
# that customer's weighted score. `p_pay_late` counts as soon as a run's score table carries it.
MEASURES: dict[str, tuple[Measure, ...]] = {
    "value": (Measure("clv", True),),
    "loyalty": (Measure("tenure_days", True), Measure("order_days_lifetime", True), Measure("repurchase_rate", True)),
    "growth": (Measure("growth_ratio", True),),
    "credit": (Measure("collection_rate", True), Measure("invoice_on_time_rate", True), Measure("p_pay_late", False)),
    "cost_to_serve": (Measure("cost_to_serve_share", False),),
}
LABELS_EN = {"value": "value", "loyalty": "loyalty", "growth": "growth", "credit": "credit",
             "cost_to_serve": "cost to serve"}
LABELS_ZH = {"value": "价值", "loyalty": "忠诚度", "growth": "成长性", "credit": "信用", "cost_to_serve": "服务成本"}
GRADE_EN = {"key": "key account", "regular": "regular account", "potential": "potential account"}
GRADE_ZH = {"key": "重点客户", "regular": "普通客户", "potential": "潜在客户"}
ACCOUNT_GRADE_COLUMNS: tuple[str, ...] = (
    "customer_id", *(f"{d}_score" for d in DIMENSIONS), "weighted_score", "account_grade", "sentence_en", "sentence_zh",
)
ACCOUNT_GRADES_SCHEMA = pa.schema([("customer_id", pa.string()), *((f"{d}_score", pa.float64()) for d in DIMENSIONS),
                                   ("weighted_score", pa.float64()), ("account_grade", pa.string()),
                                   ("sentence_en", pa.string()), ("sentence_zh", pa.string())])
# Feature columns the scorecard reads, captured from each chunk; payments: the longest window built.
_LIFETIME_FEATURES = ("order_days_lifetime",)
_WINDOWED = {"collection_rate": re.compile(r"^collection_rate_(\d+)d$"),
             "invoice_on_time_rate": re.compile(r"^invoice_on_time_rate_(\d+)d$")}
_DAYS_PER_MONTH = 365.25 / 12


def read_account_grades(sink, run_id: str | None = None, as_of=None, grade: str | None = None) -> pd.DataFrame | None:
    """A published run's account grades (default: the latest run), one grade or all, highest weighted score first.

    `sink` is a serving.sink.ScoreSink; None when the run was published without the scorecard.
    """
    card = sink.read_table(TABLE_NAME, run_id=run_id, as_of=as_of)
    if card is None:
        return None
    if grade is not None:
        card = card.loc[card["account_grade"] == grade]
    return card.sort_values(["weighted_score", "customer_id"], ascending=[False, True], na_position="last").reset_index(drop=True)


def scorecard_features(chunk: pd.DataFrame) -> pd.DataFrame:
    """customer_id and the feature columns the scorecard reads, of the chunk's customers with an order.

    Payment measures come from the longest window the run builds: credit is judged on the
    fullest payment record the features hold.
    """
    with_history = chunk["days_since_first_order"].notna() if "days_since_first_order" in chunk else slice(None)
    columns = {"customer_id": "customer_id"} | {c: c for c in _LIFETIME_FEATURES if c in chunk}
    for name, pattern in _WINDOWED.items():
        windows = [(int(m.group(1)), c) for c in chunk.columns if (m := pattern.match(c))]
        if windows:
            columns[max(windows)[1]] = name
    return chunk.loc[with_history, list(columns)].rename(columns=columns).reset_index(drop=True)


def capturing_scorecard_features(chunks: Iterable[pd.DataFrame], into: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The chunks unchanged; the scorecard's feature columns of each appended to `into`."""
    for chunk in chunks:
        into.append(scorecard_features(chunk))
        yield chunk


def account_grades_table(numbers: pd.DataFrame, captured: list[pd.DataFrame], rules: ScorecardRules) -> pa.Table:
    """The run's `account_grades` table from its numbers and the captured feature columns."""
    features = pd.concat(captured, ignore_index=True) if captured else pd.DataFrame({"customer_id": []})
    return pa.Table.from_pandas(account_grades(scorecard_inputs(numbers, features), rules), schema=ACCOUNT_GRADES_SCHEMA,
                                preserve_index=False)


def scorecard_inputs(numbers: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """One row per customer with an order: the score table's numbers beside the features, and the derived measures.

    Customers without any transaction (`is_new`) have nothing to grade yet and are left out.
    """
    scored = numbers.loc[~numbers["is_new"].astype(bool)] if "is_new" in numbers else numbers
    extra = [c for c in features.columns if c != "customer_id" and c not in scored.columns]
    frame = scored.merge(features[["customer_id", *extra]], on="customer_id", how="left") if extra else scored.copy()
    return with_derived_measures(frame.reset_index(drop=True))


def with_derived_measures(frame: pd.DataFrame) -> pd.DataFrame:
    """growth_ratio, cost_to_serve_share and repurchase_rate, each missing where it has no sensible value."""
    out = frame.copy()
    if {"expected_revenue", "current_value"} <= set(out.columns):
        current = out["current_value"].to_numpy(dtype=float)
        # No revenue in the trailing horizon: nothing to grow from, so growth is left out, not infinite.
        out["growth_ratio"] = np.where(current > 0, out["expected_revenue"].to_numpy(dtype=float) / np.where(current > 0, current, 1), np.nan)
    if {"cost_to_serve", "expected_revenue"} <= set(out.columns):
        revenue = out["expected_revenue"].to_numpy(dtype=float)
        out["cost_to_serve_share"] = np.where(revenue > 0, out["cost_to_serve"].to_numpy(dtype=float) / np.where(revenue > 0, revenue, 1), np.nan)
    if {"order_days_lifetime", "tenure_days"} <= set(out.columns):
        months = np.maximum(out["tenure_days"].to_numpy(dtype=float) / _DAYS_PER_MONTH, 1.0)
        # Order days after the first, per month of tenure: how often the customer came back.
        out["repurchase_rate"] = (out["order_days_lifetime"].to_numpy(dtype=float) - 1.0) / months
    return out


def percentile_scores(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """0-100 by rank among the customers that have a value: lowest 0, highest 100, evenly between.

    Ties share the mean of the ranks they span; a missing value stays missing; a lone value,
    with no one to compare it with, scores 50.
    """
    v = pd.Series(values, dtype=float)
    present = v.notna()
    n = int(present.sum())
    out = pd.Series(np.nan, index=v.index)
    if n == 1:
        out[present] = 50.0
    elif n > 1:
        ranks = v[present].rank(method="average").to_numpy()
        out[present] = 100.0 * (ranks - 1.0) / (n - 1.0)
    return out if higher_is_better else 100.0 - out


def dimension_scores(inputs: pd.DataFrame) -> pd.DataFrame:
    """<dimension>_score per customer: the mean of its measures' percentile scores (missing when it has none)."""
    scores = {}
    for dimension, measures in MEASURES.items():
        parts = [percentile_scores(inputs[m.column], m.higher_is_better) for m in measures if m.column in inputs]
        scores[f"{dimension}_score"] = (pd.concat(parts, axis=1).mean(axis=1, skipna=True) if parts
                                        else pd.Series(np.nan, index=inputs.index))
    return pd.DataFrame(scores, index=inputs.index)


def weighted_scores(scores: pd.DataFrame, weights: DimensionWeights) -> pd.Series:
    """The weights' average of the dimensions each customer has; missing when no weighted dimension has data."""
    s = scores[[f"{d}_score" for d in DIMENSIONS]].to_numpy(dtype=float)
    w = np.array([getattr(weights, d) for d in DIMENSIONS])
    present = ~np.isnan(s)
    total = (present * w).sum(axis=1)
    summed = np.where(present, s, 0.0) @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.Series(np.where(total > 0, summed / np.where(total > 0, total, 1), np.nan), index=scores.index)


def grades(weighted: pd.Series, thresholds: GradeThresholds) -> pd.Series:
    """key from the key threshold, regular from the regular one, potential below; None where ungraded."""
    w = weighted.to_numpy(dtype=float)
    grade = np.where(w >= thresholds.key, "key", np.where(w >= thresholds.regular, "regular", "potential")).astype(object)
    grade[np.isnan(w)] = None
    return pd.Series(grade, index=weighted.index)


def deciding_orders(scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer, dimensions (indices into DIMENSIONS) by how much they lift, and by how much they hold back.

    A dimension lifts the weighted score by weight x score and holds it back by weight x (100 -
    score): what it adds to it, and what it keeps from it. Only dimensions with data and a
    positive weight take part; the third array counts them per customer. Ties go to the
    dimension listed first in DIMENSIONS.
    """
    usable = ~np.isnan(scores) & (weights > 0)
    lift = np.where(usable, weights * scores, -np.inf)
    hold = np.where(usable, weights * (100.0 - scores), -np.inf)
    return (np.argsort(-lift, axis=1, kind="stable"), np.argsort(-hold, axis=1, kind="stable"),
            usable.sum(axis=1))


def account_grades(inputs: pd.DataFrame, rules: ScorecardRules) -> pd.DataFrame:
    """The scorecard of every customer in `inputs` (scorecard_inputs): ACCOUNT_GRADE_COLUMNS."""
    scores = dimension_scores(inputs)
    weighted = weighted_scores(scores, rules.weights)
    grade = grades(weighted, rules.thresholds)
    en, zh = sentences(scores, weighted, grade, rules)
    out = pd.DataFrame({"customer_id": inputs["customer_id"].astype(str).to_numpy()})
    for column in scores.columns:
        out[column] = scores[column].to_numpy(dtype=float)
    out["weighted_score"] = weighted.to_numpy(dtype=float)
    out["account_grade"] = grade.to_numpy()
    out["sentence_en"] = pd.Series(en, dtype=pd.ArrowDtype(pa.string()))
    out["sentence_zh"] = pd.Series(zh, dtype=pd.ArrowDtype(pa.string()))
    return out[list(ACCOUNT_GRADE_COLUMNS)]


# Sentences are built this many customers at a time: the intermediate texts of a million at
# once took 0.8 GB more memory than the finished sentences.
SENTENCE_BLOCK_ROWS = 100_000


def sentences(scores: pd.DataFrame, weighted: pd.Series, grade: pd.Series, rules: ScorecardRules) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """Per customer, in English and Chinese: the grade, its score and threshold, the deciding dimensions, what was left out.

    A key account names the `deciding_dimensions` that lift most, a potential account those
    that hold back most, a regular account the one that lifts most and the one that holds back
    most. Built column-wise in Arrow from looked-up pieces, a block of customers at a time:
    every run grades all its customers, and a million sentences as Python strings would cost a
    gigabyte more.
    """
    s = scores[[f"{d}_score" for d in DIMENSIONS]].to_numpy(dtype=float)
    w = np.array([getattr(rules.weights, d) for d in DIMENSIONS])
    g = grade.to_numpy(dtype=object)
    total = weighted.to_numpy(dtype=float)
    languages = [(_words_en(rules.thresholds), LABELS_EN), (_words_zh(rules.thresholds), LABELS_ZH)]
    blocks = [_sentence_block(s[i:i + SENTENCE_BLOCK_ROWS], w, g[i:i + SENTENCE_BLOCK_ROWS], total[i:i + SENTENCE_BLOCK_ROWS],
                              rules.deciding_dimensions, languages)
              for i in range(0, len(s), SENTENCE_BLOCK_ROWS)]
    return (pa.chunked_array([b[0] for b in blocks], pa.string()), pa.chunked_array([b[1] for b in blocks], pa.string()))


def _sentence_block(s: np.ndarray, w: np.ndarray, g: np.ndarray, total: np.ndarray, deciding: int,
                    languages: list[tuple[dict, dict]]) -> list[pa.Array]:
    """The sentences of a block of customers, one array per language."""
    code = np.select([np.asarray(g == x, dtype=bool) for x in GRADES], list(range(len(GRADES))), -1)
    lift, hold, usable = deciding_orders(s, w)
    n = np.minimum(usable, deciding)
    one = np.minimum(usable, 1)
    shown = pa.array(_NUMBERS).take(np.clip(np.floor(np.nan_to_num(total)), 0, 100).astype(int))
    dim_int = np.clip(np.rint(np.nan_to_num(s)), 0, 100).astype(int)
    missing_code = ((np.isnan(s) & (w > 0)) * (1 << np.arange(len(DIMENSIONS)))).sum(axis=1)
    # A regular account's weakest is named unless it is also its strongest (a single dimension with data).
    other_hold = pa.array(hold[:, 0] != lift[:, 0])
    is_key, is_potential = pa.array(code == 0), pa.array(code == 2)
    out = []
    for words, labels in languages:
        pieces = pa.array([f"{labels[d]} {v}" for d in DIMENSIONS for v in range(101)])
        regular = _joined(_named(lift, one, dim_int, pieces, words["sep"]), words["lifted_end"],
                          pc.if_else(other_hold, _joined(words["held_then"], _named(hold, one, dim_int, pieces, words["sep"]),
                                                         words["held_then_end"]), words["end"]))
        body = pc.if_else(is_key, _joined(_named(lift, n, dim_int, pieces, words["sep"]), words["key_end"]),
                          pc.if_else(is_potential, _joined(_named(hold, n, dim_int, pieces, words["sep"]), words["potential_end"]),
                                     regular))
        graded = np.maximum(code, 0)
        text = _joined(pa.array([words["head"][x] for x in GRADES]).take(graded), shown,
                       pa.array([words["mid"][x] for x in GRADES]).take(graded), body, words["missing"].take(missing_code))
        out.append(pc.if_else(pa.array(code < 0), words["ungraded"], text))
    return out


_NUMBERS = [str(i) for i in range(101)]


def shown_score(total: float) -> str:
    """The weighted score cut to whole points, never rounded up past a threshold it did not reach (69.6 shows 69)."""
    return f"{math.floor(total):d}"


def _joined(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _named(order: np.ndarray, count: np.ndarray, dim_int: np.ndarray, pieces: pa.Array, sep: str) -> pa.Array:
    """The first `count` dimensions of each row's `order` as "label score", joined by `sep`.

    `pieces[d * 101 + v]` is the text of dimension d at score v: looked up, not formatted, per row.
    """
    rows = np.arange(len(order))

    def piece(k: int) -> pa.Array:
        return pieces.take(order[:, k] * 101 + dim_int[rows, order[:, k]])

    out = pc.if_else(pa.array(count >= 1), piece(0), "")
    for k in range(1, order.shape[1]):
        if not (count > k).any():
            break
        out = pc.if_else(pa.array(count > k), pc.binary_join_element_wise(out, piece(k), sep), out)
    return out


def _missing_texts(labels: dict[str, str], head: str, sep: str, tail: str) -> np.ndarray:
    """The left-out clause of each combination of missing dimensions (bit i: DIMENSIONS[i])."""
    texts = []
    for code in range(1 << len(DIMENSIONS)):
        names = [labels[d] for i, d in enumerate(DIMENSIONS) if code >> i & 1]
        texts.append(f"{head}{sep.join(names)}{tail}" if names else "")
    return pa.array(texts)


def _words_en(t: GradeThresholds) -> dict:
    return {
        "head": {g: f"{GRADE_EN[g]} (score " for g in GRADES},
        "mid": {"key": f" of 100; key from {t.key:g}): decided by ",
                "regular": f" of 100; regular from {t.regular:g}, key from {t.key:g}): lifted by ",
                "potential": f" of 100; regular from {t.regular:g}): held back by "},
        "sep": " and ", "key_end": ".", "potential_end": ".", "lifted_end": "", "held_then": ", held back by ",
        "held_then_end": ".", "end": ".",
        "missing": _missing_texts(LABELS_EN, " Left out for lack of data: ", ", ", " (the other weights count in full)."),
        "ungraded": "not graded: none of the weighted dimensions has data for this customer.",
    }


def _words_zh(t: GradeThresholds) -> dict:
    return {
        "head": {g: f"{GRADE_ZH[g]}（综合得分 " for g in GRADES},
        "mid": {"key": f"/100；{t.key:g} 分起为重点）：主要因为",
                "regular": f"/100；{t.regular:g} 分起为普通，{t.key:g} 分起为重点）：",
                "potential": f"/100；{t.regular:g} 分起为普通）：主要受"},
        "sep": "、", "key_end": "。", "potential_end": " 拖累。", "lifted_end": " 拉高", "held_then": "，",
        "held_then_end": " 拉低。", "end": "。",
        "missing": _missing_texts(LABELS_ZH, "无数据未计入：", "、", "（权重按其余维度重新分配）。"),
        "ungraded": "未评级：该客户的各加权维度均无数据。",
    }
