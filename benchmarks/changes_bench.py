"""What changed between two runs, timed on a synthetic pair of runs: `python -m benchmarks.changes_bench --customers 100000`.

Two runs of N customers (2% gone, 2% new, segments drifting, the same models) with the reason
rows scoring writes (up to three raising and three lowering reasons per score, as the default
`scoring.reasons_per_direction`), then `serving.changes.score_changes` and `segment_transitions`:
wall and CPU time of the comparison alone (on a shared machine CPU time is the steadier figure), and the process's resident memory before it and at its peak
(`--trace-memory` instead counts the comparison's own Python allocations with tracemalloc, which
slows it several-fold).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd

from serving.changes import RunSide, score_changes, segment_transitions
from serving.segments import SEGMENTS

FEATURES = ["days_since_last_order", "order_count_90d", "revenue_sum_90d", "revenue_sum_365d", "order_gap_mean_days",
            "recency_over_gap_mean", "margin_sum_180d", "revenue_change_pct_90d_vs_prev_90d", "order_count_lifetime",
            "days_since_first_order"]
REASONS_PER_DIRECTION = 3


def synthetic_run(run_id: str, ids: np.ndarray, rng: np.random.Generator, as_of: dt.date) -> RunSide:
    """A run of `ids`: scores, raw scores with one base value per model, and its long reason rows."""
    n = len(ids)
    churn_raw = rng.normal(-1.0, 1.0, n)
    scores = pd.DataFrame({
        "customer_id": ids, "p_churn": 1 / (1 + np.exp(-churn_raw)), "clv": rng.lognormal(7, 1, n),
        "segment": rng.choice(SEGMENTS, n), "value_tier": rng.choice(["A", "B", "C"], n),
        "churn_raw": churn_raw, "value_raw": rng.normal(6, 1, n), "churn_base": -1.2, "value_base": 5.5,
    })
    per_customer = 2 * 2 * REASONS_PER_DIRECTION
    rows = np.repeat(np.arange(n), per_customer)
    slot = np.tile(np.arange(per_customer), n)
    reasons = pd.DataFrame({
        "customer_id": ids[rows],
        "score": np.where(slot < 2 * REASONS_PER_DIRECTION, "churn", "value"),
        # distinct features per (customer, score): a random rotation of the list
        "feature": np.array(FEATURES)[(slot % (2 * REASONS_PER_DIRECTION) + rng.integers(0, len(FEATURES), n)[rows]) % len(FEATURES)],
        "value": rng.integers(0, 400, len(rows)).astype(str),
        "contribution": rng.normal(0, 0.3, len(rows)),
    })
    return RunSide(run_id, as_of, "1", "1", scores, reasons)


def measure(customers: int, seed: int = 7, trace_memory: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:08d}" for i in range(customers)], dtype=object)
    churn = max(customers // 50, 1)
    before = synthetic_run("r1", ids[: customers - churn], rng, dt.date(2024, 1, 1))
    after = synthetic_run("r2", ids[churn:], rng, dt.date(2024, 2, 1))
    rss_before = _rss_mib()
    if trace_memory:
        tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    changes = score_changes(before, after)
    matrix = segment_transitions(changes)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    out = {"customers": customers, "reason_rows_per_run": len(after.reasons), "changes_rows": len(changes),
           "transition_cells": len(matrix), "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "rss_before_mib": rss_before, "rss_peak_mib": _rss_mib()}
    if trace_memory:
        out["traced_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return out


def _rss_mib() -> int:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--trace-memory", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure(args.customers, trace_memory=args.trace_memory)))


if __name__ == "__main__":
    main()
