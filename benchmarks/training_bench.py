"""Training benchmark: fit + track + gate of the churn and value models, cost and quality.

    python -m benchmarks.training_bench --customers 100000 [--variant NAME ...] [--with-champion] [--profile]
    python -m benchmarks.training_bench --customers 100000 --max-customers 25000 50000 100000

Each run is `custscore train --data DIR --config FILE` on the demo data (benchmarks/.work/demo-<N>-s7/,
made once as scoring_bench makes it) in a fresh custscore home. The config is the default one
with a variant's overrides of the model parameters (`models.churn`, `models.value`) and, for a
learning curve, `training.max_customers` (a fixed hash sample of the customers, the same in
every snapshot). The stages are the tasks of the train flow's Prefect run (validation, training
sets, train-and-gate of each model), timed as scoring_bench times them: wall seconds from
Prefect's record in the home, CPU seconds (all threads) and peak RSS of the process sampled
every 20 ms. Out-of-time quality comes from the MLflow runs of the home (`mlflow.db`): the
`model_*` metrics of the latest churn and value runs.

`--with-champion` trains twice in the same home, so that the timed run's gate re-scores a
champion, as a monthly retrain does. `--profile` runs the command under cProfile
(benchmarks/.work/training-<variant>.prof). Rows are appended to --out (JSON lines). Run
manually; not in the tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.scoring_bench import ROOT, WORK, ProcessSampler, ensure_data, prefect_task_runs

log = logging.getLogger("training_bench")

# Variants: overrides of the churn / value parameters ("both": of each).
VARIANTS: dict[str, dict] = {
    "current": {},
    "sample50k": {"both": {"bin_construct_sample_cnt": 50_000}},
    "maxbin63": {"both": {"max_bin": 63}},
    "q100k": {"value": {"interval_max_rows": 100_000}},
    "q50k": {"value": {"interval_max_rows": 50_000}},
    "threads1": {"both": {"num_threads": 1}},
}
QUALITY = {"churn": ("roc_auc", "ece", "brier", "pr_auc"),
           "value": ("normalized_gini", "spearman", "aggregate_bias_pct", "interval_coverage")}


def write_config(path: Path, variant: str, max_customers: int | None) -> None:
    """The default configuration with a variant's model parameters and the training customers."""
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["segments_file"] = str(ROOT / "configs" / "segments.yaml")
    override = VARIANTS[variant]
    models = config.setdefault("models", {})
    for kind in ("churn", "value"):
        models.setdefault(kind, {}).update({**override.get("both", {}), **override.get(kind, {})})
    if max_customers is not None:
        config["training"]["max_customers"] = max_customers
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def train_command(data: Path, config: Path, profile: Path | None) -> list[str]:
    """`custscore train --data DIR --config FILE`, under cProfile when asked."""
    cli = [str(Path(sys.executable).with_name("custscore"))]
    if profile is not None:
        cli = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "pipelines.cli"]
    return [*cli, "train", "--data", str(data), "--config", str(config)]


def timed_train(command: list[str], home: Path) -> dict:
    """One `custscore train` in `home`: stages from its Prefect run, CPU and RSS sampled from /proc."""
    env = {**os.environ, "CUSTSCORE_HOME": str(home)}
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL"):  # the home holds both
        env.pop(key, None)
    load = os.getloadavg()[0]
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = ProcessSampler(proc.pid).start()
    output, _ = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{output[-3000:]}")
    stages = [{"stage": stage, "wall_s": round(end - start, 2), **sampler.window(start, end)}
              for stage, start, end in prefect_task_runs(home / "prefect" / "prefect.db")]
    total = sampler.window(sampler.samples[0][0], sampler.samples[-1][0]) if sampler.samples else {}
    return {"load1_at_start": round(load, 2), "stages": stages, "process": total}


def latest_quality(home: Path) -> dict[str, dict[str, float]]:
    """The `model_*` metrics of the latest top-level MLflow run of each model kind in the home."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    quality = {}
    for kind, keys in QUALITY.items():
        experiment = client.get_experiment_by_name(f"custscore-{kind}")
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"]) if experiment else []
        top = next((r for r in runs if "mlflow.parentRunId" not in r.data.tags and f"model_{keys[0]}" in r.data.metrics), None)
        quality[kind] = {k: round(top.data.metrics[f"model_{k}"], 4) for k in keys if top and f"model_{k}" in top.data.metrics}
    return quality


def run(customers: int, variants: list[str], max_customers: list[int | None], with_champion: bool, profile: bool,
        out: Path) -> list[dict]:
    """Time `custscore train` per variant and training sample in a fresh home each; append rows to `out`."""
    data, _ = ensure_data(customers)
    rows = []
    for variant in variants:
        for cap in max_customers:
            tmp = Path(tempfile.mkdtemp(prefix="custscore-trainbench-"))
            try:
                config = tmp / "config.yaml"
                write_config(config, variant, cap)
                if with_champion:
                    timed_train(train_command(data, config, None), tmp / "home")
                prof = WORK / f"training-{variant}.prof" if profile else None
                row = {"variant": variant, "customers": customers, "max_customers": cap, "with_champion": with_champion,
                       **timed_train(train_command(data, config, prof), tmp / "home"),
                       "quality": latest_quality(tmp / "home")}
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            log.info("%s", json.dumps(row))
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--variant", nargs="+", default=["current"], choices=sorted(VARIANTS))
    parser.add_argument("--max-customers", type=int, nargs="+", default=[None],
                        help="training.max_customers per run (a learning curve); default: the config's")
    parser.add_argument("--with-champion", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=WORK / "training-runs.jsonl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(args.customers, args.variant, args.max_customers, args.with_champion, args.profile, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
