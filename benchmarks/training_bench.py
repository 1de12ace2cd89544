"""Training benchmark: fit + track + gate of the churn and value models, cost and quality.

    python -m benchmarks.training_bench build --customers 100000 [--max-customers N]
    python -m benchmarks.training_bench run --customers 100000 [--variant NAME ...] [--profile]
    python -m benchmarks.training_bench run --customers 100000 --train-share 0.25 0.5 1.0

`build` validates the demo data (benchmarks/.work/demo-<N>-s7/, made by scoring_bench) and
builds both training sets as the flow does (pipelines.tasks.training_sets with the default
config), then saves them to Parquet under benchmarks/.work/training-sets-<N>[-m<M>]/ so the
other commands do not pay the build again.

`run` times pipelines.training.train_churn and train_value (fit, out-of-time evaluation,
plots, MLflow logging on SQLite in a temporary folder, model registration, champion gate) on
the saved sets, once per variant (a variant overrides model parameters or the training row
cap), and records out-of-time quality: AUC, Gini, ECE, Brier (churn); normalized Gini,
interval coverage and bias (value). Each fit runs in a fresh MLflow store, so the gate never
re-scores a champion unless `--with-champion` (then a first run makes a champion and the
timed run re-scores it, as a monthly retrain does).

`--train-share` (a learning curve) refits on hash samples of the customers (the same
customers in every snapshot, as training.max_customers samples them) and reports quality
on the sample's validation rows (what the run logs) and on every validation row of the
saved set (`full_validation`), so figures for different samples are comparable.

CPU seconds (all threads of the process, resource.getrusage) are reported beside wall time
and the 1-minute load average, since the machine is shared. Run manually; not in the tests.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results"

log = logging.getLogger("training_bench")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def timed(row: dict):
    """Record wall s, CPU s and the load average at the start into `row`."""
    row["load1_start"] = round(os.getloadavg()[0], 2)
    wall, cpu = time.perf_counter(), cpu_seconds()
    yield row
    row["wall_s"] = round(time.perf_counter() - wall, 2)
    row["cpu_s"] = round(cpu_seconds() - cpu, 2)
    # the process's peak so far (includes the loaded training sets), not this stage's alone
    row["peak_rss_gib_so_far"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def sets_dir(customers: int, max_customers: int | None) -> Path:
    """Where the saved training sets of one demo size (and row cap) live."""
    suffix = f"-m{max_customers}" if max_customers else ""
    return WORK / f"training-sets-{customers}{suffix}"


def fresh_tracking() -> Path:
    """A temporary custscore home and MLflow store; returns the folder to remove afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="custscore-trainbench-"))
    os.environ["CUSTSCORE_HOME"] = str(tmp / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    from pipelines import tracking
    from pipelines.environment import prepare_environment

    paths = prepare_environment()
    tracking.configure_tracking(paths.tracking_uri, paths.mlflow_artifacts)
    return tmp


def build(customers: int, max_customers: int | None) -> None:
    """Validate the demo data, build both training sets as the flow does and save them."""
    tmp = fresh_tracking()
    from pipelines import tasks
    from pipelines.environment import prepare_environment
    from pipelines.runs import RunRequest, resolve_config

    folder = WORK / f"demo-{customers}-s7"
    cfg = resolve_config(RunRequest(data=str(folder)))
    if max_customers:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_customers": max_customers})})
    paths = prepare_environment()
    out = sets_dir(customers, max_customers)
    out.mkdir(parents=True, exist_ok=True)
    info: dict = {"customers": customers, "max_customers": cfg.training.max_customers}
    with timed(info.setdefault("validate", {})):
        data = tasks.load_data.fn(folder, cfg, paths, tasks.utc_now())
    as_of = tasks.default_as_of(data)
    with timed(info.setdefault("training_sets", {})):
        sets = tasks.training_sets.fn(data, as_of, cfg)
    for kind, frame in sets.items():
        frame.to_parquet(out / f"{kind}.parquet", index=False)
        info[f"{kind}_rows"] = len(frame)
    info.update(as_of=as_of.isoformat(), data_hash=data.data_hash, source=str(folder))
    (out / "info.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("saved %s: %s", out, info)


# Variants: overrides of the churn / value parameters and of the training customers.
VARIANTS: dict[str, dict] = {
    "current": {},
    "sample50k": {"both": {"bin_construct_sample_cnt": 50_000}},
    "maxbin63": {"both": {"max_bin": 63}},
    "q100k": {"value": {"interval_max_rows": 100_000}},
    "q50k": {"value": {"interval_max_rows": 50_000}},
    "threads1": {"both": {"num_threads": 1}},
}


def hash_sample(frame, share: float):
    """Rows of a fixed hash sample of about `share` of the customers (same customers in every snapshot)."""
    import pandas as pd

    if share >= 1:
        return frame
    buckets = pd.util.hash_pandas_object(frame["customer_id"].astype(str), index=False).to_numpy() % 1_000_000
    return frame[buckets < int(share * 1_000_000)]


def load_sets(customers: int, max_customers: int | None) -> tuple[dict, dict]:
    """The saved training sets and the info of their build."""
    import pandas as pd

    folder = sets_dir(customers, max_customers)
    info = json.loads((folder / "info.json").read_text())
    return {k: pd.read_parquet(folder / f"{k}.parquet") for k in ("churn", "value")}, info


def full_validation_quality(kind: str, outcome_model, valid) -> dict:
    """Quality of a fitted model on every validation row (not just a sample's)."""
    import numpy as np

    from models.metrics import churn_metrics, value_metrics

    X = valid[outcome_model.feature_names_]
    if kind == "churn":
        m = churn_metrics(valid["label_churn"].to_numpy(float), outcome_model.predict_proba(X))
        return {k: m[k] for k in ("roc_auc", "gini", "ece", "brier") if k in m}
    y = valid["label_revenue"].to_numpy(float)
    pred = outcome_model.predict(X)
    m = value_metrics(y, pred["expected_revenue"].to_numpy())
    inside = (y >= pred["value_p10"].to_numpy()) & (y <= pred["value_p90"].to_numpy())
    return {**{k: m[k] for k in ("normalized_gini", "bias_pct", "spearman") if k in m},
            "coverage_p10_p90": float(np.mean(inside))}


def capture_models(training_module) -> list:
    """Make the training module's model classes remember every fitted instance (to score full validation)."""
    captured: list = []
    for attr in ("ChurnModel", "ValueModel"):
        base = getattr(training_module, attr)
        base = getattr(base, "_bench_base", base)

        class Recording(base):  # type: ignore[misc, valid-type]
            _bench_base = base

            def fit(self, *a, **kw):
                captured.append(self)
                return super().fit(*a, **kw)

        setattr(training_module, attr, Recording)
    return captured


def fit_once(kind: str, frame, params, info: dict, with_champion: bool, profile: Path | None) -> dict:
    """Fit + track + gate one kind in a fresh MLflow store; wall, CPU and reported metrics."""
    tmp = fresh_tracking()
    from pipelines import training

    ctx = training.RunContext("bench", info["data_hash"], info["as_of"],
                              90 if kind == "churn" else 365, info["source"])
    train_fn = training.train_churn if kind == "churn" else training.train_value
    captured = capture_models(training)
    row: dict = {"kind": kind, "rows": len(frame)}
    try:
        if with_champion:
            train_fn(frame, params, ctx)
        profiler = cProfile.Profile() if profile else None
        with timed(row):
            if profiler:
                profiler.enable()
            outcome = train_fn(frame, params, ctx)
            if profiler:
                profiler.disable()
        if profiler:
            profiler.dump_stats(profile)
        row.update(grade=outcome.grade, promoted=outcome.promoted, rows_used=outcome.rows,
                   metrics={k: v for k, v in outcome.metrics.items() if isinstance(v, (int, float))})
        row["model"] = captured[-1]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def run(customers: int, max_customers: int | None, variants: list[str], kinds: list[str], with_champion: bool,
        profile: bool, train_shares: list[float], out: Path) -> list[dict]:
    """Time fit + track + gate per variant and kind on the saved sets; append rows to `out` (JSON lines)."""
    from models.params import ChurnParams, ValueParams

    sets, info = load_sets(customers, max_customers)
    rows = []
    for name, share, kind in ((n, s, k) for n in variants for s in train_shares for k in kinds):
        override = VARIANTS[name]
        if True:
            share = override.get("train_share", share)
            frame = hash_sample(sets[kind], share)
            params_cls = ChurnParams if kind == "churn" else ValueParams
            params = params_cls(**override.get(kind, {}), **override.get("both", {}))
            prof = WORK / f"training-{kind}-{name}.prof" if profile else None
            row = fit_once(kind, frame, params, info, with_champion, prof)
            row.update(variant=name, customers=customers, max_customers=info["max_customers"],
                       train_share=share, with_champion=with_champion,
                       train_customers=int(frame.loc[~frame["is_validation"], "customer_id"].nunique()))
            full_valid = sets[kind][sets[kind]["is_validation"]]
            row["full_validation"] = full_validation_quality(kind, row.pop("model"), full_valid)
            log.info("%s", json.dumps(row))
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            rows.append(row)
            if prof:
                pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(45)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--customers", type=int, default=100_000)
    b.add_argument("--max-customers", type=int, default=None)
    r = sub.add_parser("run")
    r.add_argument("--customers", type=int, default=100_000)
    r.add_argument("--max-customers", type=int, default=None, help="which saved sets (build --max-customers)")
    r.add_argument("--variant", nargs="+", default=["current"], choices=sorted(VARIANTS))
    r.add_argument("--kind", nargs="+", default=["churn", "value"], choices=["churn", "value"])
    r.add_argument("--with-champion", action="store_true")
    r.add_argument("--profile", action="store_true")
    r.add_argument("--train-share", type=float, nargs="+", default=[1.0],
                   help="hash samples of the customers (learning curve)")
    r.add_argument("--out", type=Path, default=WORK / "training-runs.jsonl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "build":
        build(args.customers, args.max_customers)
    elif args.command == "run":
        run(args.customers, args.max_customers, args.variant, args.kind, args.with_champion, args.profile,
            args.train_share, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
