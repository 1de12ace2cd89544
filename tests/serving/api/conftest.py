"""A published store of two runs and a key file, served by the read API through TestClient."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.api import ApiKeys, create_app
from serving.scored_run import ScoredRun
from serving.store import RunMetadata, ScoreStore

JAN, FEB = dt.date(2026, 1, 31), dt.date(2026, 2, 28)


def score_rows(ids: list[str], *, p_churn: list[float], clv: list[float], segment: list[str], tier: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ids, "p_churn": p_churn, "expected_revenue": 100.0, "expected_margin": 30.0,
        "cost_to_serve": 5.0, "net_value": 25.0, "clv": clv, "value_p10": 50.0, "value_p90": 150.0,
        "value_tier": tier, "segment": segment,
        "segment_label_en": ["At risk" if s == "at_risk" else "Regular" for s in segment],
        "segment_label_zh": ["流失风险客户" if s == "at_risk" else "普通客户" for s in segment],
        "segment_reason": "rule", "reasons": "{}",
        "reason_text_en": [f"Raises churn risk: no order for {i} days." for i in range(len(ids))],
        "reason_text_zh": [f"推高流失风险：已{i}天未下单。" for i in range(len(ids))],
    })  # fmt: skip


def summary(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "group_by": ["segment", "value_tier"], "group": ["at_risk", "A"], "label_en": ["At risk", "Tier A"],
        "label_zh": ["流失风险客户", "A 级"], "customers": [n, n], "share_customers": [1.0, 1.0],
        "current_value": [1.0, 1.0], "share_current_value": [1.0, 1.0], "predicted_value": [2.0, float("nan")],
        "share_predicted_value": [1.0, 1.0], "mean_p_churn": [0.5, 0.5],
    })  # fmt: skip


# 25 customers in February: k01..k25, at_risk when odd; k07 has no p_churn (NaN).
FEB_IDS = [f"k{i:02d}" for i in range(1, 26)]


def publish_runs(target) -> None:
    """The two runs, into the store at a folder or into any other sink."""
    store = ScoreStore(target) if isinstance(target, Path) else target
    jan = score_rows(["k01", "k02"], p_churn=[0.2, 0.3], clv=[10.0, 20.0], segment=["regular", "regular"], tier=["B", "B"])
    store.publish(RunMetadata(run_id="run-jan", as_of=JAN, churn_model_version="1"), ScoredRun.from_tables(jan, summary=summary(2)))
    feb = score_rows(FEB_IDS, p_churn=[float("nan") if i == 7 else i / 25 for i in range(1, 26)],
                     clv=[float(i * 100) for i in range(1, 26)],
                     segment=["at_risk" if i % 2 else "regular" for i in range(1, 26)],
                     tier=["A" if i > 15 else "C" for i in range(1, 26)])
    store.publish(RunMetadata(run_id="run-feb", as_of=FEB, churn_model_version="2"), ScoredRun.from_tables(feb, summary=summary(25)))


@pytest.fixture
def home(tmp_path) -> Path:
    publish_runs(tmp_path / "store")
    return tmp_path


@pytest.fixture
def keys(home) -> ApiKeys:
    return ApiKeys(home / "api_keys.json")


@pytest.fixture
def key(keys) -> str:
    return keys.create("crm")


@pytest.fixture
def client(home, keys, key) -> TestClient:
    app = create_app(ScoreStore(home / "store", index_runs=True), keys)
    with TestClient(app, raise_server_exceptions=True) as test_client:
        test_client.headers["X-API-Key"] = key
        yield test_client


@pytest.fixture
def anonymous(home, keys, key) -> TestClient:
    """A client that sends no key unless told to."""
    with TestClient(create_app(ScoreStore(home / "store", index_runs=True), keys)) as test_client:
        yield test_client
