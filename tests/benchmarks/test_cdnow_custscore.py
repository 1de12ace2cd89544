"""custscore itself on real CDNOW customers (the shipped 2,357-customer sample), end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from benchmarks.cdnow.data import convert_cdnow
from benchmarks.cdnow.evaluation import align_scores, ground_truth, headline_metrics
from benchmarks.cdnow.scorers import NaiveScorer, ScoringTask, fill_unscored

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "benchmarks" / "cdnow" / "data" / "CDNOW_sample.txt"
CONFIG = Path(__file__).resolve().parents[2] / "benchmarks" / "cdnow" / "custscore.yaml"


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cdnow") / "data"
    convert_cdnow(SAMPLE, out)
    return out


def test_classical_39_week_split_is_refused_with_the_history_needed(sample_dir, tmp_path, monkeypatch, prefect_harness):
    from pipelines.cli import app

    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["run", "--data", str(sample_dir), "--as-of", "1997-10-01",
                                      "--churn-horizon-days", "273", "--value-horizon-days", "273"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "not enough history" in text and "days of history" in text
    assert "273-day label horizon" in text and "but the data has 273 days" in text


def test_custscore_on_the_sample_beats_the_naive_reference_out_of_time(sample_dir, tmp_path, monkeypatch, prefect_harness):
    from pipelines.flows import retrain_and_score_flow
    from serving.store import ScoreStore

    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    retrain_and_score_flow(data=str(sample_dir), as_of="1998-01-01", config=str(CONFIG),
                           churn_horizon_days=182, value_horizon_days=182)
    scores = ScoreStore(tmp_path / "home" / "store").read_scores()
    custscore = fill_unscored(pd.DataFrame({
        "customer_id": scores["customer_id"], "churn_score": scores["p_churn"], "p_churn": scores["p_churn"],
        "expected_revenue": scores["expected_revenue"], "value_p10": scores["value_p10"],
        "value_p90": scores["value_p90"],
    }))
    transactions = pd.read_csv(sample_dir / "transactions.csv", dtype={"customer_id": str}, parse_dates=["ts"])
    as_of = pd.Timestamp("1998-01-01")
    truth = ground_truth(transactions, as_of, 182)
    naive = NaiveScorer().score(ScoringTask(transactions, sample_dir, as_of, 182, 182))
    churned, revenue = truth["churned"].to_numpy(), truth["revenue"].to_numpy()
    ours = headline_metrics(churned, revenue, align_scores("custscore", truth, custscore))
    theirs = headline_metrics(churned, revenue, align_scores("naive", truth, naive))
    # Real customers nobody here generated, scored 182 days ahead: a regression guard that
    # custscore stays ahead of the naive reference where it was ahead when this was written
    # (value ranking). Its aggregate revenue is NOT ahead (about -36% here against +27% for the
    # naive reference): see benchmarks/README.md; that target is open.
    assert ours["normalized_gini"] > theirs["normalized_gini"]
    assert ours["roc_auc"] > 0.75
