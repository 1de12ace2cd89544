"""Small published runs for the report's tests: scores, churn reasons and summaries as scoring writes them,
and, for the later run, the further tables other steps publish (changes, transitions, drift); the first run
carries its backtest."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.backtest import BacktestWindow, backtest_table
from serving.changes import changes_tables, side_of_scored
from serving.drift import DRIFT_SCHEMA
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
    """What the changes, drift and backtest steps publish, made by those steps' own functions where they are pure."""
    sides = [side_of_scored(ScoredRun.from_tables(frame, explanations(frame), run_id=run_id), as_of)
             for frame, run_id, as_of in ((before, "run-first", FIRST), (after, "run-second", SECOND))]
    tables = {name: table.to_pandas() for name, table in changes_tables(*sides).items()}
    drift = pd.DataFrame({"name": ["season_share_next_90d", "days_since_last_order", "order_count_90d", "p_churn"],
                          "kind": ["feature", "feature", "feature", "score"], "psi": [18.4, 0.31, 0.02, 0.12],
                          "level": ["constant", "severe", "ok", "warn"], "missing_ref": 0.0, "missing_now": 0.0,
                          "new_categories": "", "vanished_categories": "", "customers": 80})
    # The first run's customers as they then behaved: churned with their predicted probability.
    outcomes = pd.DataFrame({"customer_id": before["customer_id"],
                             "label_churn": (np.random.default_rng(3).random(len(before)) < before["p_churn"]).astype(int),
                             "label_revenue": before["expected_revenue"].clip(lower=0) * 0.9})
    window = BacktestWindow(FIRST, churn_horizon_days=90, value_horizon_days=90,
                            data_end=dt.datetime.combine(SECOND, dt.time()) + dt.timedelta(days=1))
    backtest = backtest_table(before, outcomes, window)
    return tables | {"drift": drift[list(DRIFT_SCHEMA.names)], "backtest": backtest}


def first_only(root) -> ScoreStore:
    """A store with one run and nothing to compare it with."""
    store = ScoreStore(root)
    publish(store, "run-first", FIRST, scores(80, seed=1))
    return store


def two_runs(root) -> ScoreStore:
    """A store with a first run and a second one carrying its changes and drift; the first run's horizon has
    passed by the second, so the first carries its backtest (attached after publishing, as the flow does)."""
    store = ScoreStore(root)
    first, second = scores(80, seed=1), scores(80, seed=2, shift=0.05)
    publish(store, "run-first", FIRST, first)
    tables = further_tables(first, second)
    backtest = tables.pop("backtest")
    publish(store, "run-second", SECOND, second, tables)
    store.attach_table("run-first", "backtest", backtest)
    return store
