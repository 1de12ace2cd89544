"""Blending custscore's predictions with a BG/NBD reference (models/blend.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models.blend import blend_churn_probabilities, blend_values


def test_weight_zero_keeps_the_model_and_weight_one_gives_the_reference():
    p_model, p_ref = np.array([0.2, 0.7, 0.95]), np.array([0.4, 0.5, 0.6])
    assert np.allclose(blend_churn_probabilities(p_model, p_ref, 0.0), p_model)
    assert np.allclose(blend_churn_probabilities(p_model, p_ref, 1.0), p_ref)
    v_model, v_ref = np.array([10.0, 0.0, 250.0]), np.array([30.0, 5.0, 100.0])
    assert np.allclose(blend_values(v_model, v_ref, 0.0), v_model)
    assert np.allclose(blend_values(v_model, v_ref, 1.0), v_ref)


def test_churn_blend_averages_log_odds():
    # logit(0.2) = -log 4, logit(0.8) = log 4: the even blend is logit 0, i.e. 0.5;
    # one quarter of the way from 0.2 to 0.8 in log-odds is logit -0.5 log 4, i.e. 1/3.
    out = blend_churn_probabilities([0.2, 0.2], [0.8, 0.8], 0.5)
    assert np.allclose(out, 0.5)
    assert np.isclose(blend_churn_probabilities([0.2], [0.8], 0.25)[0], 1.0 / 3.0)


def test_churn_blend_stays_a_probability_at_the_extremes():
    out = blend_churn_probabilities([0.0, 1.0, 1.0], [0.0, 1.0, 0.0], 0.5)
    assert np.all((out > 0) & (out < 1))
    assert out[0] < 1e-5 and out[1] > 1 - 1e-5 and np.isclose(out[2], 0.5)


def test_value_blend_keeps_the_total_when_both_totals_match():
    rng = np.random.default_rng(0)
    v_model = rng.gamma(0.5, 40.0, size=1000)
    v_ref = rng.gamma(2.0, 10.0, size=1000)
    v_ref *= v_model.sum() / v_ref.sum()  # as after the level anchor of models/level.py
    assert np.isclose(blend_values(v_model, v_ref, 0.3).sum(), v_model.sum())


def test_a_missing_reference_keeps_the_model_prediction():
    p = blend_churn_probabilities([0.3, 0.6], [np.nan, 0.6], 0.5)
    v = blend_values([12.0, 8.0], [np.nan, 4.0], 0.5)
    assert np.isclose(p[0], 0.3) and np.isclose(p[1], 0.6)
    assert np.allclose(v, [12.0, 6.0])


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_weight_outside_zero_one_is_refused_with_the_range(weight):
    with pytest.raises(ValueError, match=r"weight must be the reference's share in \[0, 1\]"):
        blend_values([1.0], [2.0], weight)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        blend_churn_probabilities([0.5], [0.5], weight)


def test_mismatched_lengths_are_refused_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        blend_values([1.0, 2.0, 3.0], [1.0, 2.0], 0.5)
