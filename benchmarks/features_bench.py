"""Feature-build benchmark: build_features (Ibis on DuckDB) against a plain hand-written DuckDB query.

    python benchmarks/features_bench.py --customers 200000 [--rows-per-customer 20] [--repeats 2] [--out DIR]

    python benchmarks/features_bench.py --demo benchmarks/.work/demo-100000-s7 [--max-customers 20000] [--repeats 1]

Generates transactions for N customers with numpy (order lines, returns, discounts, categories,
products over three years), writes them to Parquet, and then, each in a fresh process so that
peak memory is its own, (1) loads the Parquet into an embedded DuckDB and runs build_features
for every transaction feature family, (2) loads the same Parquet and runs one hand-written
DuckDB SQL query computing the same families. Reports wall time, CPU time (all threads),
peak RSS, the ratios and the machine's load average, and checks that both give the same
numbers. With --demo it instead times the committed (HEAD, read with `git show`) feature
modules against the working tree on a demo-data folder, each in a fresh process: the streamed
scoring feature query (with prospects, as scoring runs it) and both training sets of
configs/default.yaml (churn and value, 6 snapshots 30 days apart, a hash sample of
--max-customers), and checks that both give the same frames. Run manually; not part of the
test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

AS_OF = datetime(2024, 7, 1)
START = datetime(2021, 7, 1)
WINDOWS = (30, 90, 180, 365)


def generate_transactions(n_customers: int, rows_per_customer: float, seed: int) -> pa.Table:
    """Order lines (1-3 per order), 5% returns and 20% discounted lines, as an Arrow table."""
    rng = np.random.default_rng(seed)
    n_orders = int(n_customers * rows_per_customer / 2.1)
    # Heterogeneous purchase rates: some customers buy far more often than others.
    weights = rng.gamma(1.0, 1.0, size=n_customers)
    order_customer = rng.choice(n_customers, size=n_orders, p=weights / weights.sum())
    span_s = int((AS_OF + timedelta(days=60) - START).total_seconds())
    order_ts = np.datetime64(START, "s") + rng.integers(0, span_s, size=n_orders).astype("timedelta64[s]")
    lines = rng.integers(1, 4, size=n_orders)
    customer = np.repeat(order_customer, lines)
    order = np.repeat(np.arange(n_orders), lines)
    ts = np.repeat(order_ts, lines)
    n = len(customer)
    amount = np.round(rng.gamma(2.0, 40.0, size=n), 2)
    is_return = rng.random(n) < 0.05
    amount = np.where(is_return, -amount, amount)
    ts = np.where(is_return, ts + rng.integers(86400, 40 * 86400, size=n).astype("timedelta64[s]"), ts)
    discount = np.where((rng.random(n) < 0.2) & ~is_return, np.round(amount * 0.1, 2), 0.0)
    return pa.table(
        {
            "customer_id": pc.cast(pa.array(customer), pa.string()),
            "order_id": pc.cast(pa.array(order), pa.string()),
            "ts": pa.array(ts.astype("datetime64[us]")),
            "amount": amount,
            "margin": np.round(amount * rng.uniform(0.1, 0.5, size=n), 2),
            "category": pc.cast(pa.array(rng.integers(0, 20, size=n)), pa.string()),
            "product_id": pc.cast(pa.array(rng.integers(0, 500, size=n)), pa.string()),
            "discount": discount,
        }
    )


def load_duckdb(parquet: Path):
    """An ibis DuckDB backend with the transactions loaded from Parquet, and the load time."""
    import ibis

    started = time.perf_counter()
    con = ibis.duckdb.connect()
    con.con.execute(f"CREATE TABLE transactions AS SELECT * FROM read_parquet('{parquet}')")
    return con, time.perf_counter() - started


def hand_written_sql(as_of: datetime, windows: tuple[int, ...]) -> str:
    """The same transaction families as features/transactions.py, written by hand for DuckDB."""
    t = f"TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}'"
    epoch = int((as_of - datetime(1970, 1, 1)).total_seconds())

    def within(column: str, lo: int, hi: int) -> str:
        return f"{column} >= {t} - INTERVAL {hi} DAY AND {column} < {t} - INTERVAL {lo} DAY"

    row_aggs = [
        "sum(amount) AS revenue_sum_lifetime",
        "sum(margin) AS margin_sum_lifetime",
        f"coalesce(sum((6.5 - ceil(({epoch} - epoch(ts)) / 2629800.0)) * amount) FILTER (WHERE {epoch} - epoch(ts) <= 12 * 2629800), 0) / 143.0 AS slope",
    ]
    order_aggs = ["count(*) FILTER (WHERE is_order) AS order_count_lifetime", "min(order_ts) FILTER (WHERE is_order) AS first_order", "max(order_ts) FILTER (WHERE is_order) AS last_order"]
    item_aggs, product_aggs, derived = [], [], []
    for w in windows:
        row_aggs += [
            f"coalesce(sum(amount) FILTER (WHERE {within('ts', 0, w)}), 0) AS revenue_sum_{w}d",
            f"coalesce(sum(margin) FILTER (WHERE {within('ts', 0, w)}), 0) AS margin_sum_{w}d",
            f"coalesce(sum(amount) FILTER (WHERE {within('ts', w, 2 * w)}), 0) AS revenue_prev_{w}d",
            f"coalesce(sum(amount) FILTER (WHERE amount > 0 AND {within('ts', 0, w)}), 0) AS gross_{w}d",
            f"count(*) FILTER (WHERE amount < 0 AND {within('ts', 0, w)}) AS return_count_{w}d",
            f"coalesce(-sum(amount) FILTER (WHERE amount < 0 AND {within('ts', 0, w)}), 0) AS return_amount_{w}d",
            f"coalesce(sum(discount) FILTER (WHERE {within('ts', 0, w)}), 0) AS discount_amount_{w}d",
        ]
        if w < 365:
            row_aggs.append(f"coalesce(sum(amount) FILTER (WHERE {within('ts', 365, 365 + w)}), 0) AS revenue_year_ago_{w}d")
            derived.append(f"CASE WHEN revenue_year_ago_{w}d >= 0.005 THEN (revenue_sum_{w}d - revenue_year_ago_{w}d) / revenue_year_ago_{w}d * 100 END AS revenue_change_pct_{w}d_vs_year_ago")
        order_aggs += [
            f"count(*) FILTER (WHERE is_order AND {within('order_ts', 0, w)}) AS order_count_{w}d",
            f"count(*) FILTER (WHERE is_order AND order_discount > 0 AND {within('order_ts', 0, w)}) AS discounted_order_count_{w}d",
        ]
        item_aggs += [
            f"count(*) FILTER (WHERE {within('last_ts', 0, w)}) AS distinct_categories_{w}d",
            f"count(*) FILTER (WHERE {within('first_ts', 0, w)}) AS new_category_count_{w}d",
        ]
        product_aggs.append(f"count(*) FILTER (WHERE {within('last_ts', 0, w)}) AS distinct_products_{w}d")
        derived += [
            f"coalesce(distinct_categories_{w}d, 0) AS distinct_categories_{w}d",
            f"coalesce(new_category_count_{w}d, 0) AS new_category_count_{w}d",
            f"coalesce(distinct_products_{w}d, 0) AS distinct_products_{w}d",
            f"return_amount_{w}d + discount_amount_{w}d AS cost_to_serve_{w}d",
            f"revenue_sum_{w}d / nullif(order_count_{w}d, 0) AS revenue_mean_per_order_{w}d",
            f"margin_sum_{w}d / nullif(order_count_{w}d, 0) AS margin_mean_per_order_{w}d",
            f"CASE WHEN revenue_prev_{w}d >= 0.005 THEN (revenue_sum_{w}d - revenue_prev_{w}d) / revenue_prev_{w}d * 100 END AS revenue_change_pct_{w}d_vs_prev_{w}d",
            f"return_amount_{w}d / nullif(gross_{w}d, 0) AS return_share_{w}d",
            f"discount_amount_{w}d / nullif(gross_{w}d + discount_amount_{w}d, 0) AS discount_share_{w}d",
        ]
    return f"""
WITH r AS (SELECT * FROM transactions WHERE ts < {t}),
rows_agg AS (SELECT customer_id, {', '.join(row_aggs)} FROM r GROUP BY customer_id),
orders AS (SELECT customer_id, order_id, min(ts) AS order_ts, max(amount) > 0 AS is_order,
           coalesce(sum(discount), 0) AS order_discount FROM r GROUP BY customer_id, order_id),
orders_agg AS (SELECT customer_id, {', '.join(order_aggs)} FROM orders GROUP BY customer_id),
days AS (SELECT DISTINCT customer_id, floor(epoch(order_ts) / 86400) AS d FROM orders WHERE is_order),
gaps AS (SELECT customer_id, d - lag(d) OVER (PARTITION BY customer_id ORDER BY d) AS gap FROM days),
cadence AS (SELECT customer_id, avg(gap) AS order_gap_mean_days, stddev_samp(gap) AS order_gap_std_days
            FROM gaps GROUP BY customer_id),
cats AS (SELECT customer_id, category, min(ts) AS first_ts, max(ts) AS last_ts FROM r
         WHERE amount > 0 AND category IS NOT NULL GROUP BY customer_id, category),
cats_agg AS (SELECT customer_id, {', '.join(item_aggs)} FROM cats GROUP BY customer_id),
prods AS (SELECT customer_id, product_id, max(ts) AS last_ts FROM r
          WHERE amount > 0 AND product_id IS NOT NULL GROUP BY customer_id, product_id),
prods_agg AS (SELECT customer_id, {', '.join(product_aggs)} FROM prods GROUP BY customer_id),
joined AS (SELECT * FROM rows_agg LEFT JOIN orders_agg USING (customer_id) LEFT JOIN cadence USING (customer_id)
           LEFT JOIN cats_agg USING (customer_id) LEFT JOIN prods_agg USING (customer_id))
SELECT * EXCLUDE ({', '.join(f"distinct_categories_{w}d, new_category_count_{w}d, distinct_products_{w}d" for w in windows)}),
  (order_count_lifetime > 0)::TINYINT AS has_orders,
  (epoch({t}) - epoch(last_order)) / 86400.0 AS days_since_last_order,
  (epoch({t}) - epoch(first_order)) / 86400.0 AS days_since_first_order,
  revenue_sum_lifetime / nullif(order_count_lifetime, 0) AS revenue_mean_per_order_lifetime,
  margin_sum_lifetime / nullif(order_count_lifetime, 0) AS margin_mean_per_order_lifetime,
  ((epoch({t}) - epoch(last_order)) / 86400.0) / nullif(order_gap_mean_days, 0) AS recency_over_gap_mean,
  slope AS revenue_monthly_slope_12m,
  {', '.join(derived)}
FROM joined ORDER BY customer_id
"""


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_phase(phase: str, parquet: Path, result: Path) -> dict:
    """Load, build the features one way, write them to Parquet; time and peak memory of this process."""
    con, load_s = load_duckdb(parquet)
    started, cpu_started = time.perf_counter(), time.process_time()
    if phase == "ibis":
        from features.build import FeatureSpec, build_features

        frame = build_features({"transactions": con.table("transactions")}, AS_OF, FeatureSpec(windows_days=WINDOWS))
    else:
        frame = con.con.sql(hand_written_sql(AS_OF, WINDOWS)).to_df()
    build_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    frame.to_parquet(result)
    return {"phase": phase, "load_s": round(load_s, 2), "build_s": round(build_s, 2), "build_cpu_s": round(cpu_s, 2), "peak_rss_mb": round(peak_rss_mb()),
            "customers": len(frame), "columns": frame.shape[1] - 1}


def compare(ibis_result: Path, sql_result: Path) -> dict:
    """Largest relative difference per shared feature column between the two results."""
    import pandas as pd

    a = pd.read_parquet(ibis_result).set_index("customer_id").sort_index()
    b = pd.read_parquet(sql_result).set_index("customer_id").sort_index()
    shared = [c for c in a.columns if c in b.columns]
    worst = 0.0
    mismatched = []
    for column in shared:
        x, y = a[column].astype(float).to_numpy(), b[column].astype(float).to_numpy()
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            mismatched.append(column)
            continue
        ok = ~np.isnan(x)
        if ok.any():
            worst = max(worst, float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(1.0, np.abs(y[ok])))))
    return {"shared_columns": len(shared), "ibis_only_columns": [c for c in a.columns if c not in b.columns],
            "null_pattern_mismatches": mismatched, "max_rel_diff": worst, "same_customers": list(a.index) == list(b.index)}


# Run in lifetimes' own interpreter: reading the same Parquet, the RFM summary lifetimes users
# compute (4 columns), timed like the phases above.
LIFETIMES_PHASE = """
import json, sys, time, resource
import pandas as pd
from lifetimes.utils import summary_data_from_transaction_data
frame = pd.read_parquet(sys.argv[1], columns=["customer_id", "ts", "amount"])
as_of = pd.Timestamp(sys.argv[2])
frame = frame[frame["ts"] < as_of]
started, cpu = time.perf_counter(), time.process_time()
summary = summary_data_from_transaction_data(frame, "customer_id", "ts", monetary_value_col="amount",
                                             observation_period_end=as_of - pd.Timedelta(days=1), freq="D")
print(json.dumps({"build_s": time.perf_counter() - started, "build_cpu_s": time.process_time() - cpu,
                  "customers": len(summary), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# ---------------------------------------------------------------------------------------------
# Before / after on the demo data: the committed (HEAD) feature modules against the working tree.

ROOT = Path(__file__).resolve().parent.parent
def head_package(target: Path) -> Path:
    """Write the HEAD versions of every feature module (families included) as package `features_head` under target."""
    package = target / "features_head"
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", "HEAD", "features"], check=True,
                            capture_output=True, text=True).stdout.split()
    for path in (p for p in listed if p.endswith(".py")):
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"HEAD:{path}"], check=True, capture_output=True, text=True).stdout
        out = package / Path(path).relative_to("features")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(source.replace("from features.", "from features_head."))
    return target


def load_demo(demo_dir: Path):
    """An ibis DuckDB backend with the demo Parquet tables loaded as they are (already normalised)."""
    import ibis

    con = ibis.duckdb.connect()
    tables = {}
    for name in ("transactions", "invoices", "interactions", "customers"):
        con.con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{demo_dir / name}.parquet')")
        tables[name] = con.table(name)
    return con, tables


def run_demo_phase(phase: str, implementation: str, demo_dir: Path, as_of: datetime, max_customers: int | None,
                   result: Path) -> dict:
    """Time the streamed feature query (with prospects) or both training sets, with HEAD or working-tree code."""
    import importlib

    import pandas as pd

    package = "features_head" if implementation == "head" else "features"
    build = importlib.import_module(f"{package}.build")
    con, tables = load_demo(demo_dir)
    load_rss = peak_rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    if phase == "query":
        expr = build.build_features_expr(tables, as_of, build.FeatureSpec(), include_prospects=True)
        reader = con.con.sql(str(con.compile(expr))).to_arrow_reader(100_000)
        frame = pd.concat([build.to_feature_frame(batch.to_pandas()) for batch in reader], ignore_index=True)
    else:
        training = importlib.import_module(f"{package}.training_set")
        frames = []
        for kind in ("churn", "value"):  # as pipelines.tasks.training_sets with configs/default.yaml
            part = training.build_training_set(
                tables, as_of, spec=build.FeatureSpec(), churn_horizon_days=90, value_horizon_days=365,
                n_snapshots=6, step_days=30, n_validation_snapshots=2, min_history_days=180, targets=kind,
                data_end=as_of, max_customers=max_customers,
            )
            frames.append(part.assign(kind=kind))
        frame = pd.concat(frames, ignore_index=True)
    build_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    frame.to_parquet(result)
    return {"phase": phase, "code": implementation, "wall_s": round(build_s, 1), "cpu_s": round(cpu_s, 1),
            "peak_rss_mb": round(peak_rss_mb()), "rss_after_load_mb": round(load_rss), "rows": len(frame),
            "columns": frame.shape[1], "load_average_1m": round(os.getloadavg()[0], 1)}


def frames_equal(before: Path, after: Path, rtol: float = 1e-9, atol: float = 1e-9) -> dict:
    """Same columns, dtypes, rows and null patterns; numbers within rtol (atol for sums that cancel to ~0)."""
    import pandas as pd

    a, b = pd.read_parquet(before), pd.read_parquet(after)
    report: dict = {"same_columns": list(a.columns) == list(b.columns), "same_rows": len(a) == len(b),
                    "dtype_mismatches": [c for c in a.columns if c in b.columns and str(a[c].dtype) != str(b[c].dtype)]}
    if not (report["same_columns"] and report["same_rows"]):
        return report
    worst, differing = 0.0, {}
    for column in a.columns:
        x, y = a[column], b[column]
        if x.dtype.kind not in "fiub":
            if not x.astype(object).equals(y.astype(object)):
                differing[column] = "values"
            continue
        x, y = x.to_numpy(float), y.to_numpy(float)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            differing[column] = "null pattern"
            continue
        ok = ~np.isnan(x)
        if not np.allclose(x[ok], y[ok], rtol=rtol, atol=atol):
            differing[column] = float(np.max(np.abs(x[ok] - y[ok])))
        close = ok & (np.abs(y) > atol)
        if close.any():
            worst = max(worst, float(np.max(np.abs(x[close] - y[close]) / np.abs(y[close]))))
    report.update({"differing_columns": differing, "max_rel_diff_above_atol": worst, "rtol": rtol, "atol": atol})
    return report


def demo_main(args: argparse.Namespace) -> None:
    """HEAD against working tree on the demo data: CPU, wall, peak RSS and equality, in fresh processes."""
    head_dir = head_package(args.out / "head_code")
    results: dict = {}
    for phase in args.demo_phases:
        for implementation in args.codes * args.repeats:
            command = [sys.executable, __file__, "--demo-phase", phase, "--code", implementation, "--demo", str(args.demo),
                       "--as-of", args.as_of, "--out", str(args.out)]
            if args.max_customers:
                command += ["--max-customers", str(args.max_customers)]
            env = {**os.environ, "PYTHONPATH": f"{head_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
            output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            run = json.loads(output.strip().splitlines()[-1])
            print(json.dumps(run), file=sys.stderr)
            results.setdefault(phase, []).append(run)
        if set(args.codes) != {"head", "work"}:
            continue
        best = {code: min((r for r in results[phase] if r["code"] == code), key=lambda r: r["cpu_s"]) for code in args.codes}
        results[f"{phase}_cpu_ratio_work_over_head"] = round(best["work"]["cpu_s"] / best["head"]["cpu_s"], 3)
        results[f"{phase}_check"] = frames_equal(args.out / f"demo_{phase}_head.parquet", args.out / f"demo_{phase}_work.parquet")
    print(json.dumps(results, indent=2))


def main() -> None:
    """Generate data, run both phases in child processes, print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--rows-per-customer", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/custscore_features_bench"))
    parser.add_argument("--repeats", type=int, default=2, help="runs of each phase, interleaved; the best counts")
    parser.add_argument("--phase", choices=["ibis", "sql"], help=argparse.SUPPRESS)
    parser.add_argument("--lifetimes-python", type=Path, default=None,
                        help="a Python with lifetimes installed (its own venv: lifetimes needs pandas<3); "
                             "times summary_data_from_transaction_data on the same file in the same run")
    parser.add_argument("--demo", type=Path, default=None,
                        help="a demo-data folder (custscore demo-data / benchmarks/.work/demo-N-s7): time the committed "
                             "(HEAD) feature code against the working tree on it, and check they give the same numbers")
    parser.add_argument("--as-of", default="2026-10-01", help="with --demo: scoring date")
    parser.add_argument("--max-customers", type=int, default=200_000, help="with --demo: training-set sample size")
    parser.add_argument("--demo-phases", nargs="+", choices=["query", "training"], default=["query", "training"])
    parser.add_argument("--codes", nargs="+", choices=["head", "work"], default=["head", "work"],
                        help="with --demo: which code to time (both: also the ratio and the equality check)")
    parser.add_argument("--demo-phase", choices=["query", "training"], help=argparse.SUPPRESS)
    parser.add_argument("--code", choices=["head", "work"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.demo_phase:
        result = args.out / f"demo_{args.demo_phase}_{args.code}.parquet"
        print(json.dumps(run_demo_phase(args.demo_phase, args.code, args.demo, datetime.fromisoformat(args.as_of),
                                        args.max_customers, result)))
        return
    if args.demo:
        args.out.mkdir(parents=True, exist_ok=True)
        demo_main(args)
        return
    parquet = args.out / f"transactions_{args.customers}_{args.rows_per_customer:g}_{args.seed}.parquet"
    if args.phase:
        print(json.dumps(run_phase(args.phase, parquet, args.out / f"result_{args.phase}.parquet")))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if not parquet.exists():
        started = time.perf_counter()
        table = generate_transactions(args.customers, args.rows_per_customer, args.seed)
        pq.write_table(table, parquet)
        print(f"generated {table.num_rows:,} rows in {time.perf_counter() - started:.1f}s -> {parquet}", file=sys.stderr)
        del table  # the phases run in child processes; keep this one small
    results = {}
    for phase in ["sql", "ibis"] * args.repeats:  # interleaved, to see the noise
        command = [sys.executable, __file__, "--phase", phase, "--customers", str(args.customers),
                   "--rows-per-customer", str(args.rows_per_customer), "--seed", str(args.seed), "--out", str(args.out)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.setdefault(phase, []).append(json.loads(output.strip().splitlines()[-1]))
    if args.lifetimes_python:
        for _ in range(args.repeats):
            output = subprocess.run([str(args.lifetimes_python), "-c", LIFETIMES_PHASE, str(parquet), AS_OF.isoformat()],
                                    check=True, capture_output=True, text=True).stdout
            results.setdefault("lifetimes", []).append(json.loads(output.strip().splitlines()[-1]))
    best = {phase: min(runs, key=lambda r: r["build_s"]) for phase, runs in results.items()}
    summary = {
        "rows": pq.ParquetFile(parquet).metadata.num_rows,
        "customers_with_features": best["ibis"]["customers"],
        "runs": results,
        "ratio_ibis_over_sql": round(best["ibis"]["build_s"] / best["sql"]["build_s"], 2),
        "cpu_ratio_ibis_over_sql": round(best["ibis"]["build_cpu_s"] / best["sql"]["build_cpu_s"], 2),
        "lifetimes_over_ibis": round(best["lifetimes"]["build_s"] / best["ibis"]["build_s"], 2) if "lifetimes" in best else None,
        "load_average_1m": round(os.getloadavg()[0], 1),
        "check": compare(args.out / "result_ibis.parquet", args.out / "result_sql.parquet"),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
