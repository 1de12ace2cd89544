"""What every real-data benchmark shares: score each model, evaluate against the truth, bootstrap
the differences to the reference, describe the machine, render and write the results.

The data sets differ only in how they are converted and what their results page says about
them (`benchmarks/cdnow/run.py`, `benchmarks/online_retail/run.py`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.cdnow.evaluation import (
    HEADLINE_METRICS,
    AlignedScores,
    align_scores,
    headline_metrics,
    paired_bootstrap,
)
from benchmarks.cdnow.scorers import BgNbdGammaGammaScorer, CustscoreCliScorer, NaiveScorer, Scorer, ScoringTask

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_NAME = "bgnbd_gg"

METRIC_LABELS = {
    "roc_auc": "churn ROC-AUC", "pr_auc": "churn PR-AUC", "brier": "churn Brier",
    "spearman": "value Spearman", "normalized_gini": "value normalized Gini",
    "top10_capture": "top-10% revenue capture", "top20_capture": "top-20% revenue capture",
    "mae": "value MAE", "aggregate_bias_pct": "aggregate bias %",
    "p10_p90_coverage": "P10-P90 coverage", "predicted_total_revenue": "predicted total revenue",
}


@dataclass
class ModelResult:
    """One scorer's metrics and how long it took."""

    name: str
    metrics: dict[str, float]
    seconds: float
    details: dict[str, object] = field(default_factory=dict)


def machine_description() -> dict[str, object]:
    """nproc, RAM, CPU model, OS and Python of the machine running the benchmark."""
    ram_gb = float("nan")
    cpu = platform.processor() or platform.machine()
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
        ram_gb = round(total_kb / 1024 / 1024, 1)
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                    if line.startswith("model name")), cpu)
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "ram_gb": ram_gb, "cpu": cpu,
            "os": platform.platform(), "python": platform.python_version()}


def repo_relative(path: Path | str) -> str:
    """A path as the results should show it: relative to the repository where it can be, so no
    machine's folder layout is recorded."""
    return os.path.relpath(Path(path).resolve(), REPO_ROOT)


def score_and_evaluate(scorer: Scorer, task: ScoringTask, truth: pd.DataFrame) -> tuple[ModelResult, AlignedScores]:
    """Run one scorer, align it with the truth and compute its headline metrics."""
    started = time.perf_counter()
    scores = scorer.score(task)
    seconds = time.perf_counter() - started
    aligned = align_scores(scorer.name, truth, scores)
    metrics = headline_metrics(truth["churned"].to_numpy(), truth["revenue"].to_numpy(), aligned)
    details: dict[str, object] = {"n_scored": int(len(scores))}
    if isinstance(scorer, BgNbdGammaGammaScorer):
        details["bgnbd_params"] = scorer.purchase_model_.params_
        details["gamma_gamma_params"] = scorer.spend_model_.params_
        details["n_without_purchase"] = scorer.n_without_purchase_
    if isinstance(scorer, CustscoreCliScorer):
        details["commands"] = [shlex.join(cmd) for cmd in scorer.displayed_commands()]
        details["config"] = repo_relative(scorer.config) if scorer.config else "default"
        details["n_unscored"] = scorer.n_unscored_
    logger.info("%s scored %d customers in %.1f s", scorer.name, len(scores), seconds)
    return ModelResult(scorer.name, metrics, round(seconds, 2), details), aligned


def compare_scorers(scorers: list[Scorer], task: ScoringTask, truth: pd.DataFrame,
                    n_resamples: int, seed: int) -> dict[str, object]:
    """Score and evaluate every scorer, then bootstrap each one's difference to the reference.

    Returns the "models", "paired_bootstrap_vs_reference" and "bootstrap" parts of the results.
    """
    results, aligned = {}, {}
    for scorer in scorers:
        results[scorer.name], aligned[scorer.name] = score_and_evaluate(scorer, task, truth)
    churned, revenue = truth["churned"].to_numpy(), truth["revenue"].to_numpy()
    others = [scores for name, scores in aligned.items() if name != REFERENCE_NAME]
    tables = paired_bootstrap(churned, revenue, others, aligned[REFERENCE_NAME],
                              n_resamples=n_resamples, seed=seed)
    intervals = {name: {metric: {k: json_float(v) for k, v in row.items()}
                        for metric, row in table.iterrows()} for name, table in tables.items()}
    return {
        "models": {name: {"metrics": {k: json_float(v) for k, v in r.metrics.items()},
                          "seconds": r.seconds, **r.details} for name, r in results.items()},
        "paired_bootstrap_vs_reference": intervals,
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": 0.95},
    }


def json_float(value: object) -> object:
    """Floats rounded for reading, NaN as None (JSON has no NaN)."""
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def cell(value: object) -> str:
    """One table cell: 'n/a' for missing, 3 decimals, thousands for large numbers."""
    if value is None:
        return "n/a"
    value = float(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def metrics_table_lines(results: dict[str, object], currency: str) -> list[str]:
    """The models side by side, one metric a line, and the seconds each took."""
    models = results["models"]
    names = list(models)
    money = {"mae", "predicted_total_revenue"}
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for metric, label in METRIC_LABELS.items():
        label = f"{label} ({currency})" if metric in money else label
        lines.append(f"| {label} | " + " | ".join(cell(models[n]["metrics"].get(metric)) for n in names) + " |")
    lines.append("| seconds to score | " + " | ".join(f"{models[n]['seconds']:.1f}" for n in names) + " |")
    return lines


def bootstrap_table_lines(results: dict[str, object]) -> list[str]:
    """One table of differences to the reference, with their intervals, per other model."""
    lines: list[str] = []
    boot = results["bootstrap"]
    for name, table in results["paired_bootstrap_vs_reference"].items():
        lines += ["", f"Paired bootstrap, {name} minus {results['reference']} "
                  f"({boot['n_resamples']} customer resamples, seed {boot['seed']}, 95% percentile interval):",
                  "", "| metric | difference | 95% interval |", "|---|---|---|"]
        for metric in HEADLINE_METRICS:
            row = table[metric]
            lines.append(f"| {METRIC_LABELS[metric]} | {cell(row['observed_difference'])} | "
                         f"[{cell(row['ci_low'])}, {cell(row['ci_high'])}] |")
    return lines


def footer_lines(results: dict[str, object]) -> list[str]:
    """Reference parameters, the command, the machine and the custscore commands."""
    models = results["models"]
    ref = models.get(results["reference"], {})
    lines = [
        "", "Reference fitted at as-of: BG/NBD " + ", ".join(
            f"{k}={v:.4f}" for k, v in ref.get("bgnbd_params", {}).items())
        + "; Gamma-Gamma " + ", ".join(f"{k}={v:.4f}" for k, v in ref.get("gamma_gamma_params", {}).items()) + ".",
        "", f"Command: `{results['command']}` (total {results['total_seconds']} s).",
        "", "Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()) + ".", "",
    ]
    custscore = models.get("custscore", {})
    if custscore.get("commands"):
        lines += [f"custscore configuration: {custscore.get('config', 'default')}; commands:", "",
                  *[f"    {c}" for c in custscore["commands"]], ""]
    return lines


def write_results(results: dict[str, object], out_dir: Path,
                  render: Callable[[dict[str, object]], str]) -> tuple[Path, Path]:
    """Write results.json and results.md (rendered by `render`) into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(render(results))
    return json_path, md_path


def results_record(dataset: dict, truth: pd.DataFrame, config, candidate, compared: dict, started: float,
                   **extra: object) -> dict[str, object]:
    """One benchmark's results: the data set (with the truth's population, churn rate and revenue), the
    settings, every model's metrics and intervals, `extra` entries, the machine and the command."""
    churned, revenue = truth["churned"].to_numpy(), truth["revenue"].to_numpy()
    return {
        "dataset": {**dataset, "population": int(len(truth)), "churn_rate": round(float(churned.mean()), 4),
                    "actual_revenue_total": round(float(revenue.sum()), 2)},
        "as_of": str(config.as_of.date()),
        "churn_horizon_days": config.churn_horizon_days,
        "value_horizon_days": config.value_horizon_days,
        "candidate": candidate.name if candidate is not None else None,
        "reference": REFERENCE_NAME,
        **compared,
        **extra,
        "machine": machine_description(),
        "command": config.command,
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def candidate_from_args(args, config) -> Scorer | None:
    """The scorer a benchmark compares with the references (from its --references-only, --candidate
    and --config options), or None for --references-only."""
    if args.references_only:
        return None
    if args.candidate == "naive":
        return NaiveScorer(name="naive_standin")
    if args.config is not None and not args.config.exists():
        raise FileNotFoundError(f"--config {args.config} does not exist")
    return CustscoreCliScorer(home=config.work_dir / "custscore_home", config=args.config)


def benchmark_main(argv: list[str] | None, parse_args: Callable, config_from_args: Callable, run_benchmark: Callable,
                   render_markdown: Callable[[dict], str]) -> int:
    """The command line of a dataset benchmark: run it and write results.md/results.json.

    Exit code 2, with one line, when the input is missing or unreadable or the as-of too late.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        config = config_from_args(args, argv)
        results = run_benchmark(config, candidate_from_args(args, config))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    json_path, md_path = write_results(results, config.out_dir, render_markdown)
    print(render_markdown(results))
    print(f"wrote {md_path} and {json_path}")
    return 0
