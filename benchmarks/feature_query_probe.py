"""The scoring feature query as `custscore run` executes it, with one variant at a time.

    python -m benchmarks.feature_query_probe DATA_DIR [--memory-limit 2GB] [--variant V] [--as-of 2026-10-01] [--profile N] [--no-season]

Validates DATA_DIR like the pipeline (on-disk DuckDB in a work folder, Parquet served as views,
`data.duckdb_memory_limit`), builds the feature expression with prospects and streams it in
batches of 50,000 customers. Variants, each a question asked about the query at 1M customers:

- `pipeline`: the query as the run streams it;
- `no-order`: without the final ORDER BY customer_id;
- `moments`: the order moments materialised as a temp table first (as training sets do);
- `int-keys`: customer_id replaced by a dense integer key from a key table built first (timed);
- `partitions-K` (e.g. partitions-4): K queries, each on the customers whose id hashes to one
  part (all tables filtered), so each query has 1/K of the working set.

Prints wall s, CPU s of the process (DuckDB's threads included), seconds to the first batch,
rows and peak RSS, with the load average. `--no-season` leaves out the season columns
(`features.seasonal: false`), to price them. One variant per process, so peaks are their own.
With `--profile N` the query runs under EXPLAIN ANALYZE instead (nothing streamed) and the N
operators with the most time (DuckDB's operator_timing, summed over its threads) are listed.
Run manually; not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stream(con, sql: str, batch_rows: int = 50_000) -> tuple[int, float | None]:
    rows, first, start = 0, None, time.perf_counter()
    for batch in con.sql(sql).to_arrow_reader(batch_rows):
        rows += batch.num_rows
        first = first if first is not None else time.perf_counter() - start
    return rows, first


def _operators(nodes: list[dict], depth: int = 0) -> Iterator[tuple[int, dict]]:
    for node in nodes:
        yield depth, node
        yield from _operators(node.get("children", []), depth + 1)


def _profile(con, sql: str, top: int) -> None:
    """The query under EXPLAIN ANALYZE (DuckDB 2.0's JSON profile); its costliest operators."""
    plan = json.loads(con.sql(f"EXPLAIN (ANALYZE, FORMAT json) {sql}").fetchall()[0][1])
    operators = [(op.get("timing", 0.0), depth, op) for depth, op in _operators(plan["operator"])]
    total = sum(timing for timing, _, _ in operators)
    system, query = plan.get("system", {}), plan.get("query", {})
    print(f"operators: {len(operators)}, operator time summed: {total:.1f} s, query cpu_time {query.get('cpu_time', 0):.1f} s, "
          f"total_time {query.get('total_time', 0):.1f} s, peak buffer {system.get('peak_buffer_memory', 0) / 2**30:.2f} GiB, "
          f"peak temp dir {system.get('peak_temp_dir_size', 0) / 2**30:.2f} GiB")
    for timing, depth, op in sorted(operators, key=lambda o: -o[0])[:top]:
        info = op.get("extra_info", {})
        detail = json.dumps({k: info[k] for k in ("Groups", "Join Type", "Conditions", "Table", "Aggregates") if k in info})[:200]
        print(f"{timing:8.2f} s {timing / total:6.1%}  depth {depth:2d}  {op.get('type', '?'):<20} "
              f"rows {op.get('intermediate_rows', 0):>12,}  {detail}")


def _with_integer_keys(backend, tables: dict) -> dict:
    """Every table with customer_id replaced by a dense BIGINT key (the key table's build is timed too)."""
    union = " UNION ".join(f"SELECT customer_id FROM ({backend.compile(t.select('customer_id'))})" for t in tables.values())
    backend.con.execute(f"CREATE TEMP TABLE __probe_keys AS SELECT customer_id, CAST(row_number() OVER () AS BIGINT) AS ck FROM ({union})")
    keys = backend.table("__probe_keys")
    return {name: t.join(keys, "customer_id").drop("customer_id").rename(customer_id="ck") for name, t in tables.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--variant", default="pipeline")
    parser.add_argument("--as-of", default="2026-10-01")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.work/probe"))
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="EXPLAIN ANALYZE; list the N costliest operators")
    parser.add_argument("--no-season", action="store_true", help="without the season columns (features.seasonal: false)")
    args = parser.parse_args()

    from features.build import build_features_expr
    from features.transactions import order_moments, visible_rows
    from features.validation import load_and_validate
    from pipelines.config import load_config
    from pipelines.tasks import feature_spec

    as_of = datetime.fromisoformat(args.as_of)
    data = load_and_validate(args.data, clock=datetime.now(), max_quarantine_share=0.05,
                             work_dir=args.work, memory_limit=args.memory_limit)
    cfg = load_config(None)
    spec = feature_spec(cfg.with_overrides(features={"seasonal": False}) if args.no_season else cfg)
    backend = data.tables["transactions"]._find_backend()
    start, cpu0 = time.perf_counter(), _cpu_s()
    if args.variant.startswith("partitions-"):
        k = int(args.variant.split("-")[1])
        rows, first = 0, None
        for part in range(k):
            tables = {n: t.filter((t.customer_id.hash() % k + k) % k == part) for n, t in data.tables.items()}
            expr = build_features_expr(tables, as_of, spec, include_prospects=True, population=data.tables["transactions"])
            part_rows, part_first = _stream(backend.con, str(backend.compile(expr)))
            rows += part_rows
            first = first if first is not None else part_first
    else:
        moments = None
        if args.variant == "int-keys":
            data.tables.update(_with_integer_keys(backend, data.tables))
        if args.variant == "moments":
            moments = backend.create_table("__probe_moments", order_moments(visible_rows(data.tables["transactions"], as_of)), temp=True)
        expr = build_features_expr(data.tables, as_of, spec, include_prospects=True, moments=moments)
        sql = str(backend.compile(expr))
        if args.variant == "no-order":
            sql = sql[: sql.rindex("ORDER BY")]
        elif args.variant not in ("pipeline", "moments", "int-keys"):
            raise SystemExit(f"unknown variant {args.variant!r}")
        if args.profile:
            _profile(backend.con, sql, args.profile)
            return
        rows, first = _stream(backend.con, sql)
    print(f"variant={args.variant}{' no-season' if args.no_season else ''} columns={len(expr.columns) - 1} memory_limit={args.memory_limit} rows={rows:,} "
          f"wall_s={time.perf_counter() - start:.1f} cpu_s={_cpu_s() - cpu0:.1f} first_batch_s={first:.1f} "
          f"peak_rss_gib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} load={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
