"""Validation benchmark: load_and_validate on a folder of tables, against the previous code.

    python -m benchmarks.validation_bench --data DIR [--old-ref REV] [--no-old] [--features]
        [--inject-errors N] [--memory-limit 2GB] [--check]

Each variant runs in a fresh child process, so its peak memory is its own:

- ``new``: ``features.validation.load_and_validate`` as ``pipelines.tasks.load_data`` calls
  it (a work folder under a temporary home, the same memory limit);
- ``old``: the module as it was at ``--old-ref`` (default 9575726, the commit before the
  single-pass rewrite), loaded from ``git show REV:features/validation.py`` into a temp file.

Each child reports wall seconds, CPU seconds of the process (all threads), peak RSS (a 20 ms
thread sampling VmRSS in /proc/self/status, and ru_maxrss), rows per table and the 1-minute
load average. With ``--features`` it then streams the feature table of every customer
(``features.build.iter_feature_batches``, prospects included, 100k rows per batch) on the
validated tables and reports the same figures for that step: the storage of the accepted
tables decides how fast and how big the later feature queries are.

``--inject-errors N`` first writes a copy of the data, column types kept, with N rows of each
kind of damage (missing ids and amounts, NaN amounts, negative discounts and costs, future
timestamps, due before issued, unknown customers, padded ids, exact and conflicting
duplicates) so that the quarantine path is measured and compared too.

``--check`` runs old and new in one process and compares them: reports, the quarantine row
for row, the data hash, and an order-independent hash of every accepted table recomputed
from what each result serves. It prints OK or the differences and exits 1 on a difference.
Run manually; not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

from benchmarks.scoring_bench import rss_bytes
from pipelines.config import DataConfig

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OLD_REF = "9575726"
CLOCK = datetime(2026, 11, 22)
# What pipelines.tasks.load_data passes by default (config data.duckdb_memory_limit).
MEMORY_LIMIT = DataConfig().duckdb_memory_limit


# --------------------------------------------------------------------------- measuring


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PeakSampler:
    """Highest VmRSS seen since the last reset, sampled every 20 ms in a daemon thread."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def reset(self) -> None:
        self.peak = rss_bytes()


@contextmanager
def measured(sampler: PeakSampler, into: dict):
    """Record wall s, CPU s, peak RSS and load average of the block into `into`."""
    sampler.reset()
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), cpu_seconds()
    yield
    into.update(
        wall_s=round(time.perf_counter() - wall, 2), cpu_s=round(cpu_seconds() - cpu, 2),
        peak_rss_gb=round(max(sampler.peak, rss_bytes()) / 2**30, 2), loadavg_1m=round(load, 2),
    )


# --------------------------------------------------------------------------- the two versions


def old_module(ref: str) -> ModuleType:
    """features/validation.py as it was at `ref`, imported from a temp file."""
    text = subprocess.run(
        ["git", "show", f"{ref}:features/validation.py"], cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="validation-old-") as folder:
        path = Path(folder) / "validation_old.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location("validation_old", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["validation_old"] = module
        spec.loader.exec_module(module)
    return module


def validator(variant: str, old_ref: str):
    """The variant's load_and_validate, imported now so that imports are not timed."""
    if variant == "old":
        return old_module(old_ref).load_and_validate
    from features.validation import load_and_validate

    return load_and_validate


def run_validation(variant: str, load, data: Path, memory_limit: str, home: Path):
    """Call load_and_validate the way the pipeline does (the old code had no storage options)."""
    if variant == "old":
        return load(data, clock=CLOCK, max_quarantine_share=1.0)
    return load(data, clock=CLOCK, max_quarantine_share=1.0, work_dir=home / "work", memory_limit=memory_limit)


def stream_features(result, as_of: datetime) -> int:
    """Stream the feature table of every customer as scoring does; returns the rows seen."""
    from features.build import FeatureSpec, iter_feature_batches

    rows = 0
    for batch in iter_feature_batches(result.tables, as_of, FeatureSpec(), include_prospects=True):
        rows += len(batch)
    return rows


def child(args: argparse.Namespace) -> dict:
    """One variant in this process: validation, then optionally the feature stream."""
    sampler = PeakSampler()
    out: dict = {"variant": args.child, "validation": {}, "rss_before_gb": round(rss_bytes() / 2**30, 2)}
    load = validator(args.child, args.old_ref)
    import features.build  # noqa: F401 - imported before timing, as the pipeline has it loaded

    with tempfile.TemporaryDirectory(prefix="validation-bench-") as home:
        with measured(sampler, out["validation"]):
            result = run_validation(args.child, load, args.data, args.memory_limit, Path(home))
        out["ru_maxrss_validation_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        out["rss_after_validation_gb"] = round(rss_bytes() / 2**30, 2)
        out["rows"] = {t: r.read for t, r in result.report.items()}
        out["quarantined"] = {t: r.quarantined for t, r in result.report.items()}
        if args.features:
            as_of = datetime.fromisoformat(args.as_of) if args.as_of else (
                datetime.combine(result.data_end.date() + timedelta(days=1), datetime.min.time()))
            out["features"] = {"as_of": as_of.date().isoformat()}
            with measured(sampler, out["features"]):
                out["features"]["customers"] = stream_features(result, as_of)
        out["ru_maxrss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


# --------------------------------------------------------------------------- comparing


def served_table_hash(result, table: str) -> tuple[int, int]:
    """Rows and sum of row hashes of an accepted table, read back through the result's connection."""
    con = result.con.con
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in result.tables[table].columns)
    count, total = con.execute(
        f'SELECT count(*), coalesce(sum(CAST(hash({cols}) AS HUGEINT)), 0) FROM "{table}"'
    ).fetchall()[0]
    return int(count), int(total)


def compare(data: Path, old_ref: str, memory_limit: str) -> list[str]:
    """Differences between old and new on `data` (empty list: identical)."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="validation-check-") as home:
        old = run_validation("old", validator("old", old_ref), data, memory_limit, Path(home))
        new = run_validation("new", validator("new", old_ref), data, memory_limit, Path(home))
        problems = []
        if old.report_json() != new.report_json():
            problems.append(f"reports differ: old {old.report_json()} new {new.report_json()}")
        if old.data_hash != new.data_hash:
            problems.append(f"data hash differs: old {old.data_hash} new {new.data_hash}")
        if (old.data_start, old.data_end) != (new.data_start, new.data_end):
            problems.append("data_start/data_end differ")
        try:
            pd.testing.assert_frame_equal(old.quarantine, new.quarantine)
        except AssertionError as exc:
            problems.append(f"quarantine differs: {exc}")
        for table in old.tables:
            if old.tables[table].schema() != new.tables[table].schema():
                problems.append(f"{table}: schema differs")
            elif served_table_hash(old, table) != served_table_hash(new, table):
                problems.append(f"{table}: accepted rows differ")
        return problems


# --------------------------------------------------------------------------- damaged copy


def inject_errors(data: Path, n: int, target: Path) -> Path:
    """Copy the Parquet tables, column types kept, with `n` damaged rows per kind of damage."""
    import duckdb

    target.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Damage that fits the native types, as real Parquet files carry it.
    damage = {
        "transactions": ["customer_id = NULL", "amount = 'NaN'::DOUBLE", "discount = -1",
                         "ts = TIMESTAMP '2030-01-01'", "customer_id = ' ' || customer_id || ' '"],
        "invoices": ["due_at = TIMESTAMP '2000-01-01'", "customer_id = 'NOBODY'", "amount = NULL"],
        "interactions": ["cost = -5", "customer_id = 'NOBODY'", "kind = ''"],
        "customers": ["signup_date = TIMESTAMP '2030-01-01'", "region = upper(region)"],
    }
    conflicting = {"transactions": "amount", "customers": "region", "invoices": "amount"}
    for path in sorted(data.glob("*.parquet")):
        table = path.stem
        con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_parquet('{path}')")
        for i, change in enumerate(damage.get(table, [])):
            con.execute(f"UPDATE t SET {change} WHERE rowid % 997 = {i} AND rowid < {n * 997}")
        con.execute(f"INSERT INTO t SELECT * FROM t WHERE rowid % 991 = 5 AND rowid < {n * 991}")  # exact copies
        if table in conflicting:
            col = conflicting[table]
            changed = f"{col} + 1" if col == "amount" else f"{col} || '9'"
            con.execute(
                f"INSERT INTO t SELECT * REPLACE ({changed} AS {col}) FROM t WHERE rowid % 983 = 7 "
                f"AND rowid < {n * 983}"
            )
        con.execute(f"COPY t TO '{target / path.name}' (FORMAT parquet)")
    con.close()
    return target


# --------------------------------------------------------------------------- main


def machine() -> dict:
    """CPU model, cores, RAM, Python."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    mem = next(int(ln.split()[1]) for ln in meminfo if ln.startswith("MemTotal"))
    return {"cpu": cpu, "nproc": os.cpu_count(), "ram_gib": round(mem / 2**20, 1), "python": platform.python_version()}


def run_child(variant: str, args: argparse.Namespace, data: Path) -> dict:
    """Run one variant in a fresh interpreter and return its JSON report."""
    command = [sys.executable, "-m", "benchmarks.validation_bench", "--child", variant, "--data", str(data),
               "--old-ref", args.old_ref, "--memory-limit", args.memory_limit]
    if args.features:
        command.append("--features")
    if args.as_of:
        command += ["--as-of", args.as_of]
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def row_text(report: dict) -> str:
    """One line per variant for the console and the results file."""
    v = report["validation"]
    text = (f"{report['variant']:>3}: validation {v['wall_s']:6.2f} s wall, {v['cpu_s']:6.2f} s CPU, "
            f"peak RSS {v['peak_rss_gb']:.2f} GB (after {report['rss_after_validation_gb']:.2f}), "
            f"load {v['loadavg_1m']}")
    if "features" in report:
        f = report["features"]
        text += (f" | features {f['customers']:,} customers {f['wall_s']:6.2f} s wall, {f['cpu_s']:6.2f} s CPU, "
                 f"peak RSS {f['peak_rss_gb']:.2f} GB, load {f['loadavg_1m']}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of table files")
    parser.add_argument("--old-ref", default=DEFAULT_OLD_REF, help="git revision of the reference code")
    parser.add_argument("--no-old", action="store_true", help="measure only the current code")
    parser.add_argument("--features", action="store_true", help="also stream the feature table afterwards")
    parser.add_argument("--as-of", default=None, help="feature date (default: day after the last transaction)")
    parser.add_argument("--inject-errors", type=int, default=0, help="damage N rows per table first")
    parser.add_argument("--memory-limit", default=MEMORY_LIMIT, help="DuckDB memory limit of the new code")
    parser.add_argument("--check", action="store_true", help="compare old and new results and stop")
    parser.add_argument("--child", choices=("new", "old"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="validation-damaged-") as scratch:
        data = inject_errors(args.data, args.inject_errors, Path(scratch)) if args.inject_errors else args.data
        if args.check:
            problems = compare(data, args.old_ref, args.memory_limit)
            print("OK: old and new give identical results" if not problems else "\n".join(problems))
            return 1 if problems else 0
        print(f"machine: {machine()}; data: {args.data}"
              + (f" with {args.inject_errors} damaged rows per table" if args.inject_errors else ""))
        reports = [run_child("new", args, data)]
        if not args.no_old:
            reports.append(run_child("old", args, data))
        print(f"rows: {reports[0]['rows']}; quarantined: {reports[0]['quarantined']}")
        for report in reports:
            print(row_text(report))
        if len(reports) == 2:
            new, old = reports[0]["validation"], reports[1]["validation"]
            print(f"old / new: {old['cpu_s'] / new['cpu_s']:.1f}x CPU, {old['wall_s'] / new['wall_s']:.1f}x wall, "
                  f"{old['peak_rss_gb'] / new['peak_rss_gb']:.1f}x peak RSS")
        print(json.dumps(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
