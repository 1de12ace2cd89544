"""Level anchoring: used only when it lowers the validation aggregate bias, one factor for everything."""

from __future__ import annotations

import numpy as np
import pytest

from models.level import LevelAnchor, anchor_factor


@pytest.fixture()
def spend() -> np.ndarray:
    """Actual spend of 5,000 synthetic customers, zero-inflated and skewed like real revenue."""
    rng = np.random.default_rng(0)
    return rng.gamma(0.5, 60.0, size=5_000) * (rng.random(5_000) < 0.4)


def noisy(values: np.ndarray, level: float, seed: int) -> np.ndarray:
    """A noisy prediction whose total is `level` times the actual total."""
    rng = np.random.default_rng(seed)
    base = (values + 5.0) * rng.lognormal(0.0, 0.3, size=values.size)
    return base * level * values.sum() / base.sum()


def test_an_overpredicting_model_is_anchored_to_a_well_levelled_anchor(spend):
    pred, anchor = noisy(spend, 1.3, 1), noisy(spend, 1.0, 2)
    level = LevelAnchor().fit(spend, pred, anchor)
    assert level.use_anchor_
    assert level.bias_model_pct_ > 25 and abs(level.bias_anchored_pct_) < abs(level.bias_model_pct_)
    scaled, factor = level.transform(pred, anchor)
    assert scaled.sum() == pytest.approx(anchor.sum())
    assert factor == pytest.approx(anchor.sum() / pred.sum())
    assert np.array_equal(np.argsort(scaled), np.argsort(pred))  # ranking untouched


def test_a_well_levelled_model_is_left_alone(spend):
    pred, anchor = noisy(spend, 1.0, 1), noisy(spend, 0.8, 2)
    level = LevelAnchor().fit(spend, pred, anchor)
    assert not level.use_anchor_
    scaled, factor = level.transform(pred, anchor)
    assert factor == 1.0 and np.array_equal(scaled, pred)


def test_a_gain_below_the_margin_does_not_switch_to_the_anchor(spend):
    pred = noisy(spend, 1.0, 1)
    anchor = pred * 1.01  # a total 1 point off the model's: cannot gain the 2-point margin
    level = LevelAnchor(min_gain_pct=2.0).fit(spend, pred, anchor)
    assert abs(abs(level.bias_model_pct_) - abs(level.bias_anchored_pct_)) < 2.0
    assert not level.use_anchor_


def test_scoring_factor_comes_from_the_scored_population_and_skips_missing_anchors(spend):
    level = LevelAnchor().fit(spend, noisy(spend, 1.4, 1), noisy(spend, 1.0, 2))
    pred = np.array([10.0, 20.0, 30.0, 40.0])
    anchor = np.array([5.0, 10.0, np.nan, 20.0])  # NaN: BTYD had no input for that customer
    scaled, factor = level.transform(pred, anchor)
    assert factor == pytest.approx(35.0 / 70.0)
    assert scaled == pytest.approx(pred * 0.5)


def test_unmeasurable_validation_never_uses_the_anchor():
    level = LevelAnchor().fit(np.zeros(10), np.ones(10), np.full(10, 2.0))
    assert not level.use_anchor_


def test_mismatched_lengths_name_the_arguments():
    with pytest.raises(ValueError, match="anchor_val"):
        LevelAnchor().fit(np.ones(3), np.ones(3), np.ones(2))


def test_always_mode_uses_the_anchor_even_when_validation_shows_no_gain(spend):
    """For a scored population older than validation, where validation cannot show the drift."""
    pred, anchor = noisy(spend, 1.0, 1), noisy(spend, 0.8, 2)
    level = LevelAnchor(mode="always").fit(spend, pred, anchor)
    assert level.use_anchor_ and not LevelAnchor().fit(spend, pred, anchor).use_anchor_
    scaled, _ = level.transform(pred, anchor)
    assert scaled.sum() == pytest.approx(anchor.sum())


def test_never_mode_keeps_the_model_level_even_when_the_anchor_would_help(spend):
    pred, anchor = noisy(spend, 1.3, 1), noisy(spend, 1.0, 2)
    level = LevelAnchor(mode="never").fit(spend, pred, anchor)
    assert not level.use_anchor_
    assert level.transform(pred, anchor)[1] == 1.0


def test_unknown_mode_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="auto.*always.*never"):
        LevelAnchor(mode="sometimes")


def test_anchor_factor_is_the_same_in_any_order_of_the_rows():
    # A few very large values among many small ones: a plain float sum depends on the order.
    rng = np.random.default_rng(4)
    n = 200_000
    pred = np.where(rng.uniform(size=n) < 0.01, rng.gamma(0.3, 1e9, n), rng.gamma(0.3, 1.0, n) / 3.0)
    anchor = np.where(rng.uniform(size=n) < 0.01, rng.gamma(0.3, 1e9, n), rng.gamma(0.3, 0.9, n) / 7.0)
    order = rng.permutation(n)
    assert anchor[order].sum() / pred[order].sum() != anchor.sum() / pred.sum()
    assert anchor_factor(pred[order], anchor[order]) == anchor_factor(pred, anchor)


def test_auto_anchors_a_population_older_than_the_training_rows():
    # Validation says the model's level is fine (no gain from anchoring) ...
    y = np.array([100.0, 200.0, 300.0])
    anchor = LevelAnchor(mode="auto").fit(y, y * 1.01, y * 1.2, tenure_train=np.arange(30.0, 211.0))
    assert not anchor.use_anchor_ and anchor.tenure_train_p90_ == pytest.approx(192.0)
    # ... but customers scored a year later are older than 90% of what the model learnt from.
    pred, reference = np.array([10.0, 30.0]), np.array([15.0, 45.0])
    assert anchor.uses_anchor_for(np.array([300.0, 350.0, 400.0]))
    scaled, factor = anchor.transform(pred, reference, tenure_scored=np.array([300.0, 350.0, 400.0]))
    assert factor == pytest.approx(1.5) and scaled == pytest.approx([15.0, 45.0])
    # A population of the same age as the training rows keeps the model's level.
    assert not anchor.uses_anchor_for(np.array([60.0, 120.0, 180.0]))
    assert anchor.transform(pred, reference, tenure_scored=np.array([60.0, 120.0]))[1] == 1.0


def test_never_mode_ignores_ageing_and_old_models_without_tenure_keep_the_validation_rule():
    y = np.array([100.0, 200.0, 300.0])
    never = LevelAnchor(mode="never").fit(y, y, y * 1.2, tenure_train=np.arange(30.0, 211.0))
    assert not never.uses_anchor_for(np.array([900.0]))
    plain = LevelAnchor(mode="auto").fit(y, y, y * 1.2)
    assert not plain.uses_anchor_for(np.array([900.0]))
