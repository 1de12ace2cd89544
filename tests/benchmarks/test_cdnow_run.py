"""The CDNOW benchmark end to end on the shipped sample, and custscore's CLI driven as a user would."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.cdnow import scorers
from benchmarks.cdnow.data import SAMPLE_CUSTOMERS, SAMPLE_TRANSACTIONS, SHIPPED_SAMPLE, load_transactions
from benchmarks.cdnow.run import main
from benchmarks.cdnow.scorers import CustscoreCliScorer, ScoringTask


def test_harness_end_to_end_on_the_sample_with_naive_standing_in(tmp_path: Path, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    assert main(["--sample", "--candidate", "naive", "--bootstrap", "20",
                 "--out", str(out), "--work", str(work)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["n_customers"] == SAMPLE_CUSTOMERS
    assert results["dataset"]["n_transactions"] == SAMPLE_TRANSACTIONS
    assert results["dataset"]["population"] == SAMPLE_CUSTOMERS  # all joined in Q1 1997
    assert set(results["models"]) == {"naive_standin", "bgnbd_gg", "naive"}
    reference = results["models"]["bgnbd_gg"]["metrics"]
    assert 0.7 < reference["roc_auc"] < 0.9  # BG/NBD ranks churners well above chance
    assert abs(reference["aggregate_bias_pct"]) < 25
    assert results["models"]["naive"]["metrics"]["brier"] is None  # days are not a probability
    stand_in = results["paired_bootstrap_vs_reference"]["naive_standin"]
    assert stand_in == results["paired_bootstrap_vs_reference"]["naive"]
    assert stand_in["roc_auc"]["ci_low"] <= stand_in["roc_auc"]["observed_difference"] <= stand_in["roc_auc"]["ci_high"]
    assert results["reference_check_fhl2005"]["matches"]
    assert results["machine"]["nproc"] >= 1
    markdown = (out / "results.md").read_text()
    assert "python -m benchmarks.cdnow.run --sample --candidate naive" in markdown
    assert "| churn ROC-AUC |" in markdown


# A stand-in for the real command (stdlib only, so it starts fast): `run` writes one score
# row per customer of the data folder, `scores export` copies them to --output.
FAKE_CUSTSCORE = """#!{python}
import csv, os, sys
args = sys.argv[1:]
home = os.environ["CUSTSCORE_HOME"]
if args[0] == "run":
    data = args[args.index("--data") + 1]
    with open(os.path.join(data, "transactions.csv")) as f:
        ids = sorted({{row["customer_id"] for row in csv.DictReader(f)}})
    with open(os.path.join(home, "last.csv"), "w") as f:
        f.write("customer_id,p_churn,expected_revenue,value_p10,value_p90\\n")
        f.writelines(f"{{i}},0.5,10.0,0.0,20.0\\n" for i in ids)
    open(os.path.join(home, "args.txt"), "w").write(" ".join(args))
elif args[:2] == ["scores", "export"]:
    if {fail}:
        sys.stderr.write("error: no scoring run found in " + home + "\\nnanobind: leaked 2 instances!\\n")
        sys.exit(1)
    out = args[args.index("--output") + 1]
    open(out, "w").write(open(os.path.join(home, "last.csv")).read())
"""


def _fake_custscore(tmp_path: Path, fail: bool = False) -> str:
    exe = tmp_path / "custscore"
    exe.write_text(FAKE_CUSTSCORE.format(python=sys.executable, fail=fail))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def _sample_task(tmp_path: Path) -> ScoringTask:
    from benchmarks.cdnow.data import convert_cdnow

    data_dir = tmp_path / "data"
    convert_cdnow(SHIPPED_SAMPLE, data_dir)
    return ScoringTask(load_transactions(data_dir / "transactions.csv"), data_dir,
                       pd.Timestamp("1998-01-01"), 182, 182)


def test_custscore_scorer_runs_the_cli_with_the_benchmark_arguments_and_reads_the_export(tmp_path: Path):
    home = tmp_path / "home"
    scorer = CustscoreCliScorer(home=home, executable=_fake_custscore(tmp_path))
    scores = scorer.score(_sample_task(tmp_path))
    assert (home / "args.txt").read_text() == (
        f"run --data {tmp_path / 'data'} --as-of 1998-01-01 --churn-horizon-days 182 "
        "--value-horizon-days 182")
    assert len(scores) == SAMPLE_CUSTOMERS
    assert scores["customer_id"].str.len().eq(5).all()  # ids read back as text
    assert scores[["churn_score", "expected_revenue", "value_p10", "value_p90"]].iloc[0].tolist() == [
        0.5, 10.0, 0.0, 20.0]


def test_custscore_failure_is_reported_with_its_stderr_and_log(tmp_path: Path):
    scorer = CustscoreCliScorer(home=tmp_path / "home", executable=_fake_custscore(tmp_path, fail=True))
    with pytest.raises(RuntimeError, match=r"exited 1.*error: no scoring run found") as raised:
        scorer.score(_sample_task(tmp_path))
    assert "nanobind" not in str(raised.value)  # the CLI's reason, not shutdown noise
    assert (tmp_path / "home" / "custscore_step2.log").exists()



def test_recorded_commands_name_paths_relative_to_the_repository(tmp_path: Path, monkeypatch):
    # Results are committed: a command recorded with one machine's folders reads wrong on every clone.
    repo = tmp_path / "repo"
    monkeypatch.setattr(scorers, "REPO_ROOT", repo)
    task = _sample_task(repo / "benchmarks" / ".work")
    scorer = CustscoreCliScorer(home=repo / "benchmarks" / ".work" / "home", executable=_fake_custscore(tmp_path))
    scorer.score(task)
    assert scorer.displayed_commands() == [
        ["custscore", "run", "--data", "benchmarks/.work/data", "--as-of", "1998-01-01",
         "--churn-horizon-days", "182", "--value-horizon-days", "182"],
        ["custscore", "scores", "export", "--output", "benchmarks/.work/home/custscore_scores.csv"],
    ]
