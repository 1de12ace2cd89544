"""Small published runs for the report's tests: scores, churn reasons and summaries as scoring writes them,
and, for the later run, the further tables other steps attach (drift, backtest, changes, transitions)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.scored_run import ScoredRun
from serving.segments import segment_summary, value_tiers
from serving.store import RunMetadata, ScoreStore

FIRST, SECOND = dt.date(2026, 6, 30), dt.date(2026, 9, 30)
REASONS = [("days_since_last_order", "recency", "raises", 0.9), ("order_count_90d", "volume", "raises", 0.5),
           ("revenue_change_pct_90d_vs_prev_90d", "trend", "raises", 0.3), ("revenue_sum_365d", "volume", "lowers", -0.4)]


def scores(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """n customers: p_churn and clv drawn at random; the riskiest third of the valuable half is at_risk."""
    rng = np.random.default_rng(seed)
    p = np.clip(rng.beta(2, 5, n) + shift, 0.01, 0.99)
    clv = np.round(rng.lognormal(6, 1, n), 2)
    clv[:3] = -20.0  # a few customers cost more than they bring
    ids = [f"C{i:04d}" for i in range(n)]
    at_risk = (p > np.quantile(p, 0.66)) & (clv > np.median(clv))
    segment = np.where(at_risk, "at_risk", "regular")
    frame = pd.DataFrame({
        "customer_id": ids, "p_churn": p, "expected_revenue": clv / 2, "expected_margin": clv / 4,
        "cost_to_serve": 5.0, "net_value": clv / 4 - 5, "clv": clv, "value_p10": clv / 3, "value_p90": clv,
        "value_tier": value_tiers(clv, 0.8, 0.95), "segment": segment,
        "segment_label_en": np.where(at_risk, "at risk", "regular"),
        "segment_label_zh": np.where(at_risk, "流失风险", "普通客户"),
        "segment_reason": "test rule",
        "reasons": json.dumps({"churn": {"raises": [], "lowers": []}}),
        "reason_text_en": "Raises churn risk: no order for 120 days.",
        "reason_text_zh": "推高流失风险：已120天未下单。",
    })
    return frame


def explanations(frame: pd.DataFrame) -> pd.DataFrame:
    rows = [{"customer_id": c, "score": "churn", "direction": direction, "rank": rank, "feature": feature,
             "family": family, "value": str(10 + rank), "contribution": contribution}
            for c in frame["customer_id"]
            for rank, (feature, family, direction, contribution) in enumerate(REASONS, start=1)]
    return pd.DataFrame(rows).assign(rank=lambda f: f.groupby(["customer_id", "direction"]).cumcount() + 1)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    return segment_summary(frame.assign(current_value=frame["expected_revenue"]))


def publish(store: ScoreStore, run_id: str, as_of: dt.date, frame: pd.DataFrame, tables: dict | None = None):
    run = ScoredRun.from_tables(frame, explanations(frame), summary(frame))
    run.tables = {name: pa.Table.from_pandas(t, preserve_index=False) for name, t in (tables or {}).items()}
    metadata = RunMetadata(
        run_id=run_id, as_of=as_of, churn_model_version="3", value_model_version="4", data_hash="h",
        extra={"data_source": "demo-data", "models": {"churn": {"version": "3", "grade": "A"}, "value": {"version": "4", "grade": "B"}},
               "input_rows": {"transactions": {"read": 1000, "accepted": 990, "exact_duplicates_kept": 2, "quarantined": 10,
                                               "reasons": {"negative_quantity": 7, "implausible_date": 3},
                                               "warnings": ["whale order O77"]}}})
    return store.publish(metadata, run)


def further_tables(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What the drift, backtest and changes steps attach, in the columns they publish."""
    changes = pd.DataFrame({
        "customer_id": after["customer_id"], "p_churn_before": before["p_churn"], "p_churn_after": after["p_churn"],
        "clv_before": before["clv"], "clv_after": after["clv"],
        "segment_before": before["segment"], "segment_after": after["segment"],
        "why_en": "stopped ordering", "why_zh": "停止下单"})
    transitions = (changes.groupby(["segment_before", "segment_after"]).size().rename("customers").reset_index()
                   .rename(columns={"segment_before": "from_segment", "segment_after": "to_segment"}))
    drift = pd.DataFrame({"feature": ["days_since_last_order", "order_count_90d", "p_churn"],
                          "psi": [0.31, 0.02, 0.12], "missing_ref": [0.0, 0.0, 0.0], "missing_now": [0.0, 0.01, 0.0],
                          "new_categories": ["", "", ""], "vanished_categories": ["", "", ""],
                          "level": ["severe", "none", "moderate"]})
    deciles = [str(d) for d in range(1, 11)]
    backtest = pd.concat([
        pd.DataFrame({"score": "churn", "metric": "roc_auc", "group_by": "all", "group": "all", "value": [0.74]}),
        pd.DataFrame({"score": "churn", "metric": "mean_predicted", "group_by": "decile", "group": deciles,
                      "value": np.linspace(0.05, 0.9, 10)}),
        pd.DataFrame({"score": "churn", "metric": "observed_rate", "group_by": "decile", "group": deciles,
                      "value": np.linspace(0.04, 0.8, 10)}),
    ], ignore_index=True)
    return {"score_changes": changes, "segment_transitions": transitions, "drift": drift, "backtest": backtest}


def two_runs(root) -> ScoreStore:
    """A store with a first run (no further tables) and a second one carrying all of them."""
    store = ScoreStore(root)
    first, second = scores(80, seed=1), scores(80, seed=2, shift=0.05)
    publish(store, "run-first", FIRST, first)
    publish(store, "run-second", SECOND, second, further_tables(first, second))
    return store
