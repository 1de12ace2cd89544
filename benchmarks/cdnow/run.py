"""One command for the CDNOW benchmark: convert, score with custscore and the references, compare.

    python -m benchmarks.cdnow.run                      # full CDNOW, custscore vs references
    python -m benchmarks.cdnow.run --references-only    # BG/NBD + GG and naive only
    python -m benchmarks.cdnow.run --sample --candidate naive   # harness check on the sample
"""

from __future__ import annotations

import argparse
import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.cdnow.btyd import BetaGeoModel, rfm_summary
from benchmarks.cdnow.data import (
    SHIPPED_SAMPLE,
    ConversionSummary,
    convert_cdnow,
    fetch_cdnow_master,
    load_transactions,
    read_cdnow,
    to_transactions,
)
from benchmarks.cdnow.evaluation import ground_truth
from benchmarks.cdnow.scorers import (
    BgNbdGammaGammaScorer,
    NaiveScorer,
    Scorer,
    ScoringTask,
)
from benchmarks.comparison import (
    benchmark_main,
    bootstrap_table_lines,
    compare_scorers,
    footer_lines,
    metrics_table_lines,
    repo_relative,
    results_record,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Fader, Hardie & Lee (2005), 2,357-customer sample, 39-week calibration ending 1997-09-30.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CALIBRATION_AS_OF = pd.Timestamp("1997-10-01")
# The design chosen on the pre-1998 backtest (README, "How custscore's settings for CDNOW were
# chosen"); runs use custscore's default configuration unless it is passed with --config.
HAND_TUNED_CONFIG = "benchmarks/cdnow/custscore.yaml"


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything one benchmark run needs; built from the command line or by tests."""

    source: Path | None  # a CDNOW text file; None: download CDNOW_master.txt
    work_dir: Path
    out_dir: Path
    as_of: pd.Timestamp = pd.Timestamp("1998-01-01")
    churn_horizon_days: int = 182
    value_horizon_days: int = 182
    n_resamples: int = 1000
    seed: int = 0
    command: str = ""
    dataset_label: str = "CDNOW"


def check_published_bgnbd(sample_path: Path = SHIPPED_SAMPLE) -> dict[str, object]:
    """Refit BG/NBD on the 2,357-customer sample, 39-week calibration, next to FHL 2005's values."""
    transactions = load_transactions_from_text(sample_path)
    summary = rfm_summary(transactions, CALIBRATION_AS_OF)
    model = BetaGeoModel().fit(summary["frequency"], summary["recency"], summary["T"])
    fitted = {k: round(v, 4) for k, v in model.params_.items()}
    matches = all(abs(fitted[k] - v) < 1.5e-3 for k, v in PUBLISHED_BGNBD.items())
    return {"published": PUBLISHED_BGNBD, "fitted": fitted,
            "log_likelihood": round(model.log_likelihood_, 2), "matches": matches}


def load_transactions_from_text(path: Path) -> pd.DataFrame:
    """Read a CDNOW text file straight into contract transactions (no file written)."""
    frame = to_transactions(read_cdnow(path))
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


def prepare_data(config: BenchmarkConfig) -> tuple[Path, ConversionSummary]:
    """Resolve the CDNOW file (download if needed) and convert it into work_dir/data."""
    source = config.source or fetch_cdnow_master(config.work_dir / "cache")
    return source, convert_cdnow(source, config.work_dir / "data")


def run_benchmark(config: BenchmarkConfig, candidate: Scorer | None) -> dict[str, object]:
    """Convert, score (candidate if any, BG/NBD + GG, naive), evaluate, bootstrap; return results."""
    started = time.perf_counter()
    source, conversion = prepare_data(config)
    transactions = load_transactions(conversion.transactions_path)
    task = ScoringTask(transactions, conversion.transactions_path.parent, config.as_of,
                       config.churn_horizon_days, config.value_horizon_days)
    truth = ground_truth(transactions, config.as_of, config.churn_horizon_days)
    if config.value_horizon_days != config.churn_horizon_days:
        value_truth = ground_truth(transactions, config.as_of, config.value_horizon_days)
        truth["revenue"] = truth["customer_id"].map(value_truth.set_index("customer_id")["revenue"])

    scorers: list[Scorer] = [BgNbdGammaGammaScorer(), NaiveScorer()]
    if candidate is not None:
        scorers.insert(0, candidate)
    compared = compare_scorers(scorers, task, truth, config.n_resamples, config.seed)
    dataset = {
        "label": config.dataset_label, "source": repo_relative(source),
        "n_customers": conversion.n_customers, "n_transactions": conversion.n_transactions,
        "first_date": str(conversion.first_date.date()), "last_date": str(conversion.last_date.date()),
    }
    return results_record(dataset, truth, config, candidate, compared, started,
                          reference_check_fhl2005=check_published_bgnbd())


def render_markdown(results: dict[str, object]) -> str:
    """Results as a markdown page: data, models side by side, intervals, reference check, machine."""
    data = results["dataset"]
    check = results["reference_check_fhl2005"]
    lines = [
        f"# CDNOW benchmark: as-of {results['as_of']}, "
        f"{results['churn_horizon_days']}-day churn / {results['value_horizon_days']}-day value horizon",
        "",
        f"Data: {data['label']} ({data['n_customers']:,} customers, {data['n_transactions']:,} "
        f"transactions, {data['first_date']} to {data['last_date']}); population scored: "
        f"{data['population']:,} customers with a purchase before as-of; churn rate "
        f"{data['churn_rate']:.3f}; actual revenue in the window ${data['actual_revenue_total']:,.0f}.",
        "",
        *metrics_table_lines(results, currency="$"),
        *bootstrap_table_lines(results),
        "", "Reference check (BG/NBD on the 2,357-customer sample, 39-week calibration): fitted "
        + ", ".join(f"{k}={v}" for k, v in check["fitted"].items())
        + f" (LL {check['log_likelihood']}); published (Fader, Hardie & Lee 2005) "
        + ", ".join(f"{k}={v}" for k, v in check["published"].items())
        + f": {'match' if check['matches'] else 'MISMATCH'}.",
        *footer_lines(results),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cdnow.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", action="store_true",
                        help="use the shipped 2,357-customer sample instead of the full file")
    parser.add_argument("--cdnow-path", type=Path, help="a CDNOW_master.txt (or sample) you already have")
    parser.add_argument("--out", type=Path, help="folder for results.md/results.json "
                        "(default benchmarks/cdnow for the full data, benchmarks/.work/cdnow-sample/ for --sample)")
    parser.add_argument("--work", type=Path, help="folder for converted data, downloads, CUSTSCORE_HOME "
                        "(default benchmarks/.work/cdnow[-sample])")
    parser.add_argument("--references-only", action="store_true",
                        help="score only BG/NBD + Gamma-Gamma and the naive reference")
    parser.add_argument("--candidate", choices=["custscore", "naive"], default="custscore",
                        help="the model compared with the references; 'naive' stands in to check the harness")
    parser.add_argument("--config", "--custscore-config", dest="config", type=Path, default=None,
                        help="YAML passed to `custscore run --config` (default: none, custscore's default "
                        f"configuration; the hand-tuned CDNOW design: --config {HAND_TUNED_CONFIG})")
    parser.add_argument("--as-of", default="1998-01-01")
    parser.add_argument("--horizon-days", type=int, default=182, help="churn and value horizon")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace, argv: list[str]) -> BenchmarkConfig:
    """Defaults for the folders depend on --sample; the command is recorded as typed."""
    suffix = "cdnow-sample" if args.sample else "cdnow"
    work = args.work or REPO_ROOT / "benchmarks" / ".work" / suffix
    out = args.out or (work if args.sample else REPO_ROOT / "benchmarks" / "cdnow")
    source = args.cdnow_path or (SHIPPED_SAMPLE if args.sample else None)
    if source is not None and not Path(source).exists():
        raise FileNotFoundError(f"--cdnow-path {source} does not exist")
    return BenchmarkConfig(
        source=source, work_dir=work, out_dir=out, as_of=pd.Timestamp(args.as_of),
        churn_horizon_days=args.horizon_days, value_horizon_days=args.horizon_days,
        n_resamples=args.bootstrap, seed=args.seed,
        command=shlex.join(["python", "-m", "benchmarks.cdnow.run", *argv]),
        dataset_label="CDNOW 2,357-customer sample" if args.sample or source == SHIPPED_SAMPLE else "CDNOW",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the benchmark and write results.md/results.json."""
    return benchmark_main(argv, parse_args, config_from_args, run_benchmark, render_markdown)


if __name__ == "__main__":
    raise SystemExit(main())
