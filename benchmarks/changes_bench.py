"""What changed between two runs, timed on a synthetic pair of runs: `python -m benchmarks.changes_bench --customers 100000`.

Two runs of N customers (2% gone, 2% new, segments drifting, the same models) with the reason
rows scoring writes (up to three raising and three lowering reasons per score, as the default
`scoring.reasons_per_direction`), written part by part to Parquet as scoring writes them (50,000
customers a part) and never held whole; then `serving.changes.changes_tables` (the `score_changes`
and `segment_transitions` tables a run is published with), reading the reasons from those files
and keeping the changes table in a scratch file, as publishing does. Reported: CPU and wall time of the comparison alone (on a shared machine CPU
time is the steadier figure), and the process's peak resident memory before it and after it
(the difference is the comparison's own peak). `--whole` reads both runs' reasons into pandas first
and compares them in one partition, the table in memory. `--store HOME/store` compares the
latest two runs of a real store instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.changes import (
    CHANGES_TABLE,
    PARTITION_ROWS,
    REASON_INPUT_COLUMNS,
    TRANSITIONS_TABLE,
    RunSide,
    changes_tables,
)
from serving.changes_why import file_reasons
from serving.segments import SEGMENTS

FEATURES = ["days_since_last_order", "order_count_90d", "revenue_sum_90d", "revenue_sum_365d", "order_gap_mean_days",
            "recency_over_gap_mean", "margin_sum_180d", "revenue_change_pct_90d_vs_prev_90d", "order_count_lifetime",
            "days_since_first_order"]
REASONS_PER_DIRECTION = 3
PART_CUSTOMERS = 50_000


def synthetic_run(run_id: str, ids: np.ndarray, rng: np.random.Generator, as_of: dt.date, folder: Path) -> RunSide:
    """A run of `ids`: scores and raw scores with one base value per model in memory, its reason rows in Parquet parts."""
    n = len(ids)
    churn_raw = rng.normal(-1.0, 1.0, n)
    scores = pd.DataFrame({
        "customer_id": ids, "p_churn": 1 / (1 + np.exp(-churn_raw)), "clv": rng.lognormal(7, 1, n),
        "segment": rng.choice(SEGMENTS, n), "value_tier": rng.choice(["A", "B", "C"], n),
        "churn_raw": churn_raw, "value_raw": rng.normal(6, 1, n), "churn_base": -1.2, "value_base": 5.5,
    })
    folder.mkdir(parents=True)
    paths = []
    for i, lo in enumerate(range(0, n, PART_CUSTOMERS)):
        path = folder / f"part-{i:05d}.parquet"
        pq.write_table(synthetic_reasons(ids[lo:lo + PART_CUSTOMERS], rng), path, compression="zstd")
        paths.append(path)
    return RunSide(run_id, as_of, "1", "1", scores, file_reasons(paths))


def synthetic_reasons(ids: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Twelve reason rows per customer: three raising and three lowering per score, distinct features per score."""
    n = len(ids)
    per_customer = 2 * 2 * REASONS_PER_DIRECTION
    rows = np.repeat(np.arange(n), per_customer)
    slot = np.tile(np.arange(per_customer), n)
    return pa.table({
        "customer_id": pa.array(ids[rows], type=pa.string()),
        "score": np.where(slot < 2 * REASONS_PER_DIRECTION, "churn", "value"),
        # distinct features per (customer, score): a random rotation of the list
        "feature": np.array(FEATURES)[(slot % (2 * REASONS_PER_DIRECTION) + rng.integers(0, len(FEATURES), n)[rows]) % len(FEATURES)],
        "value": pa.array(rng.integers(0, 400, len(rows))).cast(pa.string()),
        "contribution": rng.normal(0, 0.3, len(rows)),
    })


def whole(side: RunSide) -> RunSide:
    """The side with its reasons read whole into pandas."""
    reasons = pa.concat_tables(side.reasons(REASON_INPUT_COLUMNS)).to_pandas()
    return RunSide(side.run_id, side.as_of, side.churn_model_version, side.value_model_version, side.scores, reasons)


def measure(customers: int, seed: int = 7, whole_tables: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:08d}" for i in range(customers)], dtype=object)
    churn = max(customers // 50, 1)
    with tempfile.TemporaryDirectory() as tmp:
        before = synthetic_run("r1", ids[: customers - churn], rng, dt.date(2024, 1, 1), Path(tmp) / "r1")
        after = synthetic_run("r2", ids[churn:], rng, dt.date(2024, 2, 1), Path(tmp) / "r2")
        del ids
        rss_before = _rss_mib()
        started, cpu = time.perf_counter(), time.process_time()
        if whole_tables:
            before, after = whole(before), whole(after)
        tables = changes_tables(before, after, partition_rows=max(customers, 1) if whole_tables else PARTITION_ROWS,
                                workdir=None if whole_tables else Path(tmp) / "work")
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return {"customers": customers, "reason_rows_per_run": customers * 4 * REASONS_PER_DIRECTION,
            "path": "whole" if whole_tables else "partitioned", "changes_rows": tables[CHANGES_TABLE].num_rows,
            "changes_mib": round(tables[CHANGES_TABLE].nbytes / 2**20), "transition_cells": tables[TRANSITIONS_TABLE].num_rows,
            "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "rss_before_mib": rss_before,
            "rss_peak_mib": _rss_mib()}


def measure_store(store_folder: Path) -> dict:
    """The latest run of a real store compared with the one before it, as publishing compares them (reading included)."""
    from serving.changes import side_of_sink
    from serving.store import ScoreStore

    store = ScoreStore(store_folder)
    runs = store.list_runs()
    if len(runs) < 2:
        raise SystemExit(f"{store_folder}: {len(runs)} published run(s); the comparison needs two")
    first, later = str(runs["run_id"].iloc[-2]), str(runs["run_id"].iloc[-1])
    rss_before = _rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        tables = changes_tables(side_of_sink(store, first), side_of_sink(store, later), workdir=Path(tmp))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return {"from_run": first, "to_run": later, "changes_rows": tables[CHANGES_TABLE].num_rows,
            "changes_mib": round(tables[CHANGES_TABLE].nbytes / 2**20), "transition_cells": tables[TRANSITIONS_TABLE].num_rows,
            "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "rss_before_mib": rss_before,
            "rss_peak_mib": _rss_mib()}


def _rss_mib() -> int:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--whole", action="store_true", help="read both runs' reasons whole and compare in one partition")
    parser.add_argument("--store", type=Path, help="compare the latest two runs of this real store instead")
    args = parser.parse_args()
    print(json.dumps(measure_store(args.store) if args.store else measure(args.customers, whole_tables=args.whole)))


if __name__ == "__main__":
    main()
