"""DuckDB vs Spark local, per stage: features, scoring with exact TreeSHAP reasons, publishing.

    python -m benchmarks.spark_bench --customers 100000 [--data DIR] [--train-customers 5000] [--chunk-size N]

(1) The demo data (the `demo` package, seed 7) under benchmarks/.work/demo-<N>-s7/, made once
(`--data` reads another folder of the same tables). Its Parquet tables are already normalised,
so both engines read them as they are (validation is timed by benchmarks/validation_bench.py).
(2) Champions trained once, on the driver, on a hash sample of `--train-customers` customers
(three snapshots, default model parameters, reason references and drift profiles), as a run
trains on a bounded sample; both engines score with the same two models.
(3) Per engine, three stages, each timed alone:
- features: the point-in-time feature table as of the day after the last order (the same Ibis
  definitions: on DuckDB, and on Spark through Ibis's PySpark backend), written to Parquet;
- score: `serving.score_run.score_run` over that Parquet in chunks (DuckDB engine), or
  `serving.spark_scoring.score_on_spark` over it as a Spark DataFrame (partitions of about
  `--chunk-size` customers): predictions, exact TreeSHAP, reasons in two languages, segments;
- publish: `ScoreStore.publish` into an empty store (part files hard-linked).
Wall seconds, and CPU seconds of this process and every process it started (Spark's JVM and its
Python workers), read from /proc before and after; the 1-minute load average at each start: the
machine may be shared, so read CPU seconds beside wall time. Spark runs `local[2]` (both cores).
Results go to benchmarks/results/spark_stages-<N>.json and .md. Run manually; not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results"
SEED = 7
TABLES = ("transactions", "invoices", "interactions", "customers")
CHURN_H, VALUE_H = 90, 365


# --------------------------------------------------------------------------- measuring


def machine() -> dict:
    """nproc, RAM, CPU model, Python, Java and the load average now."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    mem_kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    import pyspark

    return {"nproc": os.cpu_count(), "ram_gib": round(mem_kb / 2**20, 1), "cpu": cpu, "python": platform.python_version(),
            "java": java[0] if java else "none", "pyspark": pyspark.__version__, "platform": platform.platform(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and all its descendants (alive ones, and the dead ones they reaped)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(x) for x in fields[11:15]) / tick  # utime, stime, cutime, cstime
    me = os.getpid()

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == me:
                return True
            pid = parents.get(pid, 1)
        return False

    return sum(t for pid, t in times.items() if descends(pid))


def descendants_rss() -> dict[int, tuple[str, int]]:
    """Resident bytes and command of each process below this one."""
    parents, rss, names = {}, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry)] = int(fields["PPid"].strip())
        rss[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        names[int(entry)] = command
    me = os.getpid()
    found = {}
    for pid in rss:
        walk = pid
        while walk > 1 and walk != me:
            walk = parents.get(walk, 1)
        if walk == me and pid != me:
            found[pid] = (names[pid], rss[pid])
    return found


class MemorySampler:
    """Peaks, sampled every half second: this process, the JVM, the largest Python worker."""

    def __init__(self) -> None:
        self.peaks = {"driver_python_mb": 0, "jvm_mb": 0, "largest_python_worker_mb": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.5)

    def _sample(self) -> None:
        mine = int(next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS")).split()[1]) // 1024
        self.peaks["driver_python_mb"] = max(self.peaks["driver_python_mb"], mine)
        for command, rss in descendants_rss().values():
            key = "jvm_mb" if "java" in command.split(" ", 1)[0] else "largest_python_worker_mb" if "python" in command else None
            if key:
                self.peaks[key] = max(self.peaks[key], rss // 2**20)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class Stage:
    """Wall and process-tree CPU seconds of a block, with the load average at its start."""

    def __init__(self, results: dict, engine: str, name: str) -> None:
        self.results, self.engine, self.name = results, engine, name

    def __enter__(self) -> Stage:
        self.load = round(os.getloadavg()[0], 1)
        self.cpu, self.started = tree_cpu_seconds(), time.perf_counter()
        print(f"{self.engine}: {self.name}...", flush=True)
        return self

    def __exit__(self, kind, exc, tb) -> None:
        wall, cpu = time.perf_counter() - self.started, tree_cpu_seconds() - self.cpu
        row = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_1m_at_start": self.load}
        if exc is not None:
            row["error"] = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        self.results.setdefault(self.engine, {})[self.name] = row
        print(f"{self.engine}: {self.name} {row}", flush=True)


# --------------------------------------------------------------------------- data and models


def ensure_data(customers: int, folder: Path | None) -> Path:
    folder = folder or WORK / f"demo-{customers}-s{SEED}"
    if (folder / "transactions.parquet").exists():
        return folder
    print(f"generating demo data for {customers:,} customers into {folder}", flush=True)
    code = ("from pathlib import Path; from demo import generate_demo_data, write_demo_data;"
            f"p = Path({str(folder)!r}); s = p.with_name(p.name + '.partial');"
            f"write_demo_data(generate_demo_data({customers}, seed={SEED}), s, 'parquet'); s.replace(p)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return folder


def duckdb_tables(folder: Path):
    import ibis

    con = ibis.duckdb.connect()
    for name in TABLES:
        con.con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{folder / name}.parquet')")
    return con, {name: con.table(name) for name in TABLES}


def scoring_date(con) -> datetime:
    """The day after the last transaction, as `custscore run` defaults to."""
    last = con.con.execute("SELECT max(ts) FROM transactions").fetchall()[0][0]
    return datetime(last.year, last.month, last.day) + timedelta(days=1)


def trained_models(tables, as_of: datetime, spec, train_customers: int):
    from features.training_set import build_training_set
    from models.churn import ChurnModel
    from models.params import ChurnParams, ValueParams
    from models.value import ValueModel
    from serving.scoring import ScoringModels

    training = build_training_set(tables, as_of, spec=spec, churn_horizon_days=CHURN_H, value_horizon_days=VALUE_H,
                                  n_snapshots=3, step_days=90, min_history_days=180, max_customers=train_customers)
    names = [c for c in training.columns if c not in ("customer_id", "as_of", "is_validation") and not c.startswith("label_")]
    train, valid = training[~training["is_validation"]], training[training["is_validation"]]
    churn = ChurnModel(ChurnParams()).fit(train, train["label_churn"], valid, valid["label_churn"], names, reason_population=valid)
    value = ValueModel(ValueParams(revenue_model="direct")).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        cost_to_serve=train["label_cost_to_serve"], cost_to_serve_val=valid["label_cost_to_serve"], reason_population=valid)
    return ScoringModels(churn, value, "1", "1"), len(training)


# --------------------------------------------------------------------------- the two engines


def duckdb_features(con, tables, as_of: datetime, spec, out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.build import iter_feature_batches

    writer = None
    rows = 0
    for frame in iter_feature_batches(tables, as_of, spec, include_prospects=True, batch_rows=100_000):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table.cast(writer.schema))
        rows += len(frame)
    if writer:
        writer.close()
    return rows


def parquet_chunks(path: Path, chunk_size: int):
    import pyarrow.parquet as pq

    from features.build import to_feature_frame

    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
        yield to_feature_frame(batch.to_pandas())


def spark_session(cores: int):
    """The engine's own local session (features/engines/spark.py), as `custscore run --engine spark` starts it."""
    from features.engines.spark import spark_session as engine_session

    session = engine_session(f"local[{cores}]", "custscore-spark-bench",
                             {"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": str(4 * cores)})
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_features(spark, folder: Path, as_of: datetime, spec, out: Path) -> int:
    """The same Ibis feature definitions on the spark engine (its connection and tables), written to Parquet."""
    from features.build import build_features_expr
    from features.engines.spark import connect, read_tables, spark_frame

    tables = read_tables(connect(spark), {name: str(folder / f"{name}.parquet") for name in TABLES})
    spark_frame(build_features_expr(tables, as_of, spec, include_prospects=True)).write.mode("overwrite").parquet(str(out))
    return spark.read.parquet(str(out)).count()


def published(run, where: Path, as_of: datetime) -> int:
    from serving.store import RunMetadata, ScoreStore

    shutil.rmtree(where, ignore_errors=True)
    return ScoreStore(where).publish(RunMetadata(run_id="bench", as_of=as_of.date()), run).score_rows


def run(args: argparse.Namespace) -> dict:
    from features.build import FeatureSpec
    from serving.score_run import score_run
    from serving.settings import ScoringConfig, ScoringSettings
    from serving.spark_scoring import remove_staging, run_staging, score_on_spark

    folder = ensure_data(args.customers, args.data)
    work = WORK / f"spark-bench-{args.customers}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    con, tables = duckdb_tables(folder)
    as_of = scoring_date(con)
    spec = FeatureSpec()
    settings = ScoringSettings(value_horizon_days=VALUE_H, churn_horizon_days=CHURN_H, annual_discount_rate=0.1,
                               scoring=ScoringConfig(chunk_size=args.chunk_size))
    result: dict = {"customers": args.customers, "as_of": as_of.date().isoformat(), "chunk_size": args.chunk_size,
                    "machine": machine(), "stages": {}}
    stages = result["stages"]
    started = time.perf_counter()
    models, training_rows = trained_models(tables, as_of, spec, args.train_customers)
    result["training"] = {"rows": training_rows, "wall_s": round(time.perf_counter() - started, 1),
                          "churn_trees": models.churn.booster_.num_trees(),
                          "value_revenue_trees": models.value.boosters_["revenue"].num_trees()}

    features_duckdb = work / "features-duckdb.parquet"
    with Stage(stages, "duckdb", "features"):
        result["feature_rows"] = duckdb_features(con, tables, as_of, spec, features_duckdb)
    with MemorySampler() as memory, Stage(stages, "duckdb", "score"):
        scored = score_run(parquet_chunks(features_duckdb, args.chunk_size), models, settings, work / "duckdb-parts",
                           run_id="bench", as_of=as_of.date())
    stages["duckdb"]["score"] |= {"peak_rss": memory.peaks, "busy_s": {k: round(v, 1) for k, v in scored.timings.items()}}
    with Stage(stages, "duckdb", "publish"):
        published(scored, work / "store-duckdb", as_of)
    del scored

    with Stage(stages, "spark", "Spark start"):
        spark = spark_session(args.cores)
    features_spark = work / "features-spark.parquet"
    source = features_spark
    if args.skip_spark_features:
        stages["spark"]["features"] = {"error": "not run (--skip-spark-features)"}
        source = features_duckdb
    else:
        try:
            with Stage(stages, "spark", "features"):
                result["spark_feature_rows"] = spark_features(spark, folder, as_of, spec, features_spark)
        except Exception:  # recorded by Stage; scoring is measured all the same, on the features DuckDB built
            source = features_duckdb
    with MemorySampler() as memory, Stage(stages, "spark", "score"):
        frame = spark.read.parquet(str(source))
        frame = frame.repartition(max(2 * args.cores, math.ceil(result["feature_rows"] / args.chunk_size)))
        staging = f"file://{work / 'staging'}"
        scored = score_on_spark(frame, models, settings, staging, work / "spark-parts", run_id="bench", as_of=as_of.date())
    stages["spark"]["score"] |= {"features_from": "spark" if source == features_spark else "duckdb", "peak_rss": memory.peaks,
                                 "task_busy_s": {k: round(v, 1) for k, v in scored.timings.items()}}
    numbers = scored.numbers.to_pandas()
    result["driver_numbers_bytes_per_customer"] = round(numbers.memory_usage(deep=True).sum() / max(len(numbers), 1))
    del numbers
    with Stage(stages, "spark", "publish"):
        published(scored, work / "store-spark", as_of)
    store = work / "store-spark"
    result["store_bytes_per_customer"] = {part: round(folder_bytes(next((store / "runs").iterdir()) / part) / result["feature_rows"])
                                          for part in ("scores", "explanations")}
    remove_staging(run_staging(staging, "bench"))
    spark.stop()
    result["command"] = "python -m benchmarks.spark_bench " + " ".join(sys.argv[1:])
    return result


def write_markdown(result: dict, path: Path) -> None:
    lines = [f"# DuckDB vs Spark local: {result['customers']:,} customers", "",
             f"`{result['command']}`; machine: {result['machine']['nproc']} cores ({result['machine']['cpu']}), "
             f"{result['machine']['ram_gib']} GiB, Python {result['machine']['python']}, pyspark {result['machine']['pyspark']}, "
             f"{result['machine']['java']}; load average at start {result['machine']['loadavg_at_start']}.", "",
             "| engine | stage | wall s | CPU s (all processes) | load at start | note |", "|---|---|---:|---:|---:|---|"]
    for engine, stages in result["stages"].items():
        for name, row in stages.items():
            note = row.get("error", "") or (f"features from {row['features_from']}" if "features_from" in row else "")
            lines.append(f"| {engine} | {name} | {row.get('wall_s', '')} | {row.get('cpu_s', '')} | {row.get('load_1m_at_start', '')} | {note} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=None, help="a folder of the demo tables as Parquet (default: generated)")
    parser.add_argument("--train-customers", type=int, default=5_000)
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--skip-spark-features", action="store_true",
                        help="score on Spark from the features DuckDB built (Ibis's PySpark backend is the slow stage)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = run(args)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"spark_stages-{args.customers}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    write_markdown(result, stem.with_suffix(".md"))
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
