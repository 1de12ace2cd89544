"""Who is scored: every customer with a transaction line before the scoring date, orders or not.

End to end on a small history: features -> training set -> both models -> scoring -> segments.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import pytest

from features.build import FeatureSpec, build_features
from features.tables import tables_from_frames
from features.training_set import build_training_set
from models.churn import ChurnModel
from models.params import ChurnParams, ValueParams
from models.value import ValueModel
from serving.score_run import score_run
from serving.scoring import NEW_CUSTOMER_TEXT_EN, ScoringModels, trailing_net_value
from serving.segments import value_tiers
from serving.settings import ScoringSettings
from tests.features.conftest import random_frames

SCORING = datetime(2024, 12, 31)
SPEC = FeatureSpec(windows_days=(90, 365))


@pytest.fixture(scope="module")
def tables():
    """Random buyers, one customer with only $0 lines, one with only a return, one who never bought."""
    con = ibis.duckdb.connect()
    frames = random_frames(80, seed=11, start=datetime(2021, 6, 1), end=SCORING)
    tx = frames["transactions"]
    odd = pd.DataFrame({
        "customer_id": ["zero", "zero", "ret", "ret", "later"], "order_id": ["z1", "z2", "r1", "r2", "l1"],
        # lines dated on the scoring date are not seen as of it: ret's second return, later's first order
        "ts": pd.to_datetime(["2022-01-10", "2024-11-01", "2024-10-01", "2024-12-31", "2024-12-31"]),
        "amount": [0.0, 0.0, -25.0, -1000.0, 80.0], "margin": [0.0, 0.0, -7.5, -300.0, 24.0],
        "category": "a", "product_id": "p1", "discount": 0.0,
    })  # fmt: skip
    frames["transactions"] = pd.concat([tx, odd[tx.columns]], ignore_index=True)
    ids = sorted(set(frames["transactions"]["customer_id"]) - {"later"}) + ["prospect"]
    frames["customers"] = pd.DataFrame({"customer_id": ids, "signup_date": pd.Timestamp("2021-01-01")})
    yield tables_from_frames({k: frames[k] for k in ("transactions", "customers")}, con)[1]
    con.disconnect()


@pytest.fixture(scope="module")
def scored(tables, tmp_path_factory) -> pd.DataFrame:
    training = build_training_set(tables, SCORING, spec=SPEC, n_snapshots=3, step_days=90, min_history_days=180)
    names = [c for c in training.columns if c not in ("customer_id", "as_of", "is_validation") and not c.startswith("label_")]
    train, valid = training[~training["is_validation"]], training[training["is_validation"]]
    churn = ChurnModel(ChurnParams(n_estimators=20)).fit(train, train["label_churn"], valid, valid["label_churn"], names)
    value = ValueModel(ValueParams(n_estimators=20, interval_n_estimators=20, revenue_model="direct")).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        cost_to_serve=train["label_cost_to_serve"], cost_to_serve_val=valid["label_cost_to_serve"],
    )
    features = build_features(tables, SCORING, SPEC, include_prospects=True)
    run = score_run([features], ScoringModels(churn, value, "1", "1"),
                    ScoringSettings(value_horizon_days=365, annual_discount_rate=0.1),
                    tmp_path_factory.mktemp("scoring"), run_id="r1", as_of=SCORING.date())
    numbers = run.numbers.to_pandas().set_index("customer_id")
    scored = numbers.join(run.scores().to_pandas().set_index("customer_id")[["reasons", "reason_text_en"]])
    scored.attrs["summary"] = run.summary.to_pandas()
    return scored


def test_customers_with_only_zero_lines_or_returns_are_scored_and_explained(scored):
    for customer in ("zero", "ret"):
        row = scored.loc[customer]
        assert 0 < row["p_churn"] < 1, customer
        assert np.isfinite([row["expected_revenue"], row["net_value"], row["clv"], row["value_p90"]]).all(), customer
        assert not row["is_new"] and row["segment"] != "new", customer
        assert row["reason_text_en"] != NEW_CUSTOMER_TEXT_EN and row["reasons"] != "{}", customer
    # the return is the realised trailing year: margin -7.5 and 25 returned (cost to serve)
    assert scored.loc["ret", "trailing_net_value"] == pytest.approx(-7.5 - 25.0)
    assert scored.loc["ret", "current_value"] == pytest.approx(-25.0)


def test_only_customers_without_any_line_are_left_unscored_and_say_why(scored):
    unscored = scored[scored["p_churn"].isna()]
    assert list(unscored.index) == ["prospect"]
    assert unscored.loc["prospect", "segment"] == "new"
    assert unscored.loc["prospect", "segment_reason"] == "no transaction before as_of: not scored"
    assert scored["p_churn"].notna().sum() == len(scored) - 1
    assert "later" not in scored.index  # first line on the scoring date: no history as of it, and not in the customers table


def test_a_customer_without_history_has_no_value_tier_and_the_summary_counts_it_apart(scored):
    assert pd.isna(scored.loc["prospect", "value_tier"])
    with_history = scored.drop(index="prospect")
    assert with_history["value_tier"].isin(["A", "B", "C"]).all()
    # the tiers are cut over the scored customers alone, exactly as value_tiers does on them
    expected = value_tiers(with_history["clv"].to_numpy(), tiebreak=with_history.index.to_numpy())
    assert with_history["value_tier"].tolist() == list(expected)
    tiers = scored.attrs["summary"].query("group_by == 'value_tier'").set_index("group")
    assert tiers["customers"].to_dict() == {**with_history["value_tier"].value_counts().reindex(["A", "B", "C"], fill_value=0).to_dict(),
                                            "none": 1}
    assert tiers.loc["none", "label_en"] == "no tier (no history, not scored)"
    assert tiers["share_customers"].sum() == pytest.approx(1.0)


def test_trailing_net_value_is_margin_minus_cost_to_serve_of_the_value_horizon():
    features = pd.DataFrame({
        "revenue_sum_30d": [50.0, 0.0], "revenue_sum_90d": [90.0, 0.0],
        "margin_sum_30d": [15.0, 0.0], "margin_sum_90d": [30.0, -6.0],
        "cost_to_serve_30d": [1.0, 0.0], "cost_to_serve_90d": [6.0, 20.0],
    })  # fmt: skip
    # a 120-day horizon reads the nearest window, 90 days, scaled by 120 / 90
    assert trailing_net_value(features, 120).tolist() == pytest.approx([(30 - 6) * 4 / 3, (-6 - 20) * 4 / 3])
    assert trailing_net_value(features, 30).tolist() == [14.0, 0.0]
    assert np.isnan(trailing_net_value(features[["revenue_sum_30d"]], 30)).all()
