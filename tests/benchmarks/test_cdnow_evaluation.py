"""Ground truth, references and paired bootstrap of the CDNOW benchmark on hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.cdnow.evaluation import (
    HEADLINE_METRICS,
    AlignedScores,
    align_scores,
    ground_truth,
    headline_metrics,
    paired_bootstrap,
)
from benchmarks.cdnow.scorers import NaiveScorer, ScoringTask

AS_OF = pd.Timestamp("1998-01-01")


@pytest.fixture
def small_log() -> pd.DataFrame:
    """Three customers: a buys again in the window, b does not, c buys only after the window."""
    return pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c", "c"],
        "ts": pd.to_datetime(["1997-03-01", "1997-12-01", "1998-02-01", "1997-07-05",
                              "1997-12-31", "1997-01-10", "1998-07-10"]),
        "amount": [10.0, 20.0, 30.0, 5.0, 6.0, 7.0, 100.0],
    })


def test_ground_truth_labels_the_window_only(small_log):
    truth = ground_truth(small_log, AS_OF, horizon_days=182).set_index("customer_id")
    assert truth["churned"].to_dict() == {"a": 0, "b": 1, "c": 1}  # c's July purchase is after the window
    assert truth["revenue"].to_dict() == {"a": 30.0, "b": 0.0, "c": 0.0}


def test_naive_reference_uses_recency_and_trailing_revenue(small_log):
    task = ScoringTask(small_log, data_dir=None, as_of=AS_OF, churn_horizon_days=182,
                       value_horizon_days=182)
    scores = NaiveScorer().score(task).set_index("customer_id")
    assert scores["churn_score"].to_dict() == {"a": 31.0, "b": 1.0, "c": 356.0}
    # Trailing 182 days = [1997-07-03, 1998-01-01).
    assert scores["expected_revenue"].to_dict() == {"a": 20.0, "b": 11.0, "c": 0.0}


def test_missing_customers_in_a_scorer_output_are_reported_by_id(small_log):
    truth = ground_truth(small_log, AS_OF, horizon_days=182)
    partial = pd.DataFrame({"customer_id": ["a", "b"], "churn_score": [0.1, 0.9],
                            "expected_revenue": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"miss 1 of 3 customers.*'c'"):
        align_scores("custscore", truth, partial)


def _random_scores(name: str, n: int, seed: int) -> AlignedScores:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return AlignedScores(name, p, p, rng.gamma(1.0, 20.0, n), np.full(n, np.nan), np.full(n, np.nan))


@pytest.fixture
def outcomes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    churned = rng.integers(0, 2, 400)
    revenue = np.where(churned == 1, 0.0, rng.gamma(1.0, 30.0, 400))
    return churned, revenue


def test_bootstrap_interval_contains_the_observed_difference(outcomes):
    churned, revenue = outcomes
    candidate, reference = _random_scores("cand", 400, 1), _random_scores("ref", 400, 2)
    table = paired_bootstrap(churned, revenue, [candidate], reference, n_resamples=40, seed=3)["cand"]
    assert list(table.index) == list(HEADLINE_METRICS)
    expected = {k: headline_metrics(churned, revenue, candidate)[k]
                - headline_metrics(churned, revenue, reference)[k] for k in HEADLINE_METRICS}
    assert table["observed_difference"].to_dict() == pytest.approx(expected)
    assert (table["ci_low"] <= table["observed_difference"]).all()
    assert (table["observed_difference"] <= table["ci_high"]).all()
    assert (table["ci_high"] > table["ci_low"]).all()


def test_bootstrap_of_identical_models_is_exactly_zero(outcomes):
    churned, revenue = outcomes
    same = _random_scores("same", 400, 1)
    table = paired_bootstrap(churned, revenue, [same], same, n_resamples=20, seed=3)["same"]
    assert (table[["observed_difference", "ci_low", "ci_high"]] == 0.0).all().all()


def test_bootstrap_is_reproducible_with_its_seed(outcomes):
    churned, revenue = outcomes
    candidate, reference = _random_scores("cand", 400, 1), _random_scores("ref", 400, 2)
    first = paired_bootstrap(churned, revenue, [candidate], reference, n_resamples=10, seed=7)
    again = paired_bootstrap(churned, revenue, [candidate], reference, n_resamples=10, seed=7)
    pd.testing.assert_frame_equal(first["cand"], again["cand"])
