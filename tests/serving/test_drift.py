"""Drift against a champion's reference: PSI, missing shares, new and vanished categories, counted chunk by chunk."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from models.drift_profile import drift_profile, numeric_profile
from serving.drift import DriftMeter, DriftSettings, drift_warnings, not_measured_reason, psi, severe_names

SETTINGS = DriftSettings()


def population(n: int, seed: int, *, shift: float = 0.0, cities=("north", "south"), missing_share: float = 0.0) -> pd.DataFrame:
    """Customers with history: a spend figure, a city attribute and the scores scoring computes."""
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 50.0, n) + shift
    spend[rng.random(n) < missing_share] = np.nan
    return pd.DataFrame({
        "customer_id": [f"c{seed}-{i}" for i in range(n)],
        "days_since_last_order": rng.integers(1, 400, n).astype(float),  # history: every row is scored
        "revenue_sum_365d": spend,
        "attr_city": pd.Categorical(rng.choice(list(cities), n)),
        "p_churn": rng.beta(2, 5, n),
        "expected_revenue": rng.gamma(2.0, 40.0, n),
        "is_new": np.zeros(n, dtype=bool),
    })


def champions(reference: pd.DataFrame, *, value_profile: bool = True) -> SimpleNamespace:
    """Two champions with the drift references training would give them (value's optional: a model trained before)."""
    churn = SimpleNamespace(drift_profile_=drift_profile(reference, ["revenue_sum_365d", "attr_city"],
                                                         {"p_churn": reference["p_churn"].to_numpy()}))
    value = SimpleNamespace(drift_profile_=drift_profile(reference, ["revenue_sum_365d"],
                                                         {"expected_revenue": reference["expected_revenue"].to_numpy()})
                            if value_profile else None)
    return SimpleNamespace(churn=churn, value=value, churn_version="3", value_version="2")


def measured(reference: pd.DataFrame, now: pd.DataFrame, chunk: int | None = None) -> pd.DataFrame:
    meter = DriftMeter.for_models(champions(reference))
    step = chunk or len(now)
    for start in range(0, len(now), step):
        part = now.iloc[start:start + step]
        meter.add_features(part)
        meter.add_scores(part)
    return meter.table(SETTINGS).to_pandas().set_index("name")


def test_psi_is_zero_for_identical_distributions():
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_of_a_two_bin_example_is_the_hand_computed_value():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))


def test_a_bin_empty_now_counts_as_a_small_share_not_infinity():
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx((1 - 0.5) * math.log(2) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


def test_numeric_bins_merge_tied_edges_and_count_missing_beside_them():
    profile = numeric_profile(np.array([0, 0, 0, 1, 1, np.nan, 0, 1, 0, 0.0]))
    assert profile["edges"] == [0.0, 1.0]  # a 0/1 flag: deciles fall on 0 and 1 only
    assert profile["shares"] == pytest.approx([0.6, 0.3, 0.0])  # x <= 0, 0 < x <= 1, x > 1 (of all 10 rows)
    assert profile["missing"] == pytest.approx(0.1)


def test_the_same_population_gives_zero_psi_for_every_feature_and_score():
    reference = population(2000, seed=1)
    table = measured(reference, reference)
    assert table["psi"].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert set(table["level"]) == {"ok"}
    assert table.index.tolist() == ["revenue_sum_365d", "attr_city", "p_churn", "expected_revenue"]


def test_a_shifted_feature_is_flagged_and_a_stable_one_is_not():
    reference, now = population(4000, seed=1), population(4000, seed=2, shift=60.0)
    table = measured(reference, now)
    assert table.loc["revenue_sum_365d", "level"] == "severe"
    assert table.loc["revenue_sum_365d", "psi"] > SETTINGS.psi_severe
    assert table.loc["attr_city", "level"] == "ok"  # another sample of the same cities
    assert severe_names(table.reset_index(), SETTINGS) == ["revenue_sum_365d"]
    lines = drift_warnings(table.reset_index(), SETTINGS)
    assert lines[0].startswith("drift: 1 beyond PSI 0.25 (severe, on_severe: warn): revenue_sum_365d (")


def test_new_and_vanished_categories_are_named():
    reference = population(1000, seed=1, cities=("north", "south", "east"))
    now = population(1000, seed=2, cities=("north", "south", "west"))
    row = measured(reference, now).loc["attr_city"]
    assert row["new_categories"] == "west"
    assert row["vanished_categories"] == "east"
    # A third of the customers in a category the reference never had, a third of the reference's gone:
    assert row["level"] == "severe"
    assert any("attr_city has categories the champions' training data did not have: west" in line
               for line in drift_warnings(measured(reference, now).reset_index(), SETTINGS))


def test_missing_share_is_reported_now_and_in_the_reference():
    reference, now = population(2000, seed=1, missing_share=0.1), population(2000, seed=1, missing_share=0.0)
    row = measured(reference, now).loc["revenue_sum_365d"]
    assert row["missing_ref"] == pytest.approx(reference["revenue_sum_365d"].isna().mean())
    assert row["missing_now"] == 0.0


def test_counting_chunk_by_chunk_gives_the_one_shot_table():
    reference, now = population(3000, seed=1), population(2500, seed=3, shift=20.0, cities=("north", "west"))
    pd.testing.assert_frame_equal(measured(reference, now, chunk=333), measured(reference, now))


def test_prospects_without_history_are_not_counted():
    reference = population(500, seed=1)
    prospects = population(200, seed=2, shift=500.0)
    prospects["days_since_last_order"] = np.nan
    prospects["is_new"] = True
    with_prospects = measured(reference, pd.concat([reference, prospects], ignore_index=True))
    assert with_prospects["psi"].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert set(with_prospects["customers"]) == {500}


def test_champions_trained_before_references_leave_drift_not_measured_with_one_line():
    old = SimpleNamespace(churn=SimpleNamespace(), value=SimpleNamespace(), churn_version="3", value_version="2")
    assert DriftMeter.for_models(old) is None
    assert not_measured_reason(old) == (
        "drift not measured: the churn champion v3 and the value champion v2 were trained before models kept "
        "a drift reference; the next retrain (custscore run --retrain, or the monthly flow) adds one")


def test_one_champion_without_a_reference_measures_the_other_and_says_so():
    reference = population(500, seed=1)
    models = champions(reference, value_profile=False)
    table = DriftMeter.for_models(models).table(SETTINGS).to_pandas()
    assert table["name"].tolist() == ["revenue_sum_365d", "attr_city", "p_churn"]
    assert not_measured_reason(models).startswith("drift measured for one model only: the value champion v2 was trained")


def test_severe_below_warn_is_refused():
    with pytest.raises(ValueError, match=r"psi_severe \(0.05\) must be at least psi_warn \(0.1\)"):
        DriftSettings(psi_severe=0.05)


def test_an_ignored_feature_is_measured_and_stored_but_neither_named_nor_acted_on():
    reference, now = population(4000, seed=1), population(4000, seed=2, shift=60.0)
    table = measured(reference, now).reset_index()
    ignoring = DriftSettings(ignore=("revenue_sum_365d",))
    assert table.set_index("name").loc["revenue_sum_365d", "level"] == "severe"
    assert severe_names(table, ignoring) == []
    assert not any("revenue_sum_365d" in line for line in drift_warnings(table, ignoring))


def test_a_feature_with_one_value_for_everyone_is_constant_not_drift():
    from models.drift_profile import numeric_profile
    from serving.drift import CONSTANT, _Counts

    counts = _Counts(numeric_profile(np.full(200, 0.18)))  # last year's season share: the same for every customer
    counts.add(pd.Series(np.full(150, 0.61)))
    row = counts.row("season_share_next_90d", "feature", DriftSettings())
    assert row["psi"] > 1 and row["level"] == CONSTANT  # the date moved, not the population
    shifted = _Counts(numeric_profile(np.full(200, 0.18)))
    shifted.add(pd.Series(np.r_[np.full(100, 0.18), np.full(50, 0.61)]))  # now two values: a real shift
    assert shifted.row("x", "feature", DriftSettings())["level"] == "severe"
