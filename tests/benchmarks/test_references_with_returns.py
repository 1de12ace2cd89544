"""The benchmark references on data with returns (Online Retail), and custscore run from this checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.cdnow.btyd import DAYS_PER_WEEK, rfm_summary
from benchmarks.cdnow.data import SHIPPED_SAMPLE, convert_cdnow, load_transactions
from benchmarks.cdnow.scorers import (
    REPO_ROOT,
    BgNbdGammaGammaScorer,
    CustscoreCliScorer,
    NaiveScorer,
    ScoringTask,
    imported_code_location,
    subprocess_env,
)
from tests.benchmarks.test_cdnow_run import _fake_custscore

AS_OF = pd.Timestamp("2011-02-01")


def rows(records: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=["customer_id", "ts", "amount"])
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


# Customer a buys on Jan 1 and Jan 15, returns on Jan 8 and Jan 20 (and on Jan 15 itself);
# customer b only returns something.
WITH_RETURNS = rows([
    ("a", "2011-01-01 10:00", 100.0),
    ("a", "2011-01-08 10:00", -30.0),
    ("a", "2011-01-15 10:00", 50.0),
    ("a", "2011-01-15 11:00", -10.0),
    ("a", "2011-01-20 10:00", -5.0),
    ("b", "2011-01-05 10:00", -20.0),
    ("a", "2011-02-03 10:00", 70.0),  # after as-of: never seen
])


def test_return_days_are_not_purchase_days_but_their_amounts_are_net_spend():
    summary = rfm_summary(WITH_RETURNS, AS_OF)
    assert list(summary.index) == ["a"]  # b has no purchase day
    a = summary.loc["a"]
    assert a["frequency"] == 1  # Jan 15 only; Jan 8 and Jan 20 are returns
    assert a["recency"] == pytest.approx(14 / DAYS_PER_WEEK)
    assert a["T"] == pytest.approx(30 / DAYS_PER_WEEK)  # Jan 1 to Jan 31, the last observed day
    assert a["monetary_value"] == pytest.approx(-30 + 50 - 10 - 5)


def test_naive_recency_ignores_returns_and_returns_only_customers_rank_as_most_lapsed():
    task = ScoringTask(WITH_RETURNS, Path("."), AS_OF, 180, 180)
    scores = NaiveScorer().score(task).set_index("customer_id")
    assert scores.loc["a", "churn_score"] == 16  # whole days since Jan 15 10:00, not since the Jan 20 return
    assert scores.loc["b", "churn_score"] == 30  # no purchase since the data began (Jan 1 10:00)
    assert scores.loc["a", "expected_revenue"] == pytest.approx(100 - 30 + 50 - 10 - 5)
    assert scores.loc["b", "expected_revenue"] == -20


def test_bgnbd_scores_a_returns_only_customer_as_expecting_nothing_and_fits_without_it(tmp_path: Path):
    convert_cdnow(SHIPPED_SAMPLE, tmp_path)
    sample = load_transactions(tmp_path / "transactions.csv")
    as_of = pd.Timestamp("1998-01-01")
    plain = BgNbdGammaGammaScorer()
    expected = plain.score(ScoringTask(sample, tmp_path, as_of, 182, 182)).set_index("customer_id")
    extra = pd.DataFrame({"customer_id": ["99999"], "order_id": ["99999-001"],
                          "ts": [pd.Timestamp("1997-06-01")], "amount": [-5.0], "quantity": [-1.0]})
    scorer = BgNbdGammaGammaScorer()
    scores = scorer.score(ScoringTask(pd.concat([sample, extra]), tmp_path, as_of, 182, 182)).set_index("customer_id")
    assert scorer.n_without_purchase_ == 1
    assert scores.loc["99999", ["p_churn", "expected_revenue"]].tolist() == [1.0, 0.0]
    assert scorer.purchase_model_.params_ == plain.purchase_model_.params_
    pd.testing.assert_frame_equal(scores.drop(index="99999"), expected)


def test_custscore_subprocess_runs_this_checkout(tmp_path: Path):
    env = subprocess_env(tmp_path / "home")
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO_ROOT)
    assert env["CUSTSCORE_HOME"] == str(tmp_path / "home")
    assert imported_code_location(env) == REPO_ROOT / "pipelines" / "__init__.py"


def test_recorded_commands_read_as_a_user_types_them(tmp_path: Path):
    config = REPO_ROOT / "benchmarks" / "cdnow" / "custscore.yaml"
    scorer = CustscoreCliScorer(home=tmp_path / "home", executable=_fake_custscore(tmp_path), config=config)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "transactions.csv").write_text("customer_id,order_id,ts,amount\n1,1,2011-01-01,1\n")
    transactions = pd.DataFrame({"customer_id": ["1"], "ts": [pd.Timestamp("2011-01-01")], "amount": [1.0]})
    scorer.score(ScoringTask(transactions, tmp_path / "data", AS_OF, 180, 180))
    run, export = scorer.displayed_commands()
    # Paths inside the repository are shown relative to it; others (here a temporary folder) as given.
    assert run == ["custscore", "run", "--data", str(tmp_path / "data"), "--as-of", "2011-02-01",
                   "--churn-horizon-days", "180", "--value-horizon-days", "180",
                   "--config", "benchmarks/cdnow/custscore.yaml"]
    assert export == ["custscore", "scores", "export", "--output", str(tmp_path / "home" / "custscore_scores.csv")]
