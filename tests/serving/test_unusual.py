"""The unusual-reasons rule on tiny hand-made populations: a usual value is never a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.reason_reference import ReasonReference
from serving.reasons import reasons_table
from serving.unusual import unusual_only

NAMES = ["days_late_mean_90d", "invoice_on_time_rate_90d", "attr_industry"]


def _population() -> tuple[np.ndarray, pd.DataFrame]:
    """Ten customers: days late 0..9 (more raises churn), on-time rate 1.0..0.1 (less raises it), two industries."""
    late = np.arange(10.0)
    on_time = 1.0 - late / 10.0
    industry = pd.Categorical(["retail"] * 8 + ["mining"] * 2)
    X = pd.DataFrame({"days_late_mean_90d": late, "invoice_on_time_rate_90d": on_time, "attr_industry": industry})
    # Contributions rise with days late and fall with the on-time rate; mining pushes churn up, retail down.
    contrib = np.column_stack([0.1 * (late - 2.0), 0.05 * (late - 2.0), np.where(late >= 8, 0.3, -0.02), np.zeros(10)])
    return contrib, X


@pytest.fixture(scope="module")
def reference() -> ReasonReference:
    contrib, X = _population()
    return ReasonReference.from_population(contrib, X, NAMES)


def test_direction_follows_how_contributions_move_with_the_value(reference):
    # Higher days late push up, a higher on-time rate pushes down, a category has no direction.
    assert reference.direction.tolist() == [1.0, -1.0, 0.0]
    # 80th percentile of 0..9 (the value at rank ceil(0.8 x 10) = 8): 7; 20th of the rates 0.1..1.0: 0.2.
    assert reference.value_percentiles[0, 80] == 7.0
    assert reference.value_percentiles[1, 20] == pytest.approx(0.2)
    assert np.isnan(reference.value_percentiles[2]).all()


def test_an_ordinary_value_is_never_a_raising_reason_even_with_a_positive_contribution(reference):
    # Three days late is the population's usual: its large positive contribution is dropped.
    X = pd.DataFrame({"days_late_mean_90d": [3.0, 8.0], "invoice_on_time_rate_90d": [0.9, 0.1],
                      "attr_industry": pd.Categorical(["retail", "retail"])})
    contrib = np.array([[2.0, 0.3, 0.0], [0.5, 0.3, 0.0]])
    kept = unusual_only(contrib, X, reference, 80)
    assert kept[0].tolist() == [0.0, 0.0, 0.0]
    # Eight days late is beyond the 80th percentile (7); an on-time rate of 0.1 below the 20th (0.2).
    assert kept[1].tolist() == [0.5, 0.3, 0.0]


def test_the_value_at_the_percentile_itself_is_not_beyond_it(reference):
    X = pd.DataFrame({"days_late_mean_90d": [7.0], "invoice_on_time_rate_90d": [0.2], "attr_industry": pd.Categorical(["retail"])})
    assert unusual_only(np.array([[1.0, 1.0, 0.0]]), X, reference, 80).tolist() == [[0.0, 0.0, 0.0]]


def test_lowering_reasons_must_be_unusual_on_the_safe_side(reference):
    # Paying on time (rate 1.0, 0 days late) lowers churn only for the top and bottom 20%: 0 days late < P20 = 1.
    X = pd.DataFrame({"days_late_mean_90d": [0.0, 4.0], "invoice_on_time_rate_90d": [1.0, 0.6],
                      "attr_industry": pd.Categorical(["retail", "retail"])})
    contrib = np.array([[-0.2, -0.1, 0.0], [-0.2, -0.1, 0.0]])
    assert unusual_only(contrib, X, reference, 80).tolist() == [[-0.2, -0.1, 0.0], [0.0, 0.0, 0.0]]


def test_a_category_counts_when_its_contribution_is_unusual(reference):
    # Mining's push (0.3) is beyond the 80th percentile of the industry's contributions (-0.02); so is 0.4.
    X = pd.DataFrame({"days_late_mean_90d": [3.0, 3.0], "invoice_on_time_rate_90d": [0.7, 0.7],
                      "attr_industry": pd.Categorical(["mining", "retail"])})
    contrib = np.array([[0.0, 0.0, 0.4], [0.0, 0.0, -0.02]])
    kept = unusual_only(contrib, X, reference, 80)
    assert kept[:, 2].tolist() == [0.4, 0.0]


def test_reasons_table_leaves_out_usual_facts_and_keeps_contributions_exact(reference):
    X = pd.DataFrame({"days_late_mean_90d": [3.0, 9.0], "invoice_on_time_rate_90d": [0.9, 0.1],
                      "attr_industry": pd.Categorical(["retail", "retail"])})
    contrib = np.array([[0.7, 0.2, 0.0, -1.0], [0.6, 0.35, 0.0, -1.0]])
    plain = reasons_table(contrib, X, NAMES, score="churn", k=3).to_pandas()
    ruled = reasons_table(contrib, X, NAMES, score="churn", k=3, reference=reference, unusual_percentile=80).to_pandas()
    # Without the rule the usual three days late is customer 0's top reason; with it, customer 0 has none.
    assert set(plain.loc[plain["row"] == 0, "feature"]) == {"days_late_mean_90d", "invoice_on_time_rate_90d"}
    assert ruled.loc[ruled["row"] == 0].empty
    customer_1 = ruled.loc[ruled["row"] == 1].sort_values("rank")
    assert customer_1["feature"].tolist() == ["days_late_mean_90d", "invoice_on_time_rate_90d"]
    assert customer_1["contribution"].tolist() == [0.6, 0.35]  # the contributions themselves, unchanged


def test_reference_in_another_column_order_is_aligned_and_a_missing_feature_is_named(reference):
    X = pd.DataFrame({"attr_industry": pd.Categorical(["retail"]), "days_late_mean_90d": [9.0]})
    aligned = reference.aligned(["attr_industry", "days_late_mean_90d"])
    assert unusual_only(np.array([[0.0, 0.5]]), X, aligned, 80).tolist() == [[0.0, 0.5]]
    with pytest.raises(ValueError, match="dso_days"):
        reference.aligned(["dso_days"])


def test_percentile_out_of_range_is_refused(reference):
    X = pd.DataFrame({name: [1.0] for name in NAMES[:2]} | {"attr_industry": pd.Categorical(["retail"])})
    with pytest.raises(ValueError, match="percentile=40"):
        unusual_only(np.zeros((1, 3)), X, reference, 40)


def test_a_number_with_one_value_for_every_reference_customer_is_never_a_reason():
    # last year's season share of all customers: 0.26 for everyone in the reference, with contributions
    # spread by the trees' interactions; at scoring it is 0.31 for everyone, some contributions large
    names = ["season_share_next_90d", "days_late_mean_90d"]
    late = np.arange(10.0)
    X = pd.DataFrame({"season_share_next_90d": np.full(10, 0.26), "days_late_mean_90d": late})
    contrib = np.column_stack([np.linspace(-0.2, 0.2, 10), 0.1 * (late - 2.0), np.zeros(10)])
    reference = ReasonReference.from_population(contrib, X, names)
    now = pd.DataFrame({"season_share_next_90d": np.full(3, 0.31), "days_late_mean_90d": [9.0, 9.0, 1.0]})
    kept = unusual_only(np.array([[0.9, 0.7], [0.5, -0.1], [-0.4, -0.1]]), now, reference, 80)
    assert (kept[:, 0] == 0).all()  # the date's share is nobody's reason
    assert kept[0, 1] == 0.7  # 9 days late, beyond the 80th percentile (7): still a reason
