"""Repeated end-to-end runs of `custscore run` at 1M customers, each between two machine references.

    python -m benchmarks.e2e_runs --data benchmarks/.work/demo-1000000-s7 \
        --home benchmarks/.work/e2e-1m --runs 6 [--retrain] [--cold] [--out FILE.json]

The machine this project is measured on is shared: the same code has taken 92 s and 168 s
within a day (benchmarks/README.md). So that a run's time can be read against the speed of
the machine at that moment, every run is preceded and followed by a fixed reference workload
in its own process:

- `duckdb`: the scoring query's costliest operator alone, the order moments of the data's
  transactions grouped by (customer_id, order_id, ts) on two threads with the run's memory
  cap, three times (about 6 s);
- `python`: one thread of the interpreter work the reason texts are made of (formatting and
  joining six million numbers into sentences, about 2 s).

Each run records the peak resident memory of the whole process tree (sampled every 0.5 s: the
run, /usr/bin/time and Prefect's local API server), wall, user and system seconds, the largest
process's peak RSS, minor page faults and bytes written (`/usr/bin/time -v`; DuckDB's spill files and the run's part files),
the durations of the flow's Prefect tasks (read from the home's Prefect database), the load
average, and the references before and after it. `run / reference` ratios are printed at the
end. With `--cold` the kernel's page cache is emptied (root) just before each run, as a machine
that reclaims it while idle leaves it for a scheduled run. The home must hold champions already (one `custscore run` there first) unless `--retrain`.
Run manually; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.scoring_bench import machine_info, parse_time_v

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the references


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def duckdb_reference(data: Path, memory_limit: str = "2GB", repeats: int = 3) -> dict:
    """Order moments of the transactions, `repeats` times: the scoring query's largest grouping, alone."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = 2; SET memory_limit = '{memory_limit}'")
    source = str(data / "transactions.parquet").replace("'", "''")
    query = (f"SELECT count(*) FROM (SELECT customer_id, order_id, ts, sum(amount), count(*) "
             f"FROM read_parquet('{source}') GROUP BY ALL)")
    wall, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(repeats):
        groups = con.execute(query).fetchone()[0]
    return {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(_cpu_seconds() - cpu, 2), "groups": groups}


def python_reference(numbers: int = 6_000_000) -> dict:
    """One thread formatting and joining numbers into sentences, like the reason texts."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    sentences = [f"spend in the last 90 days fell {i % 997 / 9.7:.1f}% against the 90 days before" for i in range(numbers)]
    joined = sum(len("; ".join(sentences[i:i + 6])) for i in range(0, numbers, 6))
    return {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(_cpu_seconds() - cpu, 2), "chars": joined}


def measure_reference(data: Path) -> dict:
    """Both references in a fresh process, so neither inherits the benchmark's or a run's memory."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.e2e_runs", "--reference-only", "--data", str(data)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- one run


def prefect_task_seconds(home: Path, started_after: datetime) -> dict[str, float]:
    """Durations of the task runs of the flow runs that started after `started_after`.

    Keys are the task names in start order; a name seen again gets `#2`, `#3` (the two
    train-and-gate tasks of a retrain, churn first).
    """
    db = home / "prefect" / "prefect.db"
    # Read-only, so a missing database is an error here instead of an empty file left behind.
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        rows = con.execute(
            "SELECT t.name, (julianday(t.end_time) - julianday(t.start_time)) * 86400 "
            "FROM task_run t JOIN flow_run f ON t.flow_run_id = f.id "
            "WHERE f.start_time >= ? ORDER BY t.start_time",
            (started_after.strftime("%Y-%m-%d %H:%M:%S"),),
        ).fetchall()
    durations: dict[str, float] = {}
    for name, seconds in rows:
        if seconds is None:  # a task that never finished
            continue
        key = base = name.rsplit("-", 1)[0]
        repeat = 1
        while key in durations:
            repeat += 1
            key = f"{base}#{repeat}"
        durations[key] = round(seconds, 1)
    return durations


def tree_rss_bytes(root: int) -> int:
    """Resident memory of process `root` and all its descendants (Prefect's API server among them)."""
    parents, rss = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # After the command name: field 4 (ppid) is index 1, field 24 (rss, in pages) index 21.
            parents[int(entry.name)], rss[int(entry.name)] = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return sum(rss.get(pid, 0) for pid in tree) * os.sysconf("SC_PAGE_SIZE")


class TreePeak:
    """Largest resident memory of a process tree, sampled every `interval` seconds on a thread."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        self.root, self.interval, self.peak = root, interval, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, tree_rss_bytes(self.root))

    def stop(self) -> float:
        """Stop sampling; the peak in GiB."""
        self._done.set()
        self._thread.join()
        return round(self.peak / 2**30, 2)


def drop_page_cache() -> None:
    """Empty the kernel's page cache (needs root), as a machine that reclaims it while idle does."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise SystemExit(f"--cold needs to write /proc/sys/vm/drop_caches (root): {exc}") from exc


def one_run(data: Path, home: Path, retrain: bool, config: Path | None, cold: bool = False) -> dict:
    """`custscore run --data DATA [--retrain]` under /usr/bin/time -v in `home`."""
    env = {**os.environ, "CUSTSCORE_HOME": str(home)}
    # The run must use the home's own tracking and Prefect database, not inherited ones.
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL"):
        env.pop(name, None)
    command = [str(Path(sys.executable).with_name("custscore")), "run", "--data", str(data)]
    if config is not None:
        command += ["--config", str(config)]
    if retrain:
        command.append("--retrain")
    if cold:
        drop_page_cache()
    load = os.getloadavg()[0]
    started = datetime.now(UTC).replace(tzinfo=None)
    proc = subprocess.Popen(["/usr/bin/time", "-v", *command], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = TreePeak(proc.pid)
    stdout, stderr = proc.communicate()
    result = {"started_utc": started.strftime("%Y-%m-%d %H:%M:%S"), "cold": cold, "load1_at_start": round(load, 2),
              "returncode": proc.returncode, **parse_time_v(stderr), "tree_peak_gib": sampler.stop()}
    if proc.returncode != 0:
        result["error"] = (stderr[-2000:] + stdout[-2000:]).strip()
        return result
    try:
        result["tasks_s"] = prefect_task_seconds(home, started)
    except sqlite3.Error as exc:
        result["tasks_error"] = f"{home / 'prefect' / 'prefect.db'}: {exc}"
    return result


# --------------------------------------------------------------------------- report


def reference_wall(entry: dict) -> float:
    """Mean wall seconds of the DuckDB reference before and after the run."""
    return (entry["reference_before"]["duckdb"]["wall_s"] + entry["reference_after"]["duckdb"]["wall_s"]) / 2


def print_table(runs: list[dict]) -> None:
    print("\n| started (UTC) | wall s | CPU s (user + sys) | tree peak GiB | max RSS GiB | minor faults M | written GB | validate s | score s "
          "| duckdb ref s (before/after) | python ref s | wall / duckdb ref |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for run in runs:
        if run["returncode"] != 0:
            print(f"| {run['started_utc']} | failed: exit {run['returncode']} |" + " |" * 10)
            continue
        before, after = run["reference_before"], run["reference_after"]
        tasks = run.get("tasks_s", {})
        counts = {k: run.get(k) or 0 for k in ("user_s", "sys_s", "minor_faults", "fs_output_blocks")}
        print(
            f"| {run['started_utc']}{' cold' if run.get('cold') else ''} | {run['wall_s']:.1f} | {run['cpu_s']:.1f} "
            f"({counts['user_s']:.1f} + {counts['sys_s']:.1f}) | {run['tree_peak_gib']:.2f} | {run['peak_rss_gib']:.2f} "
            f"| {counts['minor_faults'] / 1e6:.2f} | {counts['fs_output_blocks'] * 512 / 1e9:.2f} "
            f"| {tasks.get('load-and-validate', float('nan')):.1f} | {tasks.get('score-and-explain', float('nan')):.1f} "
            f"| {before['duckdb']['wall_s']:.1f} / {after['duckdb']['wall_s']:.1f} "
            f"| {before['python']['wall_s']:.1f} / {after['python']['wall_s']:.1f} "
            f"| {run['wall_s'] / reference_wall(run):.2f} |"
        )


def shown_path(path: Path) -> str:
    """A path as the results record it: relative to the repository, the same from any clone."""
    return os.path.relpath(path.resolve(), ROOT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cold", action="store_true",
                        help="empty the page cache (root) after the reference, just before each run")
    parser.add_argument("--reference-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_only:
        print(json.dumps({"duckdb": duckdb_reference(args.data), "python": python_reference()}))
        return
    if args.home is None:
        parser.error("--home is required (a custscore home; it must hold champions unless --retrain)")
    runs: list[dict] = []
    result = {"machine": machine_info(), "data": shown_path(args.data), "home": shown_path(args.home), "retrain": args.retrain,
              "runs": runs}
    for i in range(args.runs):
        entry = {"reference_before": measure_reference(args.data)}
        entry.update(one_run(args.data, args.home, args.retrain, args.config, cold=args.cold))
        entry["reference_after"] = measure_reference(args.data)
        runs.append(entry)
        print(f"run {i + 1}/{args.runs}: {json.dumps({k: v for k, v in entry.items() if k != 'error'})}", flush=True)
        if args.out:
            args.out.write_text(json.dumps(result, indent=2))
    print_table(runs)


if __name__ == "__main__":
    main()
