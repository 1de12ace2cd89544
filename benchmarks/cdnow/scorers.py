"""Scorers compared by the benchmark: BG/NBD + Gamma-Gamma, the naive reference, and custscore's CLI.

A scorer takes a ScoringTask and returns one row per customer with the columns of
`evaluation.SCORE_COLUMNS`: customer_id, churn_score (higher = more likely to churn),
p_churn (a probability, or NaN), expected_revenue, value_p10, value_p90 (NaN if no band).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from benchmarks.cdnow.btyd import DAYS_PER_WEEK, BetaGeoModel, GammaGammaModel, rfm_summary

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ScoringTask:
    """What every scorer gets: the converted data (as a frame and as a folder), as_of, horizons."""

    transactions: pd.DataFrame
    data_dir: Path
    as_of: pd.Timestamp
    churn_horizon_days: int
    value_horizon_days: int


class Scorer(Protocol):
    """Anything with a name that turns a ScoringTask into a score frame."""

    name: str

    def score(self, task: ScoringTask) -> pd.DataFrame:
        """Scores for every customer with history before task.as_of."""
        ...


@dataclass
class BgNbdGammaGammaScorer:
    """BG/NBD for purchases and Gamma-Gamma for spend, fitted on rows before as_of only.

    Customers with rows before as_of but no purchase day (only returns, as in Online Retail
    where a cancellation can precede the first order in the data) have nothing to fit on; they
    are scored as custscore's export reads them: no purchase expected (p_churn 1, revenue 0).
    """

    name: str = "bgnbd_gg"
    purchase_model_: BetaGeoModel | None = field(default=None, init=False)
    spend_model_: GammaGammaModel | None = field(default=None, init=False)
    n_without_purchase_: int = field(default=0, init=False)

    def score(self, task: ScoringTask) -> pd.DataFrame:
        """p_churn = P(no purchase in the churn horizon); value = E[purchases] x E[spend]."""
        summary = rfm_summary(task.transactions, task.as_of)
        x, t_x, big_t = summary["frequency"], summary["recency"], summary["T"]
        self.purchase_model_ = BetaGeoModel().fit(x, t_x, big_t)
        self.spend_model_ = GammaGammaModel().fit(x, summary["monetary_value"])
        churn_weeks = task.churn_horizon_days / DAYS_PER_WEEK
        value_weeks = task.value_horizon_days / DAYS_PER_WEEK
        p_churn = self.purchase_model_.probability_no_purchase(churn_weeks, x, t_x, big_t)
        purchases = self.purchase_model_.expected_purchases(value_weeks, x, t_x, big_t)
        spend = self.spend_model_.expected_spend(x, summary["monetary_value"])
        scored = pd.DataFrame({
            "customer_id": summary.index.astype(str),
            "churn_score": p_churn,
            "p_churn": p_churn,
            "expected_revenue": purchases * spend,
            "value_p10": np.nan,
            "value_p90": np.nan,
        }).reset_index(drop=True)
        return self._with_customers_without_purchase(scored, task)

    def _with_customers_without_purchase(self, scored: pd.DataFrame, task: ScoringTask) -> pd.DataFrame:
        """Add the customers with history but no purchase day, expecting no purchase from them."""
        before = task.transactions.loc[task.transactions["ts"] < pd.Timestamp(task.as_of), "customer_id"]
        missing = pd.Index(before.astype(str).unique()).difference(scored["customer_id"])
        self.n_without_purchase_ = len(missing)
        if missing.empty:
            return scored
        logger.info("%d customers have rows but no purchase day before as-of; scored p_churn 1, revenue 0",
                    len(missing))
        extra = pd.DataFrame({"customer_id": missing, "churn_score": 1.0, "p_churn": 1.0,
                              "expected_revenue": 0.0, "value_p10": np.nan, "value_p90": np.nan})
        return pd.concat([scored, extra], ignore_index=True)


@dataclass
class NaiveScorer:
    """Naive reference: churn score = days since last purchase; value = trailing same-length revenue."""

    name: str = "naive"

    def score(self, task: ScoringTask) -> pd.DataFrame:
        """Scores from the rows before as_of only.

        A purchase is any row with a non-negative amount: CDNOW's $0 rows are purchases of free
        CDs, while a return line (negative) is not a purchase. A customer with returns only is
        given the days since the first row of the data, more than any customer who bought.
        Value is the net revenue (returns included) of the trailing value horizon.
        """
        as_of = pd.Timestamp(task.as_of)
        before = task.transactions.loc[task.transactions["ts"] < as_of]
        customers = pd.Index(np.sort(before["customer_id"].unique()))
        purchases = before.loc[before["amount"] >= 0]
        last_purchase = purchases.groupby("customer_id")["ts"].max().reindex(customers)
        last_purchase = last_purchase.fillna(before["ts"].min())
        start = as_of - pd.Timedelta(days=task.value_horizon_days)
        trailing = before.loc[before["ts"] >= start].groupby("customer_id")["amount"].sum()
        return pd.DataFrame({
            "customer_id": customers.astype(str),
            "churn_score": (as_of - last_purchase).dt.days.to_numpy(dtype=float),
            "p_churn": np.nan,
            "expected_revenue": trailing.reindex(customers).fillna(0.0).to_numpy(),
            "value_p10": np.nan,
            "value_p90": np.nan,
        })


def custscore_command() -> list[str]:
    """`custscore` as this interpreter runs it: the CLI module of the code on PYTHONPATH.

    The same Python that runs the benchmark, with this repository first on PYTHONPATH
    (`subprocess_env`), so a checkout other than the installed one is the code measured.
    """
    return [sys.executable, "-m", "pipelines.cli"]


def subprocess_env(home: Path) -> dict[str, str]:
    """The caller's environment with CUSTSCORE_HOME set and this repository first on PYTHONPATH."""
    inherited = os.environ.get("PYTHONPATH", "")
    path = os.pathsep.join(p for p in (str(REPO_ROOT), inherited) if p)
    return {**os.environ, "CUSTSCORE_HOME": str(home), "PYTHONPATH": path}


def imported_code_location(env: dict[str, str]) -> Path:
    """Where `import pipelines` resolves for a subprocess with env: the code custscore runs."""
    done = subprocess.run([sys.executable, "-c", "import pipelines; print(pipelines.__file__)"],
                          env=env, capture_output=True, text=True, check=True)
    return Path(done.stdout.strip()).resolve()


@dataclass
class CustscoreCliScorer:
    """custscore as a user runs it: `custscore run`, then `custscore scores export`, in a subprocess."""

    home: Path
    name: str = "custscore"
    executable: str | None = None  # a `custscore` command to run; None: this Python's pipelines.cli
    config: Path | None = None  # passed as `custscore run --config`; None: custscore's default
    timeout_seconds: float = 3600.0
    commands_: list[list[str]] = field(default_factory=list, init=False)
    n_unscored_: int = field(default=0, init=False)
    quarantine_: dict[str, dict[str, int]] = field(default_factory=dict, init=False)
    code_location_: Path | None = field(default=None, init=False)

    def score(self, task: ScoringTask) -> pd.DataFrame:
        """Run the pipeline on task.data_dir and read the exported score table."""
        exe = [self.executable] if self.executable else custscore_command()
        home = Path(self.home)
        # A new user's home: champions left by an earlier run (other code or config) would be
        # scored instead of training on this data.
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        export = home / "custscore_scores.csv"
        self.commands_ = [
            [*exe, "run", "--data", str(task.data_dir), "--as-of", task.as_of.strftime("%Y-%m-%d"),
             "--churn-horizon-days", str(task.churn_horizon_days),
             "--value-horizon-days", str(task.value_horizon_days),
             *(["--config", str(self.config)] if self.config else [])],
            [*exe, "scores", "export", "--output", str(export)],
        ]
        env = subprocess_env(home)
        if self.executable is None:
            self._check_code_location(env)
        for step, cmd in enumerate(self.commands_):
            self._run_logged(cmd, env, home / f"custscore_step{step + 1}.log")
        self.quarantine_ = quarantine_counts(home / "quarantine")
        scores = read_custscore_export(export)
        self.n_unscored_ = int(scores.attrs.get("n_unscored", 0))
        return scores

    def displayed_commands(self) -> list[list[str]]:
        """The commands as a user would type them: `custscore ...`, paths relative to the repository."""
        prefix = 1 if self.executable else len(custscore_command())
        return [["custscore", *(_display_path(arg) for arg in cmd[prefix:])] for cmd in self.commands_]

    def _check_code_location(self, env: dict[str, str]) -> None:
        """Refuse to measure code other than this repository's (e.g. another checkout installed)."""
        self.code_location_ = imported_code_location(env)
        logger.info("custscore subprocess imports pipelines from %s", self.code_location_)
        if REPO_ROOT not in self.code_location_.parents:
            raise RuntimeError(
                f"custscore would run {self.code_location_}, not this repository's pipelines under "
                f"{REPO_ROOT}; unset PYTHONPATH entries that shadow it and rerun"
            )

    def _run_logged(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        """Run one command, keep its output in log_path, raise with the tail of stderr on failure."""
        logger.info("running: %s", " ".join(cmd))
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                              timeout=self.timeout_seconds)
        log_path.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        if done.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(cmd)}` exited {done.returncode} (full output in {log_path}): "
                f"{error_summary(done.stderr)} (fix custscore, or run the benchmark with --references-only)"
            )


def error_summary(stderr: str, limit: int = 1500) -> str:
    """The CLI's own 'error: ...' paragraph if it printed one, else the tail of stderr.

    Interpreter shutdown noise (e.g. nanobind leak reports) can follow the CLI's message,
    so the tail alone may hide the reason.
    """
    lines = [line for line in stderr.strip().splitlines() if not _is_shutdown_noise(line)]
    starts = [i for i, line in enumerate(lines) if line.lower().startswith("error")]
    if not starts:
        return "\n".join(lines)[-limit:]
    paragraph = []
    for line in lines[starts[-1]:]:
        if not line.strip():
            break
        paragraph.append(line.strip())
    return " ".join(paragraph)[:limit]


def _is_shutdown_noise(line: str) -> bool:
    """nanobind's reference-leak report printed at interpreter exit (DuckDB bindings)."""
    return line.startswith(("nanobind:", " - leaked", " - ... skipped", "See https://nanobind"))


def read_custscore_export(path: Path) -> pd.DataFrame:
    """Read an exported score table (CSV or Parquet) into the scorer frame."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"custscore scores export wrote no file at {path}")
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
        table["customer_id"] = table["customer_id"].astype(str)
    else:
        table = pd.read_csv(path, dtype={"customer_id": str})
    required = {"customer_id", "p_churn", "expected_revenue"}
    missing = required - set(table.columns)
    if missing:
        raise ValueError(f"{path}: exported scores lack columns {sorted(missing)}; "
                         f"found {list(table.columns)[:20]}")
    frame = pd.DataFrame({
        "customer_id": table["customer_id"],
        "churn_score": table["p_churn"].astype(float),
        "p_churn": table["p_churn"].astype(float),
        "expected_revenue": table["expected_revenue"].astype(float),
        "value_p10": table["value_p10"].astype(float) if "value_p10" in table else np.nan,
        "value_p90": table["value_p90"].astype(float) if "value_p90" in table else np.nan,
    })
    return fill_unscored(frame)


def fill_unscored(frame: pd.DataFrame) -> pd.DataFrame:
    """Customers custscore lists as new without a score (no transaction line before as-of; in
    CDNOW none, since customers whose only records are $0 are scored too) are read as the export
    means them: no purchase expected (p_churn 1, revenue 0). The count is logged and kept in
    frame.attrs["n_unscored"], so the reader knows."""
    unscored = frame["p_churn"].isna()
    frame.attrs["n_unscored"] = int(unscored.sum())
    if unscored.any():
        logger.info("custscore left %d customers without orders unscored; read as p_churn 1, revenue 0",
                    int(unscored.sum()))
        frame.loc[unscored, ["churn_score", "p_churn"]] = 1.0
        frame.loc[unscored, ["expected_revenue", "value_p10", "value_p90"]] = 0.0
    return frame


def quarantine_counts(folder: Path) -> dict[str, dict[str, int]]:
    """Rows custscore's validation quarantined, by table and reason ({} when none)."""
    files = sorted(Path(folder).glob("*.parquet"))
    if not files:
        return {}
    rows = pd.concat([pd.read_parquet(f, columns=["table", "reason"]) for f in files], ignore_index=True)
    counts = rows.groupby(["table", "reason"]).size()
    return {table: {reason: int(n) for reason, n in counts.loc[table].items()}
            for table in counts.index.get_level_values(0).unique()}


def _display_path(arg: str) -> str:
    """An absolute path inside the repository shown relative to it; anything else unchanged."""
    path = Path(arg)
    if path.is_absolute() and REPO_ROOT in path.resolve().parents:
        return str(path.resolve().relative_to(REPO_ROOT))
    return arg
