"""What measuring drift adds to a scoring run: CPU seconds and their ratio to the run's scoring.

    OMP_NUM_THREADS=1 python -m benchmarks.drift_bench --customers 100000 [--train-customers 10000] [--repeat 2]

Makes the demo data once (default seed and end) under benchmarks/.work/demo-<N>-s7/, trains a
churn and a value model here with default parameters on a hash sample of the customers (as
pipelines.training does, reason and drift references on the latest validation snapshot), then
scores every customer with `serving.score_run` in chunks of the default size, alternately with
the models' drift references and without them (drift not measured), `--repeat` times each.
Reports the drift meter's own CPU seconds (thread CPU of counting features and scores, from the
run's `cpu_timings["drift"]`), the process CPU seconds of each scoring call, and the ratios.
Run manually; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
SEED = 7
AS_OF = datetime(2026, 10, 1)  # the day after the demo data's default end


def demo_folder(customers: int) -> Path:
    """The demo data of `customers` customers, generated once in a subprocess (its memory returned at exit)."""
    folder = WORK / f"demo-{customers}-s{SEED}"
    if not folder.exists():
        staging = folder.with_suffix(".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run([sys.executable, "-c",
                        "import sys; from pathlib import Path; from demo import generate_demo_data, write_demo_data; "
                        f"write_demo_data(generate_demo_data({customers}, seed={SEED}), Path(sys.argv[1]), 'parquet')",
                        str(staging)], check=True, cwd=ROOT)
        staging.replace(folder)
    return folder


def validated_tables(data: Path, workdir: Path):
    from features.attributes import choose_attributes, keep_chosen_attributes
    from features.validation import load_and_validate

    tables = load_and_validate(data, clock=AS_OF, database=workdir / "bench.duckdb").tables
    tables["customers"] = keep_chosen_attributes(tables["customers"], choose_attributes(tables["customers"]))
    return tables


def trained_models(tables, spec, train_customers: int):
    """Churn and value models fitted as pipelines.training fits them (fixed design), with their references."""
    from features.build import has_transaction_history
    from features.training_set import build_training_set
    from models.churn import ChurnModel
    from models.params import ChurnParams, ValueParams
    from models.splits import split_by_flag
    from models.value import ValueModel
    from pipelines.config import load_config

    cfg = load_config()
    t, labels = cfg.training, cfg.labels
    frame = build_training_set(
        tables, AS_OF, spec=spec, churn_horizon_days=labels.churn_horizon_days,
        value_horizon_days=labels.value_horizon_days, n_snapshots=t.n_snapshots, step_days=t.step_days,
        n_validation_snapshots=t.n_validation_snapshots, min_history_days=t.min_history_days,
        max_customers=train_customers, data_end=AS_OF,
    )
    names = [c for c in frame.columns if c not in ("customer_id", "as_of", "is_validation") and not c.startswith("label_")]
    train, valid = split_by_flag(frame)
    latest = valid.loc[valid["as_of"] == valid["as_of"].max()]
    population = latest.loc[has_transaction_history(latest)]
    churn = ChurnModel(ChurnParams()).fit(train[names], train["label_churn"], valid[names], valid["label_churn"], names,
                                          reason_population=population)
    value = ValueModel(ValueParams()).fit(train[names], train["label_revenue"], valid[names], valid["label_revenue"], names,
                                          margin=train["label_margin"], margin_val=valid["label_margin"],
                                          reason_population=population)
    return churn, value


def timed_score(tables, spec, models, workdir: Path) -> dict:
    """One scoring call over every customer: process CPU and wall seconds, and the drift meter's own."""
    from features.build import iter_feature_batches
    from pipelines.config import load_config
    from serving.score_run import score_run

    cfg = load_config()
    shutil.rmtree(workdir, ignore_errors=True)
    cpu, wall = time.process_time(), time.perf_counter()
    scored = score_run(iter_feature_batches(tables, AS_OF, spec, include_prospects=True, batch_rows=cfg.scoring.chunk_size),
                       models, cfg.scoring_settings(), workdir, run_id="bench", as_of=AS_OF.date())
    out = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "customers": scored.num_rows,
           "drift_cpu_s": scored.cpu_timings.get("drift", 0.0), "drift_wall_s": scored.timings.get("drift", 0.0),
           "drift_rows": scored.tables["drift"].num_rows if "drift" in scored.tables else 0}
    shutil.rmtree(workdir, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--train-customers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from features.build import FeatureSpec
    from serving.scoring import ScoringModels

    workdir = WORK / f"drift-{args.customers}"
    workdir.mkdir(parents=True, exist_ok=True)
    tables = validated_tables(demo_folder(args.customers), workdir)
    spec = FeatureSpec()
    churn, value = trained_models(tables, spec, args.train_customers)
    with_drift = ScoringModels(churn, value, "1", "1")
    profiles = churn.drift_profile_, value.drift_profile_
    runs: dict[str, list[dict]] = {"with drift": [], "without drift": []}
    for _ in range(args.repeat):
        for label in runs:
            churn.drift_profile_, value.drift_profile_ = profiles if label == "with drift" else (None, None)
            runs[label].append(timed_score(tables, spec, with_drift, workdir / "score"))
            print(label, json.dumps(runs[label][-1]), flush=True)
    measured = runs["with drift"]
    drift_cpu = statistics.mean(r["drift_cpu_s"] for r in measured)
    score_cpu = statistics.mean(r["cpu_s"] for r in measured)
    without_cpu = statistics.mean(r["cpu_s"] for r in runs["without drift"])
    print(json.dumps({
        "customers": args.customers, "python": platform.python_version(), "drift_rows": measured[0]["drift_rows"],
        "drift_cpu_s": round(drift_cpu, 2), "drift_wall_s": round(statistics.mean(r["drift_wall_s"] for r in measured), 2),
        "score_run_cpu_s_with": round(score_cpu, 2), "score_run_cpu_s_without": round(without_cpu, 2),
        "drift_share_of_scoring_cpu": round(drift_cpu / score_cpu, 4),
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
