"""The Online Retail benchmark end to end on small generated files, with the naive scorer standing in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.cdnow import run as cdnow_run
from benchmarks.cdnow.scorers import CustscoreCliScorer
from benchmarks.comparison import REPO_ROOT, candidate_from_args
from benchmarks.online_retail import run as retail_run
from benchmarks.online_retail.data import FIRST_FILE, SECOND_FILE
from benchmarks.online_retail.run import main

START, END = pd.Timestamp("2009-12-01"), pd.Timestamp("2011-12-09")
OVERLAP_START, OVERLAP_END = pd.Timestamp("2010-12-01"), pd.Timestamp("2010-12-10")


def generated_log(n_customers: int = 150, seed: int = 3) -> pd.DataFrame:
    """Customers who buy at their own rate until they drop out; some lines cancelled, some anonymous."""
    rng = np.random.default_rng(seed)
    rows = []
    invoice = 500000
    for customer in range(12000, 12000 + n_customers):
        first = START + pd.Timedelta(days=int(rng.integers(0, 500)))
        leaves = first + pd.Timedelta(days=int(rng.exponential(300)))
        gap = rng.uniform(10, 90)
        level = rng.lognormal(1.0, 1.0)  # customers differ in spend, as Gamma-Gamma assumes
        day = first
        while day < min(leaves, END):
            invoice += 1
            ts = day + pd.Timedelta(hours=9, minutes=int(rng.integers(0, 480)))
            quantity = int(rng.integers(1, 24))
            price = round(float(level * rng.gamma(4.0, 0.25)), 2)
            rows.append((str(invoice), "85123A", quantity, ts, price, customer))
            if rng.random() < 0.1:
                rows.append((f"C{invoice}", "85123A", -quantity, ts + pd.Timedelta(hours=1), price, customer))
            if rng.random() < 0.2:
                rows.append((str(invoice), "POST", 1, ts, 18.0, customer))
            day += pd.Timedelta(days=max(1, int(rng.exponential(gap))))
    for k in range(40):
        ts = START + pd.Timedelta(days=int(rng.integers(0, 730)), hours=10)
        rows.append((str(600000 + k), "21232", 3, ts, 1.25, None))
    log = pd.DataFrame(rows, columns=["Invoice", "StockCode", "Quantity", "InvoiceDate", "Price", "Customer ID"])
    log = log.loc[log["InvoiceDate"] <= END].sort_values("InvoiceDate", kind="stable").reset_index(drop=True)
    log["Description"] = "ITEM"
    log["Country"] = "United Kingdom"
    return log


def write_published_files(log: pd.DataFrame, folder: Path) -> None:
    """Split the log into the two files as published: both hold the rows of 2010-12-01 .. 12-09."""
    folder.mkdir(parents=True)
    text_dates = log.assign(InvoiceDate=log["InvoiceDate"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    first = text_dates.loc[log["InvoiceDate"] < OVERLAP_END].copy()
    first["Customer ID"] = first["Customer ID"].astype("Int64")
    first["Quantity"] = first["Quantity"].astype("Int64")
    first.to_parquet(folder / FIRST_FILE, index=False)
    second = text_dates.loc[log["InvoiceDate"] >= OVERLAP_START].rename(
        columns={"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"})
    second["CustomerID"] = second["CustomerID"].astype(float)
    second.to_parquet(folder / SECOND_FILE, index=False)


def test_harness_end_to_end_with_naive_standing_in(tmp_path: Path, capsys):
    log = generated_log()
    write_published_files(log, tmp_path / "src")
    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["--data-dir", str(tmp_path / "src"), "--candidate", "naive", "--bootstrap", "20",
            "--out", str(out), "--work", str(work)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())

    customers = log["Customer ID"].dropna()
    before = log.loc[log["InvoiceDate"] < pd.Timestamp("2011-06-01"), "Customer ID"].dropna()
    conversion = results["dataset"]["conversion"]
    assert conversion["n_transactions"] == len(customers)  # the overlap counted once
    assert conversion["rows_without_customer_dropped"] == 40
    assert conversion["n_history_customers"] == before.nunique()
    assert results["dataset"]["population"] == before.nunique()
    assert set(results["models"]) == {"naive_standin", "bgnbd_gg", "naive"}
    assert results["models"]["naive"]["metrics"]["brier"] is None  # days are not a probability
    reference = results["models"]["bgnbd_gg"]["metrics"]
    assert 0.5 < reference["roc_auc"] <= 1.0  # customers who dropped out long ago are ranked as churned
    stand_in = results["paired_bootstrap_vs_reference"]["naive_standin"]
    assert stand_in == results["paired_bootstrap_vs_reference"]["naive"]
    # custscore's folder never sees the outcome window.
    written = pd.read_parquet(work / "data" / "transactions.parquet")
    assert written["ts"].max() < pd.Timestamp("2011-06-01")
    markdown = (out / "results.md").read_text()
    assert "`python -m benchmarks.online_retail.run --data-dir" in markdown
    assert "| churn ROC-AUC |" in markdown and "rows without a customer id dropped 40" in markdown
    assert str(REPO_ROOT) not in (out / "results.json").read_text()  # no machine's folders recorded


def test_missing_data_folder_stops_with_one_line_naming_it(tmp_path: Path, capsys):
    assert main(["--data-dir", str(tmp_path / "nowhere"), "--references-only", "--out", str(tmp_path / "out"),
                 "--work", str(tmp_path / "work")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert str(tmp_path / "nowhere" / FIRST_FILE) in error
    assert not (tmp_path / "out").exists()


def test_both_benchmarks_run_custscore_with_its_default_configuration_unless_given_one(tmp_path: Path):
    for module in (cdnow_run, retail_run):
        args = module.parse_args(["--work", str(tmp_path)])
        candidate = candidate_from_args(args, module.config_from_args(args, []))
        assert isinstance(candidate, CustscoreCliScorer) and candidate.config is None
    hand_tuned = REPO_ROOT / cdnow_run.HAND_TUNED_CONFIG
    args = cdnow_run.parse_args(["--work", str(tmp_path), "--config", str(hand_tuned)])
    assert candidate_from_args(args, cdnow_run.config_from_args(args, [])).config == hand_tuned


def test_an_as_of_whose_outcome_window_outruns_the_data_is_refused(tmp_path: Path, capsys):
    write_published_files(generated_log(n_customers=20), tmp_path / "src")
    assert main(["--data-dir", str(tmp_path / "src"), "--as-of", "2011-07-01", "--references-only",
                 "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 2
    error = capsys.readouterr().err
    assert "needs rows to 2011-12-28" in error and "choose an earlier --as-of" in error
    assert not (tmp_path / "out").exists()
