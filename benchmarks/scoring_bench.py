"""Scoring benchmark: 1M customers through validation, training, scoring, reasons, segments and publishing.

    python -m benchmarks.scoring_bench --customers 1000000 [--chunk-size N] [--skip-e2e] [--skip-stages]

(1) Makes the demo data once (the `demo` package, default seed and end) under
benchmarks/.work/demo-<N>-s7/ (git-ignored) and reuses it.
(2) Times each stage of one `custscore run --data DIR --retrain` (`--no-train`: without
--retrain, scoring with the champions of `--home`): the stages are the tasks of its Prefect flow
run (validation, training sets, fit + track + gate of each model, loading the champions,
scoring with explanations, publishing), their wall seconds read from the Prefect database of
the home, and the process's CPU seconds and peak RSS sampled from /proc every 20 ms.
(3) Runs `custscore run --data DIR --retrain` and then `custscore run --data DIR` (score
only, champions exist) under `/usr/bin/time -v` in a fresh CUSTSCORE_HOME: wall time, CPU
seconds and peak RSS of the whole job.

Each stage records wall seconds, CPU seconds of the process (all threads: DuckDB, LightGBM,
Arrow), the peak RSS seen by a 20 ms sampling thread reading /proc/self/status (VmRSS; no
psutil), and the 1-minute load average at its start: the machine may be shared, so read CPU
seconds beside wall time. Results go to benchmarks/results/scoring_stages.json and scoring_stages.md,
paths in the recorded commands relative to the repository.
Run manually; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results"
SEED = 7


# --------------------------------------------------------------------------- machine and memory


def machine_info() -> dict:
    """nproc, RAM, CPU model, Python and the load average now."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return {
        "nproc": os.cpu_count(), "affinity_cpus": len(os.sched_getaffinity(0)), "ram_gib": round(mem_kb / 2**20, 1),
        "cpu": cpu, "python": platform.python_version(), "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples VmRSS every `interval` seconds; `reset()` starts a new peak window."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak = rss_bytes()

    def stop(self) -> None:
        self._stop.set()


# --------------------------------------------------------------------------- data


def data_dir(customers: int) -> Path:
    return WORK / f"demo-{customers}-s{SEED}"


def ensure_data(customers: int) -> tuple[Path, dict]:
    """Generate the demo data once (in a child process, so its 5 GB peak is not ours)."""
    folder = data_dir(customers)
    if (folder / "transactions.parquet").exists():
        return folder, {"generated": False}
    print(f"generating demo data for {customers:,} customers into {folder}", flush=True)
    code = (
        "import sys; from pathlib import Path; from demo import generate_demo_data, write_demo_data;"
        f"p = Path({str(folder)!r}); s = p.with_name(p.name + '.partial');"
        f"write_demo_data(generate_demo_data({customers}, seed={SEED}), s, 'parquet'); s.replace(p)"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return folder, {"generated": True, "generate_wall_s": round(time.perf_counter() - started, 1)}


def data_rows(folder: Path) -> dict:
    import pyarrow.parquet as pq

    return {p.stem: pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet"))}


# --------------------------------------------------------------------------- stages of `custscore run`


class ProcessSampler:
    """Another process's CPU seconds (all its threads) and VmRSS every `interval` seconds, with the time."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float, int]] = []  # (unix time, CPU seconds so far, RSS bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()  # fields from the 3rd (state) on
                with open(f"/proc/{self.pid}/status") as f:
                    rss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
            except OSError:  # the process has ended
                return
            self.samples.append((time.time(), (int(fields[11]) + int(fields[12])) / tick, rss))  # utime + stime
            time.sleep(self.interval)

    def start(self) -> ProcessSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, start: float, end: float) -> dict:
        """CPU seconds used and peak RSS between two unix times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        before = [s for s in self.samples if s[0] < start]
        cpu_start = before[-1][1] if before else (inside[0][1] if inside else 0.0)
        cpu_end = inside[-1][1] if inside else cpu_start
        return {"cpu_s": round(cpu_end - cpu_start, 2),
                "peak_rss_gib": round(max((s[2] for s in inside), default=0) / 2**30, 2)}


def prefect_task_runs(database: Path) -> list[tuple[str, float, float]]:
    """(task, start, end) in unix time of the latest flow run recorded in a home's Prefect database."""
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT name, start_time, end_time FROM task_run WHERE start_time IS NOT NULL AND end_time IS NOT NULL "
            "AND flow_run_id = (SELECT id FROM flow_run ORDER BY start_time DESC LIMIT 1) ORDER BY start_time"
        ).fetchall()
    finally:
        con.close()
    unix = lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()  # noqa: E731 - stored as UTC
    return [(name.rsplit("-", 1)[0], unix(start), unix(end)) for name, start, end in rows]


def run_stages(folder: Path, chunk_size: int | None, out: Path, retrain: bool = True, home: Path | None = None) -> None:
    """Time every stage of one `custscore run` (the tasks of its Prefect flow run); a JSON of the rows to `out`.

    Wall seconds come from Prefect's record of each task run in the home; CPU seconds (all
    threads) and peak RSS from the run's process, sampled every 20 ms. Without `home`: a
    temporary custscore home, removed afterwards. With `home`: that home, kept (its champions
    can then score without retraining: `--no-train`).
    """
    tmp = Path(tempfile.mkdtemp(prefix="custscore-bench-"))
    home = home.resolve() if home is not None else tmp / "home"
    command, env = cli_command(folder, home, retrain, chunk_size)
    load = os.getloadavg()[0]
    result: dict = {"command": " ".join(["custscore", *command[1:]]), "load1_at_start": round(load, 2), "rows": []}
    try:
        proc = subprocess.Popen(command, env=env, cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        sampler = ProcessSampler(proc.pid).start()
        output, _ = proc.communicate()
        sampler.stop()
        result["returncode"] = proc.returncode
        if proc.returncode != 0:
            result["error"] = output[-3000:]
        for stage, start, end in prefect_task_runs(home / "prefect" / "prefect.db"):
            row = {"stage": stage, "wall_s": round(end - start, 2), **sampler.window(start, end)}
            result["rows"].append(row)
            print(f"  {stage:<34} {row['wall_s']:8.2f} s wall {row['cpu_s']:8.2f} s cpu "
                  f"{row['peak_rss_gib']:6.2f} GiB", flush=True)
        result["peak_rss_gib"] = round(max((s[2] for s in sampler.samples), default=0) / 2**30, 2)
    finally:
        out.write_text(json.dumps(result, indent=2, default=str))
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- end to end via the CLI


def parse_time_v(text: str) -> dict:
    """Wall, user, system seconds, max RSS, page faults, blocks read and written and involuntary switches from GNU time -v."""
    def grab(pattern: str) -> str | None:
        m = re.search(pattern, text)
        return m.group(1) if m else None

    wall = grab(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)")
    seconds = None
    if wall:
        parts = [float(p) for p in wall.split(":")]
        seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    user, system = grab(r"User time \(seconds\): ([\d.]+)"), grab(r"System time \(seconds\): ([\d.]+)")
    rss = grab(r"Maximum resident set size \(kbytes\): (\d+)")
    counters = {
        "minor_faults": r"Minor \(reclaiming a frame\) page faults: (\d+)",
        "major_faults": r"Major \(requiring I/O\) page faults: (\d+)",
        "fs_input_blocks": r"File system inputs: (\d+)",
        "fs_output_blocks": r"File system outputs: (\d+)",
        "involuntary_switches": r"Involuntary context switches: (\d+)",
    }
    return {
        "wall_s": round(seconds, 2) if seconds is not None else None,
        "cpu_s": round(float(user) + float(system), 2) if user and system else None,
        "user_s": float(user) if user else None,
        "sys_s": float(system) if system else None,
        "peak_rss_gib": round(int(rss) / 2**20, 2) if rss else None,
        **{name: int(value) for name, pattern in counters.items() if (value := grab(pattern)) is not None},
    }


def shown_command(words: list[str]) -> str:
    """A command as the results record it: absolute paths made relative to the repository, so
    the record reads the same from any clone."""
    return " ".join(os.path.relpath(word, ROOT) if word.startswith("/") else word for word in words)


def run_cli(folder: Path, home: Path, retrain: bool, chunk_size: int | None) -> dict:
    """`custscore run --data DIR [--retrain]` under /usr/bin/time -v in the given home."""
    command, env = cli_command(folder, home, retrain, chunk_size)
    load = os.getloadavg()[0]
    proc = subprocess.run(["/usr/bin/time", "-v", *command], env=env, cwd=home.parent, capture_output=True, text=True, check=False)
    timing = parse_time_v(proc.stderr)
    if proc.returncode != 0:
        timing["error"] = proc.stderr[-3000:] + proc.stdout[-2000:]
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-40:]
    print(f"  {' '.join(command[1:])}: {timing}  load {load:.2f}", flush=True)
    return {"command": shown_command(["custscore", *command[1:]]), "returncode": proc.returncode,
            "load1_at_start": round(load, 2), **timing, "stdout_tail": tail}


def cli_command(folder: Path, home: Path, retrain: bool, chunk_size: int | None) -> tuple[list[str], dict[str, str]]:
    """`custscore run --data DIR [--config FILE] [--retrain]` and its environment for the given home."""
    env = {**os.environ, "CUSTSCORE_HOME": str(home)}
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL"):  # the home holds both
        env.pop(key, None)
    command = [str(Path(sys.executable).with_name("custscore")), "run", "--data", str(folder)]
    if chunk_size:
        config = home.parent / "config.yaml"
        home.parent.mkdir(parents=True, exist_ok=True)
        write_config_with_chunk(config, chunk_size)
        command += ["--config", str(config)]
    if retrain:
        command.append("--retrain")
    return command, env


def write_config_with_chunk(path: Path, chunk_size: int) -> None:
    """The default config with another scoring chunk size (and segments file next to it)."""
    text = (ROOT / "configs" / "default.yaml").read_text()
    text = re.sub(r"chunk_size: \d+", f"chunk_size: {chunk_size}", text)
    text = text.replace("segments_file: segments.yaml", f"segments_file: {ROOT / 'configs' / 'segments.yaml'}")
    path.write_text(text)


# --------------------------------------------------------------------------- report


def write_markdown(result: dict, path: Path) -> None:
    """Human-readable summary of scoring_stages.json."""
    m = result["machine"]
    lines = [
        "# Scoring benchmark", "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['started']} UTC  ",
        (f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}, "
        f"load average at start {m['loadavg_at_start']} (shared machine: read CPU seconds beside wall time)  "),
        f"Data: {result.get('data_rows')}", "",
    ]
    if result.get("champions_from"):
        lines += [f"Champions: {result['champions_from']}", ""]
    stages = result.get("stages")
    if stages and stages.get("rows"):
        lines += [f"## Stages of `{stages['command']}` (its Prefect task runs)", "",
                  "Wall seconds from Prefect's record of each task run; CPU seconds (all threads) and peak RSS of the "
                  f"process sampled every 20 ms; train-and-gate trains churn, then value. Load average at start "
                  f"{stages['load1_at_start']}.", "",
                  "| stage | wall s | CPU s | peak RSS GiB |", "|---|---:|---:|---:|"]
        for row in stages["rows"]:
            lines.append(f"| {row['stage']} | {row['wall_s']} | {row['cpu_s']} | {row['peak_rss_gib']} |")
        lines += ["", f"Process peak RSS: {stages.get('peak_rss_gib')} GiB.", ""]
    for name in ("cli_retrain", "cli_score_only"):
        run = result.get(name)
        if run:
            lines += [f"## `{run['command']}`", "",
                      (f"wall {run['wall_s']} s, CPU {run['cpu_s']} s, peak RSS {run['peak_rss_gib']} GiB, "
                      f"exit {run['returncode']}, load1 at start {run['load1_at_start']}"), ""]
    if result.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=None, help="override configs' scoring.chunk_size")
    parser.add_argument("--skip-stages", action="store_true", help="skip the in-process stage timings")
    parser.add_argument("--skip-e2e", action="store_true", help="skip the two `custscore run` subprocesses")
    parser.add_argument("--home", type=Path, help="custscore home to use and keep (default: a temporary one)")
    parser.add_argument("--no-train", action="store_true", help="skip training: score with the home's champions")
    parser.add_argument("--note", action="append", default=[], help="a note to keep with the results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--stages-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    folder = data_dir(args.customers)
    if args.stages_child:
        run_stages(folder, args.chunk_size, args.stages_child, retrain=not args.no_train, home=args.home)
        return
    result = {"command": shown_command(["python", "-m", "benchmarks.scoring_bench", *(argv if argv is not None else sys.argv[1:])]),
              "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
              "customers": args.customers, "notes": args.note}
    folder, result["data"] = ensure_data(args.customers)
    result["data_rows"] = data_rows(folder)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_stages:
        print("stages (child process):", flush=True)
        child_json = WORK / "stages.json"
        cmd = [sys.executable, "-m", "benchmarks.scoring_bench", "--customers", str(args.customers),
               "--stages-child", str(child_json)] + (["--chunk-size", str(args.chunk_size)] if args.chunk_size else [])
        cmd += (["--home", str(args.home.resolve())] if args.home else []) + (["--no-train"] if args.no_train else [])
        subprocess.run(cmd, check=True, cwd=ROOT)
        result["stages"] = json.loads(child_json.read_text())
    if not args.skip_e2e:
        print("end to end (custscore run):", flush=True)
        tmp = Path(tempfile.mkdtemp(prefix="custscore-e2e-"))
        try:
            home = args.home.resolve() if args.home else tmp / "home"
            if not args.no_train:
                result["cli_retrain"] = run_cli(folder, home, True, args.chunk_size)
            result["cli_score_only"] = run_cli(folder, home, False, args.chunk_size)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    result["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    (args.out / "scoring_stages.json").write_text(json.dumps(result, indent=2, default=str))
    write_markdown(result, args.out / "scoring_stages.md")
    print(f"wrote {args.out / 'scoring_stages.json'} and {args.out / 'scoring_stages.md'}")


if __name__ == "__main__":
    main()
