"""TreeSHAP benchmark: LightGBM pred_contrib against the table explainer (models.treeshap).

    python -m benchmarks.shap_bench [--train-customers 20000] [--rows 100000] [--scale-rows 1000000]

Features: the demo data (benchmarks/.work/demo-100000-s7, made by scoring_bench) validated
into a temporary DuckDB and built as of 2026-10-01: real customers with history, 126
feature columns with NaNs, zeros and categories. Models: ChurnModel and PointRegressor("revenue")
trained here with the default parameters on a training set of --train-customers customers, as
training does (the boosters a `custscore run` registers have the same sizes).

In one process, for each model on the same rows: raw predict (scale), pred_contrib with
num_threads=2 (what scoring used), the table explainer's one-off build, and the explainer
with 1 and 2 threads; CPU seconds of the process (all threads), wall seconds, the load
average before each, and the largest absolute difference from pred_contrib. Then, memory
permitting, the explainer on --scale-rows rows (the rows repeated) with peak RSS.
Results go to benchmarks/results/shap.md (and .json). Run manually; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.scoring_bench import RssSampler, machine_info

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATA = ROOT / "benchmarks" / ".work" / "demo-100000-s7"


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, dict[str, float]]:
    """Result of the last call and the best (least CPU) of `repeat` calls: CPU s, wall s, load."""
    best: dict[str, float] | None = None
    result = None
    for _ in range(repeat):
        load = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        row = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "load1": load}
        if best is None or row["cpu_s"] < best["cpu_s"]:
            best = row
    assert best is not None
    return result, {k: round(v, 3) for k, v in best.items()}


def scoring_features(data: Path, as_of: datetime, workdir: Path) -> pd.DataFrame:
    """Feature rows of customers with history as of the date, as scoring builds them."""
    from features.build import FeatureSpec, build_features
    from features.validation import load_and_validate

    tables = load_and_validate(data, clock=as_of, database=workdir / "bench.duckdb").tables
    return build_features(tables, as_of, FeatureSpec())


def trained_boosters(data: Path, as_of: datetime, workdir: Path, customers: int) -> dict[str, tuple[Any, list[str]]]:
    """Churn and revenue boosters trained here with default parameters, as pipelines.training does."""
    from features.build import FeatureSpec
    from features.training_set import build_training_set
    from features.validation import load_and_validate
    from models.churn import ChurnModel
    from models.params import ChurnParams, ValueParams
    from models.splits import split_by_flag
    from models.value import PointRegressor
    from pipelines.config import load_config

    cfg = load_config()  # the default configuration's snapshots and horizons
    validated = load_and_validate(data, clock=as_of, database=workdir / "train.duckdb")
    t, labels = cfg.training, cfg.labels
    frame = build_training_set(
        validated.tables, as_of, spec=FeatureSpec(windows_days=cfg.features.windows_days),
        churn_horizon_days=labels.churn_horizon_days, value_horizon_days=labels.value_horizon_days,
        n_snapshots=t.n_snapshots, step_days=t.step_days, n_validation_snapshots=t.n_validation_snapshots,
        min_history_days=t.min_history_days, max_customers=customers,
        data_end=datetime.combine(validated.data_end.date() + timedelta(days=1), datetime.min.time()),
    )
    names = [c for c in frame.columns
             if c not in ("customer_id", "as_of", "is_validation") and not c.startswith("label_")]
    train, valid = split_by_flag(frame)
    churn = ChurnModel(ChurnParams()).fit(train[names], train["label_churn"], valid[names],
                                          valid["label_churn"], names)
    revenue = PointRegressor(ValueParams(), "revenue").fit(
        train[names], train["label_revenue"].to_numpy(), valid[names], valid["label_revenue"].to_numpy())
    return {"churn": (churn.booster_, names), "revenue": (revenue.booster_, names)}


def compare_on_rows(booster: Any, X: pd.DataFrame, repeat: int) -> dict[str, Any]:
    """pred_contrib against the table explainer on the same rows, with a raw predict for scale."""
    from models.explain import check_additivity, lightgbm_contributions
    from models.treeshap import TreeExplainer

    tree_info = booster.dump_model()["tree_info"]
    row: dict[str, Any] = {"rows": len(X), "features": X.shape[1], "trees": booster.num_trees(),
                           "max_leaves": max(t["num_leaves"] for t in tree_info)}
    raw, row["predict_raw"] = timed(lambda: booster.predict(X, raw_score=True, num_threads=2), repeat)
    reference, row["pred_contrib_2_threads"] = timed(lambda: lightgbm_contributions(booster, X, 2), repeat)
    explainer, row["table_build"] = timed(lambda: TreeExplainer.from_booster(booster))
    fast = None
    for threads in (1, 2):
        fast, row[f"tables_{threads}_thread"] = timed(lambda n=threads: explainer.contributions(X, n), repeat)
    assert fast is not None
    row["max_abs_diff"] = float(np.abs(fast - reference).max())
    row["max_abs_diff_bias"] = float(np.abs(fast[:, -1] - reference[:, -1]).max())
    check_additivity(fast, raw, atol=1e-6)
    ref_cpu = row["pred_contrib_2_threads"]["cpu_s"]
    row["cpu_ratio_1_thread"] = round(ref_cpu / max(row["tables_1_thread"]["cpu_s"], 1e-9), 1)
    row["cpu_ratio_2_threads"] = round(ref_cpu / max(row["tables_2_thread"]["cpu_s"], 1e-9), 1)
    return row


def at_scale(booster: Any, X: pd.DataFrame, rows: int, sampler: RssSampler) -> dict[str, Any]:
    """The table explainer (2 threads, as contributions() runs it) on `rows` rows made by repeating X."""
    from models.treeshap import explainer_for

    big = pd.concat([X] * -(-rows // len(X)), ignore_index=True).iloc[:rows]
    explainer = explainer_for(booster)
    sampler.reset()
    out, row = timed(lambda: explainer.contributions(big, 2))
    row.update(rows=len(big), peak_rss_gib=round(sampler.peak / 2**30, 2), output_gib=round(out.nbytes / 2**30, 2))
    return row


def available_gib() -> float:
    """MemAvailable from /proc/meminfo: what the at-scale run may use without swapping others out."""
    with open("/proc/meminfo") as f:
        return int(next(line for line in f if line.startswith("MemAvailable")).split()[1]) / 2**20


def summary(result: dict[str, Any]) -> list[str]:
    """Both models together: measured tables against pred_contrib scaled linearly in rows."""
    models = result["models"].values()
    ref = sum(r["pred_contrib_2_threads"]["cpu_s"] / r["rows"] for r in models)
    fast = sum(r["tables_2_thread"]["cpu_s"] / r["rows"] for r in models)
    lines = [(f"Summary: both models, per 100,000 rows: pred_contrib {ref * 1e5:.1f} CPU s, tables "
              f"{fast * 1e5:.2f} CPU s ({ref / fast:.1f}x less CPU); largest difference anywhere "
              f"{max(r['max_abs_diff'] for r in models):.1e}.")]
    if result.get("scale"):
        rows = next(iter(result["scale"].values()))["rows"]
        measured = sum(r["cpu_s"] for r in result["scale"].values())
        lines.append(f"At {rows:,} rows: tables {measured:.1f} CPU s for both models, measured; pred_contrib "
                     f"about {ref * rows:.0f} CPU s (from the 100k measurement, linear in rows, not run).")
    if result.get("scale_skipped"):
        lines.append(f"At-scale run skipped: {result['scale_skipped']}.")
    return lines


def write_markdown(result: dict[str, Any], path: Path) -> None:
    """The result as a Markdown page next to the other benchmark results."""
    m = result["machine"]
    lines = [
        "# TreeSHAP benchmark: LightGBM pred_contrib vs per-tree tables (models/treeshap.py)",
        "",
        f"Command: `{result['command']}` ({result['started']} - {result['finished']} UTC).", "",
        (f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}; "
         f"load average at start {m['loadavg_at_start']} (shared machine: read CPU seconds, wall "
         "seconds are inflated by other processes). CPU s = process CPU time, all threads."),
        "",
        f"Rows: {result['rows_note']}. Models: {result['models_note']}.", "",
        "| model | trees | max leaves | rows | what | CPU s | wall s | load1 |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, row in result["models"].items():
        for what in ("predict_raw", "pred_contrib_2_threads", "table_build", "tables_1_thread", "tables_2_thread"):
            t = row[what]
            lines.append(f"| {name} | {row['trees']} | {row['max_leaves']} | {row['rows']} | {what} | "
                         f"{t['cpu_s']} | {t['wall_s']} | {t['load1']} |")
    lines += ["", ("| model | CPU ratio pred_contrib / tables (1 thread) | (2 threads) | max abs diff | "
                   "max abs diff, bias column |"), "|---|---:|---:|---:|---:|"]
    for name, row in result["models"].items():
        lines.append(f"| {name} | {row['cpu_ratio_1_thread']} | {row['cpu_ratio_2_threads']} | "
                     f"{row['max_abs_diff']:.2e} | {row['max_abs_diff_bias']:.2e} |")
    if result.get("scale"):
        lines += ["", "At scale (rows repeated; tables with 2 threads; peak RSS of the whole process):", "",
                  "| model | rows | CPU s | wall s | load1 | peak RSS GiB | output GiB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, row in result["scale"].items():
            lines.append(f"| {name} | {row['rows']} | {row['cpu_s']} | {row['wall_s']} | {row['load1']} | "
                         f"{row['peak_rss_gib']} | {row['output_gib']} |")
    lines += ["", f"Process peak RSS (ru_maxrss): {result['peak_rss_gib_ru_maxrss']} GiB.", "", *summary(result), ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, write benchmarks/results/shap.md and shap.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="demo data folder (Parquet tables)")
    parser.add_argument("--as-of", default="2026-10-01")
    parser.add_argument("--train-customers", type=int, default=20_000, help="customers of the training set")
    parser.add_argument("--rows", type=int, default=100_000, help="rows compared (fewer if fewer customers)")
    parser.add_argument("--repeat", type=int, default=2, help="calls per measurement; the least CPU is kept")
    parser.add_argument("--scale-rows", type=int, default=1_000_000, help="0 to skip the at-scale run")
    parser.add_argument("--min-free-gib", type=float, default=10.0, help="skip the at-scale run below this")
    parser.add_argument("--out", type=Path, default=RESULTS / "shap.md")
    args = parser.parse_args(argv)
    if not (args.data / "transactions.parquet").exists():
        sys.exit(f"shap_bench: no demo data in {args.data}; make it with `python -m benchmarks.scoring_bench` "
                 "or pass --data")
    as_of = datetime.fromisoformat(args.as_of)
    result: dict[str, Any] = {"command": "python -m benchmarks.shap_bench " + shlex.join(argv or sys.argv[1:]),
                              "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "machine": machine_info()}
    sampler = RssSampler().start()
    with tempfile.TemporaryDirectory(prefix="shap-bench-") as tmp:
        features = scoring_features(args.data, as_of, Path(tmp))
        boosters = trained_boosters(args.data, as_of, Path(tmp), args.train_customers)
        result["models_note"] = (f"trained here with default ChurnParams / ValueParams on {args.train_customers} "
                                 "customers")
    rows = features.head(args.rows).reset_index(drop=True)
    result["rows_note"] = (f"{len(rows)} customers with history from {args.data.name}, features as of {args.as_of}, "
                           f"best of {args.repeat} calls per measurement")
    result["models"] = {name: compare_on_rows(b, rows[names], args.repeat) for name, (b, names) in boosters.items()}
    free_gib = available_gib()
    if args.scale_rows and free_gib >= args.min_free_gib:
        result["scale"] = {name: at_scale(b, rows[names], args.scale_rows, sampler) for name, (b, names) in boosters.items()}
    elif args.scale_rows:
        result["scale_skipped"] = f"only {free_gib:.1f} GiB available (< {args.min_free_gib})"
    sampler.stop()
    result["finished"] = datetime.now(UTC).strftime("%H:%M")
    result["peak_rss_gib_ru_maxrss"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    write_markdown(result, args.out)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
