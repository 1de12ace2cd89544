"""A published run of N synthetic customers built with numpy (no scoring): the read API's load test data.

Reason texts are of realistic length (~300 characters in English, ~120 in Chinese, a JSON
document of ~600 bytes), so a read of one customer's texts costs what it costs on a real run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serving.score_table import SCORE_TEXTS_SCHEMA
from serving.scored_run import ScoredRun
from serving.scoring import TEXT_ROW_GROUP_ROWS  # row groups as scoring writes them: a read costs the same
from serving.segments import SEGMENTS, TIERS
from serving.store import RunMetadata, ScoreStore

EN = ("Raises churn risk: no order for {d} days, {r:.1f}x the usual gap between orders; paid {l} days late on the "
      "last invoice. Lowers churn risk: {o} orders in the last 12 months; bought in {c} categories.")
ZH = "推高流失风险：已{d}天未下单，是平时间隔的{r:.1f}倍；上一张发票逾期{l}天付款。降低流失风险：近12个月下单{o}次；购买了{c}个品类。"
REASONS = ('{{"churn":{{"raises":[{{"feature":"days_since_last_order","value":{d},"contribution":0.41}},'
           '{{"feature":"days_late_last_invoice","value":{l},"contribution":0.22}}],"lowers":[{{"feature":'
           '"orders_365d","value":{o},"contribution":-0.18}},{{"feature":"categories_365d","value":{c},'
           '"contribution":-0.05}}]}},"value":{{"raises":[],"lowers":[]}}}}')


def customer_ids(start: int, stop: int) -> list[str]:
    return [f"C{i:08d}" for i in range(start, stop)]


def synthetic_chunk(start: int, stop: int, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """(numbers, texts) of customers start..stop-1: every contract column but those the store stamps."""
    n = stop - start
    days, late, orders, cats = (rng.integers(1, 400, n), rng.integers(0, 90, n), rng.integers(0, 60, n),
                                rng.integers(1, 12, n))
    ratio = rng.uniform(0.2, 6.0, n)
    revenue = rng.gamma(2.0, 400.0, n)
    clv = revenue * rng.uniform(0.5, 3.0, n)
    segments = np.array(SEGMENTS)[rng.integers(0, len(SEGMENTS), n)]
    tiers = np.array(TIERS)[rng.integers(0, len(TIERS), n)]
    ids = customer_ids(start, stop)
    numbers = pa.table({
        "customer_id": ids, "p_churn": rng.uniform(0, 1, n), "expected_revenue": revenue,
        "expected_margin": revenue * 0.3, "cost_to_serve": rng.uniform(0, 50, n), "net_value": revenue * 0.25,
        "clv": clv, "value_p10": clv * 0.5, "value_p90": clv * 1.6, "value_tier": tiers, "segment": segments,
        "segment_label_en": segments, "segment_label_zh": segments, "segment_reason": np.full(n, "synthetic"),
    })  # fmt: skip
    en, zh, reasons = [], [], []
    for d, r, lt, o, c in zip(days.tolist(), ratio.tolist(), late.tolist(), orders.tolist(), cats.tolist(), strict=True):
        en.append(EN.format(d=d, r=r, l=lt, o=o, c=c))
        zh.append(ZH.format(d=d, r=r, l=lt, o=o, c=c))
        reasons.append(REASONS.format(d=d, l=lt, o=o, c=c))
    texts = pa.table({"customer_id": ids, "reasons": reasons, "reason_text_en": en, "reason_text_zh": zh},
                     schema=SCORE_TEXTS_SCHEMA)
    return numbers, texts


def publish_synthetic(sink: ScoreStore | Path, work: Path, run_id: str, as_of: dt.date, n: int, seed: int = 0,
                      part_rows: int = 50_000) -> int:
    """Publish n synthetic customers as one run to a sink (a folder: the Parquet store there); texts go through
    part files as chunked scoring writes them.

    Memory stays at the numbers plus one part: the store hard-links the part files, PostgreSQL streams
    them to COPY. Returns the rows published.
    """
    rng = np.random.default_rng(seed)
    work.mkdir(parents=True, exist_ok=True)
    numbers, parts = [], []
    for i, start in enumerate(range(0, n, part_rows)):
        chunk_numbers, texts = synthetic_chunk(start, min(start + part_rows, n), rng)
        path = work / f"texts-{i:05d}.parquet"
        pq.write_table(texts, path, compression="zstd", row_group_size=TEXT_ROW_GROUP_ROWS)
        numbers.append(chunk_numbers)
        parts.append(path)
    run = ScoredRun(run_id, pa.concat_tables(numbers), parts, [])
    sink = ScoreStore(sink) if isinstance(sink, Path) else sink
    published = sink.publish(
        RunMetadata(run_id=run_id, as_of=as_of, churn_model_version="1", value_model_version="1"), run)
    return published.score_rows
