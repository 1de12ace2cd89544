"""Promotion also compares calibration with the champion's on the same out-of-time rows."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import brier_score_loss

from models.level import LevelAnchor
from models.metrics import churn_metrics
from models.params import ChurnParams
from pipelines import tracking
from pipelines.config import CalibrationGate, TooGoodLimits, load_config
from pipelines.training import RunContext, published_level_bias_pct, train_churn

BRIER_SETTING = "training.calibration_gate.brier_above_champion"


def _brier(challenger: float, champion: float, tolerance: float | None = 0.005) -> tracking.CalibrationComparison:
    return tracking.CalibrationComparison("brier", challenger, champion, tolerance, BRIER_SETTING)


def test_a_better_auc_with_a_brier_worse_beyond_the_tolerance_is_kept_and_both_figures_are_named():
    decision = tracking.decide_promotion("roc_auc", 0.8200, 0.7000, 0.8000, calibration=_brier(0.1720, 0.1650))
    assert not decision.promote
    assert decision.reason == (
        "challenger roc_auc 0.8200 beats the champion 0.8000 on the same out-of-time data, but its Brier score "
        "0.1720 is worse than the champion's 0.1650 by 0.0070, beyond the tolerance 0.005 "
        "(training.calibration_gate.brier_above_champion)")


@pytest.mark.parametrize(("challenger_brier", "champion_brier"), [
    (0.1690, 0.1650),  # 0.004 worse: within 0.005
    (0.1650, 0.1600),  # exactly 0.005 worse (0.005000000000000004 in floats): at the tolerance is within it
    (0.1500, 0.1650),  # better calibrated
])
def test_a_better_auc_with_a_brier_within_the_tolerance_is_promoted_and_says_so(challenger_brier, champion_brier):
    decision = tracking.decide_promotion("roc_auc", 0.8200, 0.7000, 0.8000,
                                         calibration=_brier(challenger_brier, champion_brier))
    assert decision.promote
    assert decision.reason.endswith(f"its Brier score {challenger_brier:.4f} is within 0.005 of the champion's "
                                    f"{champion_brier:.4f}")


def test_the_headline_decides_first_and_a_switched_off_or_unmeasurable_check_does_not_block():
    worse_auc = tracking.decide_promotion("roc_auc", 0.7900, 0.7000, 0.8000, calibration=_brier(0.1500, 0.1650))
    assert not worse_auc.promote and "does not beat the champion 0.8000" in worse_auc.reason
    assert tracking.decide_promotion("roc_auc", 0.82, 0.70, 0.80, calibration=_brier(0.30, 0.16, None)).promote
    assert tracking.decide_promotion("roc_auc", 0.82, 0.70, 0.80,
                                     calibration=_brier(0.30, float("nan"))).promote
    # Without a comparable champion there is no calibration to defend.
    assert tracking.decide_promotion("roc_auc", 0.82, 0.70, None, calibration=_brier(0.30, 0.16)).promote


def test_a_value_level_biased_beyond_the_tolerance_is_kept_in_percentage_points():
    bias = tracking.CalibrationComparison("abs_level_bias_pct", 12.0, 3.0, 5.0,
                                          "training.calibration_gate.bias_pct_above_champion")
    decision = tracking.decide_promotion("normalized_gini", 0.62, 0.40, 0.60, calibration=bias)
    assert not decision.promote
    assert decision.reason.endswith(
        "but its absolute aggregate bias of the value level 12.00% is worse than the champion's 3.00% by 9.00%, "
        "beyond the tolerance 5 percentage points (training.calibration_gate.bias_pct_above_champion)")


class _ValueModel:
    def __init__(self, anchor: LevelAnchor):
        self.level_anchor_ = anchor


def test_the_value_level_is_the_one_scoring_publishes_anchored_where_the_anchor_applies():
    y = np.array([10.0, 10.0, 20.0])          # realised total 40
    pred = np.array([5.0, 5.0, 10.0])         # predicted total 20: -50%
    level = np.array([12.0, 12.0, 24.0])      # BG/NBD total 48: anchored, +20%
    valid = pd.DataFrame({"days_since_first_order": [100.0, 200.0, 300.0]})
    used = LevelAnchor(mode="auto").fit(y, pred, level)
    assert used.use_anchor_  # |+20| <= |-50| - 2
    assert published_level_bias_pct(_ValueModel(used), pred, y, level, valid) == pytest.approx(20.0)
    never = LevelAnchor(mode="never").fit(y, pred, level)
    assert published_level_bias_pct(_ValueModel(never), pred, y, level, valid) == pytest.approx(-50.0)


def test_the_default_tolerances_are_in_the_config_file_and_can_be_switched_off(tmp_path):
    assert load_config().training.calibration_gate == CalibrationGate(brier_above_champion=0.005,
                                                                      bias_pct_above_champion=10.0)
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  calibration_gate:\n    brier_above_champion: null\n")
    assert load_config(path).training.calibration_gate.brier_above_champion is None


# --- through the training path: a real champion, a real challenger, a real MLflow registry ---------------


def _frame(seed: int = 3, n: int = 600) -> pd.DataFrame:
    """Two training snapshots and one validation snapshot; `strong` predicts churn well, `weak` adds a little."""
    rng = np.random.default_rng(seed)
    parts = []
    for as_of, validation in (("2026-04-01", False), ("2026-05-01", False), ("2026-06-01", True)):
        strong, weak = rng.normal(size=n), rng.normal(size=n)
        p = 1 / (1 + np.exp(-(-1.3 + 1.8 * strong + 0.6 * weak)))
        parts.append(pd.DataFrame({
            "customer_id": [f"c{i}" for i in range(n)], "as_of": pd.Timestamp(as_of), "is_validation": validation,
            "days_since_first_order": rng.uniform(30, 900, n), "days_since_last_order": rng.uniform(1, 30, n),
            "order_gap_mean_days": rng.uniform(5, 60, n),  # the rule baseline's inputs: noise here
            "strong": strong, "weak": weak,
            "label_churn": (rng.uniform(size=n) < p).astype(int),
        }))
    return pd.concat(parts, ignore_index=True)


def _ctx(features: tuple[str, ...], gate: CalibrationGate = CalibrationGate()) -> RunContext:
    # One-feature models carry all the gain in one feature: that limit is not what is tested here.
    return RunContext("fs", "hash", "2026-07-01", 90, "test data", model_features=features, design="fixed",
                      too_good=TooGoodLimits(feature_gain_share_above=None), calibration_gate=gate)


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.configure_tracking(uri, tmp_path / "artifacts")
    yield MlflowClient()
    mlflow.set_tracking_uri(None)


# Class weighting without calibration: probabilities pushed towards churn, ranking intact.
MISCALIBRATED = ChurnParams(class_weighting=True, calibration="none", n_estimators=200)


def _champion_and_challenger(gate: CalibrationGate):
    frame = _frame()
    champion = train_churn(frame, ChurnParams(n_estimators=200), _ctx(("strong",)))
    assert champion.promoted
    challenger = train_churn(frame, MISCALIBRATED, _ctx(("strong", "weak"), gate))
    return frame, champion, challenger


def test_a_sharper_but_miscalibrated_churn_model_is_kept_and_the_champion_is_scored_on_the_same_rows(registry):
    frame, champion, challenger = _champion_and_challenger(CalibrationGate())
    assert challenger.metrics["roc_auc"] > challenger.champion_metric  # it ranks better ...
    assert not challenger.promoted  # ... but its probabilities are worse beyond 0.005
    assert tracking.current_champion_version("churn", registry) == champion.version
    # The champion's Brier in the reason is the champion's own on the challenger's validation rows
    # (uncalibrated here, so no calibrator fitted on these rows flatters it).
    valid = frame[frame["is_validation"]]
    loaded = tracking.load_champion("churn", registry)
    assert loaded.model.calibration_method_ == "none"
    champion_brier = brier_score_loss(valid["label_churn"], loaded.model.predict_proba(valid[["strong"]]))
    assert challenger.champion_calibration == pytest.approx(champion_brier)
    assert (f"its Brier score {challenger.metrics['brier']:.4f} is worse than the champion's {champion_brier:.4f}"
            in challenger.reason)
    assert challenger.metrics["brier"] - champion_brier > 0.005
    tags = registry.get_model_version("custscore-churn", challenger.version).tags
    assert tags["promotion_decision"] == "kept" and tags["promotion_reason"] == challenger.reason
    logged = registry.get_run(challenger.run_id).data.metrics
    assert logged["champion_brier"] == pytest.approx(champion_brier)


def test_the_same_challenger_is_promoted_when_its_brier_is_within_a_wider_tolerance(registry):
    _, champion, challenger = _champion_and_challenger(CalibrationGate(brier_above_champion=0.5))
    assert challenger.promoted and "is within 0.5 of the champion's" in challenger.reason
    assert tracking.current_champion_version("churn", registry) == challenger.version


def test_retraining_on_identical_data_measures_champion_and_challenger_alike(registry):
    """The same data and settings give the same model: neither may look better by how it was measured."""
    frame = _frame(seed=11)
    first = train_churn(frame, ChurnParams(n_estimators=200, calibration="isotonic"), _ctx(("strong", "weak")))
    assert first.promoted
    again = train_churn(frame, ChurnParams(n_estimators=200, calibration="isotonic"), _ctx(("strong", "weak")))
    assert again.champion_metric == pytest.approx(again.metrics["roc_auc"], abs=1e-12)
    assert again.champion_calibration == pytest.approx(again.metrics["brier"], abs=1e-12)
    assert not again.promoted and "does not beat the champion" in again.reason  # a tie, not a loss
    # Measured with the calibrator refit on these very rows, the champion looked better than itself.
    valid = frame[frame["is_validation"]]
    loaded = tracking.load_champion("churn", registry)
    in_sample = churn_metrics(valid["label_churn"].to_numpy(dtype=float),
                              loaded.model.predict_proba(valid[["strong", "weak"]]))["roc_auc"]
    assert in_sample > again.metrics["roc_auc"]
