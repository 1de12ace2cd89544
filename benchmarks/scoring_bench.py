"""Scoring benchmark: 1M customers through validation, training, scoring, reasons, segments and publishing.

    python -m benchmarks.scoring_bench --customers 1000000 [--chunk-size N] [--skip-e2e] [--skip-stages]

(1) Makes the demo data once (the `demo` package, default seed and end) under
benchmarks/.work/demo-<N>-s7/ (git-ignored) and reuses it.
(2) In a fresh child process (so its peak memory is its own) times each stage with the
functions the flows call: validation (pipelines.tasks.load_data), both training sets
(pipelines.tasks.training_sets), fit + track + gate of each model (pipelines.tasks.train_kind
-> pipelines.training.train_churn / train_value, MLflow on SQLite in a temp folder), loading
the champions, scoring (serving.scoring.score_all over the streamed feature batches of
pipelines.publishing.feature_chunks, with prospects), segmentation and publishing (the body of
pipelines.publishing.publish_task). Scoring is split into feature streaming (time spent
waiting for the next DuckDB batch) and the sub-stages score_all reports in
ScoringResult.timings. A reference in the same process: plain booster.predict (raw) and
booster.predict(pred_contrib=True) of both models on one chunk of customers with history.
(3) Runs `custscore run --data DIR --retrain` and then `custscore run --data DIR` (score
only, champions exist) under `/usr/bin/time -v` in a fresh CUSTSCORE_HOME: wall time, CPU
seconds and peak RSS of the whole job.

Each stage records wall seconds, CPU seconds of the process (all threads: DuckDB, LightGBM,
Arrow), the peak RSS seen by a 20 ms sampling thread reading /proc/self/status (VmRSS; no
psutil), and the 1-minute load average at its start: the machine may be shared, so read CPU
seconds beside wall time. Results go to benchmarks/results/scoring.json and scoring.md.
Run manually; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
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


class Stages:
    """Wall, CPU, peak RSS and load average per named stage, in order."""

    def __init__(self, sampler: RssSampler) -> None:
        self.sampler = sampler
        self.rows: list[dict] = []

    @contextmanager
    def stage(self, name: str, **extra):
        self.sampler.reset()
        load = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        row = {"stage": name, **extra}
        yield row
        row.update(wall_s=round(time.perf_counter() - wall, 2), cpu_s=round(time.process_time() - cpu, 2),
                   peak_rss_gib=round(max(self.sampler.peak, rss_bytes()) / 2**30, 2), load1_at_start=round(load, 2))
        self.rows.append(row)
        print(f"  {name:<34} {row['wall_s']:8.2f} s wall {row['cpu_s']:8.2f} s cpu "
              f"{row['peak_rss_gib']:6.2f} GiB  load {load:.2f}", flush=True)


class TimedChunks:
    """Wraps the feature-batch iterator: wall and CPU time spent producing batches (DuckDB + pandas)."""

    def __init__(self, chunks) -> None:
        self._it = iter(chunks)
        self.wall = self.cpu = 0.0
        self.rows = self.batches = 0

    def __iter__(self):
        return self

    def __next__(self):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            batch = next(self._it)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
        self.rows += len(batch)
        self.batches += 1
        return batch


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


# --------------------------------------------------------------------------- in-process stages


def run_stages(folder: Path, chunk_size: int | None, out: Path, retrain: bool = True, home: Path | None = None) -> None:
    """Time every stage as the flows run them; write a JSON of the rows to `out`.

    Without `home`: a temporary custscore home with MLflow on SQLite in a temporary folder,
    removed afterwards. With `home`: that home and its MLflow database, kept (its champions
    can then score without retraining).
    """
    tmp = Path(tempfile.mkdtemp(prefix="custscore-bench-"))
    if home is None:
        os.environ["CUSTSCORE_HOME"] = str(tmp / "home")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    else:
        os.environ["CUSTSCORE_HOME"] = str(home.resolve())
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    from pipelines.environment import prepare_environment

    paths = prepare_environment()  # sets Prefect/MLflow quiet defaults before they are imported
    import numpy as np

    from pipelines import publishing, tasks, tracking
    from pipelines.runs import Run, RunRequest, resolve_config
    from serving import scoring
    from serving.segments import assign_segments, segment_summary
    from serving.store import ScoreStore

    sampler = RssSampler().start()
    stages = Stages(sampler)
    result: dict = {"rows": stages.rows, "baseline_rss_gib": round(rss_bytes() / 2**30, 2)}
    try:
        cfg = resolve_config(RunRequest(data=str(folder)))
        if chunk_size:
            cfg = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"chunk_size": chunk_size})})
        tracking.configure_tracking(paths.tracking_uri, paths.mlflow_artifacts)
        clock = tasks.utc_now()
        with stages.stage("validate (load_and_validate)"):
            data = tasks.load_data.fn(folder, cfg, paths, clock)
        run = Run(cfg, paths, data, tasks.default_as_of(data), clock, str(folder))
        result["input_rows"] = data.report_json()
        if retrain:
            with stages.stage("training-set build (churn + value)", max_customers=cfg.training.max_customers) as row:
                sets = tasks.training_sets.fn(run.data, run.as_of, run.cfg)
                row["rows"] = {k: len(v) for k, v in sets.items()}
            for kind in ("churn", "value"):
                with stages.stage(f"fit + track + gate {kind}") as row:
                    outcome = tasks.train_kind.fn(kind, sets[kind], run.cfg, run.data, run.as_of, run.source_label)
                    row["grade"] = outcome.grade
            del sets
        with stages.stage("load champions (MLflow)"):
            champions = tasks.load_champions.fn()
        models = publishing.scoring_models(champions)
        run_id = publishing.run_id_for(run, models)
        workdir = paths.root / "work" / run_id
        settings = publishing.scoring_settings(cfg)
        with stages.stage("score_all (features + predict + SHAP + reasons + parts)", chunk_size=cfg.scoring.chunk_size) as row:
            chunks = TimedChunks(publishing.feature_chunks(run, cfg.scoring.chunk_size))
            scored = scoring.score_all(chunks, models, settings, workdir, run_id=run_id)
            row["customers"] = len(scored.numbers)
            row["with_history"] = int((~scored.numbers["is_new"].astype(bool)).sum())
        score_row = stages.rows[-1]
        score_row["features_wall_s"] = round(chunks.wall, 2)
        score_row["features_cpu_s"] = round(chunks.cpu, 2)
        score_row["batches"] = chunks.batches
        score_row["sub_stages_s"] = {k: round(v, 2) for k, v in getattr(scored, "timings", {}).items()}
        score_row["sub_stages_thread_cpu_s"] = {k: round(v, 2) for k, v in getattr(scored, "cpu_timings", {}).items()}
        with stages.stage("segmentation (assign_segments + segment_summary)"):
            segmented = assign_segments(scored.numbers, cfg.segments)
            summary = segment_summary(segmented, cfg.segments)
        with stages.stage("publishing (ScoreStore.publish_parts: links the part files, writes the numbers; atomic)") as row:
            metadata = publishing.run_metadata(run, champions, run_id)
            published = ScoreStore(paths.store).publish_parts(
                metadata, segmented, scored.score_parts, scored.explanation_parts, summary,
            )
            row["score_rows"], row["explanation_rows"] = published.score_rows, published.explanation_rows
        shutil.rmtree(workdir, ignore_errors=True)
        result["reference"] = reference_timings(run, models, min(cfg.scoring.chunk_size, 100_000), np)
        result["peak_rss_gib_ru_maxrss"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    finally:
        sampler.stop()
        out.write_text(json.dumps(result, indent=2, default=str))
        shutil.rmtree(tmp, ignore_errors=True)


def reference_timings(run, models, rows: int, np) -> dict:
    """Plain booster.predict (raw) and pred_contrib of both models on one chunk of customers with history."""
    from pipelines import publishing
    from serving.scoring import has_history

    features = next(iter(publishing.feature_chunks(run, 4 * rows)))
    features = features.loc[has_history(features)].head(rows).reset_index(drop=True)
    out = {"rows": len(features)}
    for kind, model, booster in (("churn", models.churn, models.churn.booster_),
                                 ("value", models.value, models.value.boosters_["revenue"])):
        X = features[model.feature_names_]
        for what, kwargs in (("predict_raw", {"raw_score": True}), ("pred_contrib", {"pred_contrib": True})):
            wall, cpu = time.perf_counter(), time.process_time()
            booster.predict(X, **kwargs)
            out[f"{kind}_{what}_wall_s"] = round(time.perf_counter() - wall, 3)
            out[f"{kind}_{what}_cpu_s"] = round(time.process_time() - cpu, 3)
        out[f"{kind}_trees"] = booster.num_trees()
        out[f"{kind}_features"] = len(model.feature_names_)
    out["value_boosters"] = sorted(getattr(models.value, "boosters_", {}))
    return out


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


def run_cli(folder: Path, home: Path, retrain: bool, chunk_size: int | None) -> dict:
    """`custscore run --data DIR [--retrain]` under /usr/bin/time -v in the given home."""
    env = {**os.environ, "CUSTSCORE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [str(Path(sys.executable).with_name("custscore")), "run", "--data", str(folder)]
    if chunk_size:
        config = home.parent / "config.yaml"
        write_config_with_chunk(config, chunk_size)
        command += ["--config", str(config)]
    if retrain:
        command.append("--retrain")
    load = os.getloadavg()[0]
    proc = subprocess.run(["/usr/bin/time", "-v", *command], env=env, cwd=home.parent, capture_output=True, text=True, check=False)
    timing = parse_time_v(proc.stderr)
    if proc.returncode != 0:
        timing["error"] = proc.stderr[-3000:] + proc.stdout[-2000:]
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-40:]
    print(f"  {' '.join(command[1:])}: {timing}  load {load:.2f}", flush=True)
    return {"command": " ".join(["custscore", *command[1:]]), "returncode": proc.returncode,
            "load1_at_start": round(load, 2), **timing, "stdout_tail": tail}


def write_config_with_chunk(path: Path, chunk_size: int) -> None:
    """The default config with another scoring chunk size (and segments file next to it)."""
    text = (ROOT / "configs" / "default.yaml").read_text()
    text = re.sub(r"chunk_size: \d+", f"chunk_size: {chunk_size}", text)
    text = text.replace("segments_file: segments.yaml", f"segments_file: {ROOT / 'configs' / 'segments.yaml'}")
    path.write_text(text)


# --------------------------------------------------------------------------- report


def write_markdown(result: dict, path: Path) -> None:
    """Human-readable summary of scoring.json."""
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
        lines += ["## Stages (one process, functions the flows call)", "",
                  "| stage | wall s | CPU s | peak RSS GiB | load1 at start |", "|---|---:|---:|---:|---:|"]
        for row in stages["rows"]:
            lines.append(f"| {row['stage']} | {row['wall_s']} | {row['cpu_s']} | {row['peak_rss_gib']} | {row['load1_at_start']} |")
        score = next((r for r in stages["rows"] if r["stage"].startswith("score_all")), None)
        if score:
            lines += ["", (f"Inside score_all ({score.get('customers')} customers, {score.get('with_history')} with history, "
                      f"{score.get('batches')} batches of {score.get('chunk_size')}): feature streaming "
                      f"{score.get('features_wall_s')} s wall / {score.get('features_cpu_s')} s CPU; "
                      f"sub-stages (busy seconds, summed over threads where they overlap): {score.get('sub_stages_s')}; "
                      f"CPU seconds of the thread running each sub-stage (LightGBM's worker threads not included): "
                      f"{score.get('sub_stages_thread_cpu_s')}")]
        lines += ["", (f"Process peak RSS (ru_maxrss): {stages.get('peak_rss_gib_ru_maxrss')} GiB; "
                  f"baseline after imports {stages.get('baseline_rss_gib')} GiB."), "",
                  f"Reference (same process, one chunk with history): {stages.get('reference')}", ""]
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
    result = {"command": "python -m benchmarks.scoring_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
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
    (args.out / "scoring.json").write_text(json.dumps(result, indent=2, default=str))
    write_markdown(result, args.out / "scoring.md")
    print(f"wrote {args.out / 'scoring.json'} and {args.out / 'scoring.md'}")


if __name__ == "__main__":
    main()
