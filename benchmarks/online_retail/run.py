"""One command for the Online Retail benchmark: convert, score with custscore and the references, compare.

    python -m benchmarks.online_retail.run                      # custscore (default configuration) vs references
    python -m benchmarks.online_retail.run --references-only    # BG/NBD + GG and naive only
    python -m benchmarks.online_retail.run --candidate naive    # harness check without custscore

custscore sees only the rows before the as-of date (its input folder holds nothing later); the
later rows are the ground truth. Scorers, ground truth and metrics are the CDNOW benchmark's.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.cdnow.evaluation import ground_truth
from benchmarks.cdnow.scorers import (
    BgNbdGammaGammaScorer,
    CustscoreCliScorer,
    NaiveScorer,
    Scorer,
    ScoringTask,
)
from benchmarks.comparison import (
    REPO_ROOT,
    benchmark_main,
    bootstrap_table_lines,
    compare_scorers,
    footer_lines,
    metrics_table_lines,
    repo_relative,
    results_record,
)
from benchmarks.online_retail.data import convert_online_retail

logger = logging.getLogger(__name__)

# The shared data folder beside the repository (README "Online Retail").
DEFAULT_SOURCE = Path("..") / "shared" / "data" / "online_retail"
DATASET_LABEL = "UCI Online Retail (II 2009-2010 to 2010-11-30, then Online Retail)"


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything one benchmark run needs; built from the command line or by tests."""

    source_dir: Path
    work_dir: Path
    out_dir: Path
    as_of: pd.Timestamp = pd.Timestamp("2011-06-01")
    churn_horizon_days: int = 180
    value_horizon_days: int = 180
    n_resamples: int = 1000
    seed: int = 0
    command: str = ""


def truth_for(transactions: pd.DataFrame, config: BenchmarkConfig) -> pd.DataFrame:
    """Churn over the churn horizon, revenue over the value horizon, for every customer with history."""
    truth = ground_truth(transactions, config.as_of, config.churn_horizon_days)
    if config.value_horizon_days != config.churn_horizon_days:
        value_truth = ground_truth(transactions, config.as_of, config.value_horizon_days)
        truth["revenue"] = truth["customer_id"].map(value_truth.set_index("customer_id")["revenue"])
    return truth


def check_outcomes_observed(transactions: pd.DataFrame, config: BenchmarkConfig) -> None:
    """Refuse an as-of whose outcome windows end after the data does (the truth would be short)."""
    end = config.as_of + pd.Timedelta(days=max(config.churn_horizon_days, config.value_horizon_days))
    last = transactions["ts"].max()
    if end > last.normalize() + pd.Timedelta(days=1):
        raise ValueError(f"--as-of {config.as_of.date()} with these horizons needs rows to {end.date()}, "
                         f"but the data ends {last.date()}; choose an earlier --as-of or shorter horizons")


def run_benchmark(config: BenchmarkConfig, candidate: Scorer | None) -> dict[str, object]:
    """Convert, score (candidate if any, BG/NBD + GG, naive), evaluate, bootstrap; return results."""
    started = time.perf_counter()
    input_dir = config.work_dir / "data"
    transactions, conversion = convert_online_retail(config.source_dir, input_dir, config.as_of)
    check_outcomes_observed(transactions, config)
    history = transactions.loc[transactions["ts"] < config.as_of].reset_index(drop=True)
    task = ScoringTask(history, input_dir, config.as_of, config.churn_horizon_days, config.value_horizon_days)
    truth = truth_for(transactions, config)

    scorers: list[Scorer] = [BgNbdGammaGammaScorer(), NaiveScorer()]
    if candidate is not None:
        scorers.insert(0, candidate)
    compared = compare_scorers(scorers, task, truth, config.n_resamples, config.seed)
    if isinstance(candidate, CustscoreCliScorer):
        compared["models"][candidate.name]["quarantined"] = candidate.quarantine_
        if candidate.code_location_ is not None:
            compared["models"][candidate.name]["code"] = repo_relative(candidate.code_location_)
    dataset = {"label": DATASET_LABEL, "source": repo_relative(config.source_dir), "conversion": conversion.as_dict()}
    return results_record(dataset, truth, config, candidate, compared, started)


def render_markdown(results: dict[str, object]) -> str:
    """Results as a markdown page: data and conversion, models side by side, intervals, machine."""
    data = results["dataset"]
    conv = data["conversion"]
    lines = [
        f"# Online Retail benchmark: as-of {results['as_of']}, "
        f"{results['churn_horizon_days']}-day churn / {results['value_horizon_days']}-day value horizon",
        "",
        f"Data: {data['label']}, from `{data['source']}`: {conv['n_transactions']:,} lines of "
        f"{conv['n_customers']:,} customers, {conv['first_date']} to {conv['last_date']}; custscore's input "
        f"holds the {conv['n_history_transactions']:,} lines of {conv['n_history_customers']:,} customers "
        f"before as-of. Population scored: {data['population']:,} customers with a line before as-of; "
        f"churn rate (no purchase line in the window) {data['churn_rate']:.3f}; actual net revenue in "
        f"the window GBP {data['actual_revenue_total']:,.0f}.",
        "",
        "Conversion: rows read " + ", ".join(f"{k} {v:,}" for k, v in conv["rows_read"].items())
        + f"; overlap rows left out {conv['overlap_rows_dropped']:,}; rows without a customer id dropped "
        f"{conv['rows_without_customer_dropped']:,}; kept: cancellation lines {conv['cancellation_lines']:,} "
        f"(negative quantity {conv['negative_quantity_lines']:,}), zero-amount lines "
        f"{conv['zero_amount_lines']:,}, non-product lines "
        + ", ".join(f"{k} {v:,}" for k, v in conv["non_product_lines"].items())
        + f"; customers with rows in several countries {conv['customers_with_several_countries']:,} "
        "(customers.country: the country of most of their rows before as-of).",
        "",
        *metrics_table_lines(results, currency="GBP"),
        *bootstrap_table_lines(results),
    ]
    custscore = results["models"].get("custscore", {})
    if "quarantined" in custscore:
        quarantined = custscore["quarantined"] or {"none": {}}
        lines += ["", "custscore validation quarantined: " + "; ".join(
            f"{table}: " + ", ".join(f"{reason} {n:,}" for reason, n in reasons.items())
            for table, reasons in quarantined.items())
            + f". Customers custscore left unscored (read as p_churn 1, revenue 0): {custscore.get('n_unscored', 0)}."
            + (f" Code run: `{custscore['code']}` of this checkout." if "code" in custscore else "")]
    lines += footer_lines(results)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.online_retail.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with the two UCI files (default ../shared/data/online_retail, "
                        "relative to the repository root)")
    parser.add_argument("--out", type=Path, help="folder for results.md/results.json (default benchmarks/online_retail)")
    parser.add_argument("--work", type=Path,
                        help="folder for the custscore input and CUSTSCORE_HOME (default benchmarks/.work/online_retail)")
    parser.add_argument("--references-only", action="store_true",
                        help="score only BG/NBD + Gamma-Gamma and the naive reference")
    parser.add_argument("--candidate", choices=["custscore", "naive"], default="custscore",
                        help="the model compared with the references; 'naive' stands in to check the harness")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML passed to `custscore run --config` (default: none, custscore's default configuration)")
    parser.add_argument("--as-of", default="2011-06-01")
    parser.add_argument("--horizon-days", type=int, default=180, help="churn and value horizon")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace, argv: list[str]) -> BenchmarkConfig:
    """Folders resolved: the defaults are relative to the repository root, given paths to the current folder."""
    source = args.data_dir or REPO_ROOT / DEFAULT_SOURCE
    work = args.work or REPO_ROOT / "benchmarks" / ".work" / "online_retail"
    return BenchmarkConfig(
        source_dir=source, work_dir=work, out_dir=args.out or REPO_ROOT / "benchmarks" / "online_retail",
        as_of=pd.Timestamp(args.as_of), churn_horizon_days=args.horizon_days,
        value_horizon_days=args.horizon_days, n_resamples=args.bootstrap, seed=args.seed,
        command=shlex.join(["python", "-m", "benchmarks.online_retail.run", *argv]),
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the benchmark and write results.md/results.json."""
    return benchmark_main(argv, parse_args, config_from_args, run_benchmark, render_markdown)


if __name__ == "__main__":
    raise SystemExit(main())
