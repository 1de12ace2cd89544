"""Prospect scores: `p_first_order`, `prospect_value` and their reasons, and the prospects that join the scorecard.

A run's prospects (customers without any transaction before the as-of date) are scored by the
prospect champion into the run's `prospects` table (PROSPECT_SCHEMA): the chance of a first
order within the churn horizon, what the customer would be worth over the value horizon if it
buys, their product `expected_value`, and the reasons for p_first_order from exact TreeSHAP in
English and Chinese (the attribute and contact wording of features/catalog.py). The prospects
whose expected value reaches the potential threshold (`PotentialRule`) join the run's
`account_grades` as `potential` accounts, with a sentence saying why.

Pure pandas/numpy/pyarrow: the configuration arrives as `ProspectRules`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from features.families.wording import money, whole
from models.explain import check_additivity, contributions
from models.reason_reference import actionable
from serving.prospect_rules import PotentialRule
from serving.reasons import decode_dictionaries, reasons_table
from serving.scorecard import ACCOUNT_GRADES_SCHEMA, DIMENSIONS

TABLE_NAME = "prospects"
SCORE = "prospect"
PROSPECT_SCHEMA = pa.schema([
    ("customer_id", pa.string()),
    ("prospect_model_version", pa.string()),
    ("days_since_signup", pa.float64()),
    ("p_first_order", pa.float64()),
    ("prospect_value", pa.float64()),
    ("expected_value", pa.float64()),
    ("potential", pa.bool_()),
    ("reasons", pa.string()),  # JSON: [{direction, rank, feature, value, contribution}]
    ("reason_text_en", pa.string()),
    ("reason_text_zh", pa.string()),
])


class ProspectRules(BaseModel):
    """How a run scores and explains its prospects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    potential: PotentialRule = PotentialRule()
    # Reasons per direction: as many as the churn and value scores show.
    reasons_per_direction: Annotated[int, Field(ge=1, le=10)] = 3
    churn_horizon_days: Annotated[int, Field(gt=0)] = 90
    value_horizon_days: Annotated[int, Field(gt=0)] = 365
    additivity_atol: Annotated[float, Field(gt=0)] = 1e-6


def potential_threshold(expected_value: np.ndarray, rule: PotentialRule) -> float:
    """The expected value from which a prospect is `potential` (infinite when there is no prospect)."""
    if rule.min_expected_value is not None:
        return float(rule.min_expected_value)
    values = np.asarray(expected_value, dtype=float)
    if len(values) == 0:
        return float("inf")
    return float(np.quantile(values, 1.0 - rule.top_share, method="higher"))


def explained_reasons(model: Any, X: pd.DataFrame, k: int, atol: float) -> pd.DataFrame:
    """The long reasons table of p_first_order (raising and lowering), additivity checked against the booster."""
    names = list(model.feature_names_)
    contrib = contributions(model.booster_, X[names])
    check_additivity(contrib, model.predict_raw(X[names]), atol=atol * max(1.0, float(np.abs(contrib).max(initial=0.0))))
    table = reasons_table(actionable(contrib, X[names]), X[names], names, score=SCORE, k=k, distinct_facts=True)
    return decode_dictionaries(table).to_pandas()


def reason_texts(reasons: pd.DataFrame, n_rows: int) -> tuple[list[str], list[str], list[str]]:
    """Per row: the reasons JSON, and one sentence per language (what makes a first order likelier, what holds it back)."""
    json_rows: list[list[dict]] = [[] for _ in range(n_rows)]
    parts = {lang: [{"raises": [], "lowers": []} for _ in range(n_rows)] for lang in ("en", "zh")}
    for r in reasons.itertuples(index=False):
        json_rows[r.row].append({"direction": r.direction, "rank": int(r.rank), "feature": r.feature,
                                 "value": r.value, "contribution": round(float(r.contribution), 6)})
        parts["en"][r.row][r.direction].append(r.sentence_en)
        parts["zh"][r.row][r.direction].append(r.sentence_zh)
    en = [_sentence(p, "more likely to buy: ", "less likely: ", "; ", ", ", "no reason stands out")
          for p in parts["en"]]
    zh = [_sentence(p, "更可能下单：", "不太可能：", "；", "，", "无突出原因") for p in parts["zh"]]
    return [json.dumps(rows, ensure_ascii=False) for rows in json_rows], en, zh


def _sentence(p: dict, up: str, down: str, sep: str, join: str, none: str) -> str:
    pieces = ([up + join.join(p["raises"])] if p["raises"] else []) + ([down + join.join(p["lowers"])] if p["lowers"] else [])
    return sep.join(pieces) if pieces else none


def prospect_table(features: pd.DataFrame, model: Any, version: str, rules: ProspectRules) -> pa.Table:
    """The run's prospects scored and explained (PROSPECT_SCHEMA), highest expected value first.

    `features`: one row per prospect with customer_id and the model's columns
    (features.prospects.prospect_features as of the run's date).
    """
    if features.empty:
        return PROSPECT_SCHEMA.empty_table()
    X = features[list(model.feature_names_)]
    predicted = model.predict(X)
    reasons = explained_reasons(model, X, rules.reasons_per_direction, rules.additivity_atol)
    reasons_json, en, zh = reason_texts(reasons, len(features))
    expected = predicted["expected_value"].to_numpy(dtype=float)
    threshold = potential_threshold(expected, rules.potential)
    days = features["days_since_signup"] if "days_since_signup" in features else pd.Series(np.nan, index=features.index)
    frame = pd.DataFrame({
        "customer_id": features["customer_id"].astype(str).to_numpy(),
        "prospect_model_version": version,
        "days_since_signup": days.to_numpy(dtype=float),
        "p_first_order": predicted["p_first_order"].to_numpy(dtype=float),
        "prospect_value": predicted["prospect_value"].to_numpy(dtype=float),
        "expected_value": expected,
        "potential": expected >= threshold,
        "reasons": reasons_json, "reason_text_en": en, "reason_text_zh": zh,
    })
    frame = frame.sort_values(["expected_value", "customer_id"], ascending=[False, True], kind="stable")
    return pa.Table.from_pandas(frame, schema=PROSPECT_SCHEMA, preserve_index=False)


def potential_sentences(prospects: pd.DataFrame, threshold: float, rules: ProspectRules) -> tuple[list[str], list[str]]:
    """Why each prospect is a potential account, in English and Chinese."""
    h, v = rules.churn_horizon_days, rules.value_horizon_days
    en, zh = [], []
    for p, value, expected in prospects[["p_first_order", "prospect_value", "expected_value"]].itertuples(index=False):
        pct = whole(100 * p)
        en.append(f"potential account (prospect, no order yet): {pct}% chance of a first order within {h} days, worth "
                  f"about {money(value)} over its first {v} days if it buys; expected value {money(expected)} "
                  f"(potential from {money(threshold)}).")
        zh.append(f"潜在客户（尚未下单）：{h}天内首单概率{pct}%，若成交首{v}天价值约{money(value)}；"
                  f"期望价值{money(expected)}（{money(threshold)}起为潜在）。")
    return en, zh


def with_potential_prospects(account_grades: pa.Table | None, prospects: pa.Table, rules: ProspectRules) -> pa.Table:
    """The run's account grades with its potential prospects appended as `potential` (no dimension scores)."""
    chosen = prospects.to_pandas()
    chosen = chosen.loc[chosen["potential"].astype(bool)]
    threshold = potential_threshold(prospects.column("expected_value").to_numpy(), rules.potential)
    en, zh = potential_sentences(chosen, threshold, rules)
    rows = pd.DataFrame({"customer_id": chosen["customer_id"].astype(str).to_numpy()})
    for d in DIMENSIONS:
        rows[f"{d}_score"] = np.nan
    rows["weighted_score"] = np.nan
    rows["account_grade"] = "potential"
    rows["sentence_en"], rows["sentence_zh"] = en, zh
    added = pa.Table.from_pandas(rows, schema=ACCOUNT_GRADES_SCHEMA, preserve_index=False)
    if account_grades is None:
        return added
    return pa.concat_tables([account_grades.cast(ACCOUNT_GRADES_SCHEMA), added])
