"""A published run of N synthetic customers built with numpy (no scoring): the read API's load test data.

Reason texts are of realistic length (~300 characters in English, ~120 in Chinese, a JSON
document of ~600 bytes), so a read of one customer's texts costs what it costs on a real run.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from serving.scored_run import ScoredRun
from serving.segments import SEGMENTS, TIERS
from serving.store import RunMetadata, ScoreStore

EN = ("Raises churn risk: no order for {d} days, {r:.1f}x the usual gap between orders; paid {l} days late on the "
      "last invoice. Lowers churn risk: {o} orders in the last 12 months; bought in {c} categories.")
ZH = "推高流失风险：已{d}天未下单，是平时间隔的{r:.1f}倍；上一张发票逾期{l}天付款。降低流失风险：近12个月下单{o}次；购买了{c}个品类。"
REASONS = ('{{"churn":{{"raises":[{{"feature":"days_since_last_order","value":{d},"contribution":0.41}},'
           '{{"feature":"days_late_last_invoice","value":{l},"contribution":0.22}}],"lowers":[{{"feature":'
           '"orders_365d","value":{o},"contribution":-0.18}},{{"feature":"categories_365d","value":{c},'
           '"contribution":-0.05}}]}},"value":{{"raises":[],"lowers":[]}}}}')


def customer_ids(n: int) -> list[str]:
    return [f"C{i:08d}" for i in range(n)]


def synthetic_scores(n: int, seed: int = 0) -> pa.Table:
    """The score table of n customers, every contract column but those the store stamps."""
    rng = np.random.default_rng(seed)
    days, late, orders, cats = (rng.integers(1, 400, n), rng.integers(0, 90, n), rng.integers(0, 60, n),
                                rng.integers(1, 12, n))
    ratio = rng.uniform(0.2, 6.0, n)
    revenue = rng.gamma(2.0, 400.0, n)
    clv = revenue * rng.uniform(0.5, 3.0, n)
    segments = np.array(SEGMENTS)[rng.integers(0, len(SEGMENTS), n)]
    tiers = np.array(TIERS)[rng.integers(0, len(TIERS), n)]
    rows = zip(days.tolist(), ratio.tolist(), late.tolist(), orders.tolist(), cats.tolist(), strict=True)
    en, zh, reasons = [], [], []
    for d, r, lt, o, c in rows:
        en.append(EN.format(d=d, r=r, l=lt, o=o, c=c))
        zh.append(ZH.format(d=d, r=r, l=lt, o=o, c=c))
        reasons.append(REASONS.format(d=d, l=lt, o=o, c=c))
    return pa.table({
        "customer_id": customer_ids(n), "p_churn": rng.uniform(0, 1, n), "expected_revenue": revenue,
        "expected_margin": revenue * 0.3, "cost_to_serve": rng.uniform(0, 50, n), "net_value": revenue * 0.25,
        "clv": clv, "value_p10": clv * 0.5, "value_p90": clv * 1.6, "value_tier": tiers, "segment": segments,
        "segment_label_en": segments, "segment_label_zh": segments, "segment_reason": np.full(n, "synthetic"),
        "reasons": reasons, "reason_text_en": en, "reason_text_zh": zh,
    })  # fmt: skip


def publish_synthetic(store_root, run_id: str, as_of: dt.date, n: int, seed: int = 0, part_rows: int = 50_000):
    """Publish n synthetic customers as one run, texts in parts of `part_rows` as chunked scoring hands them over."""
    table = synthetic_scores(n, seed)
    run = ScoredRun.from_tables(table, run_id=run_id)
    texts = run.text_parts[0]
    run.text_parts = [texts.slice(i, part_rows) for i in range(0, max(n, 1), part_rows)]
    return ScoreStore(store_root).publish(RunMetadata(run_id=run_id, as_of=as_of, churn_model_version="1",
                                                      value_model_version="1"), run)
