"""Grade rule: A beats the baseline by >= 0.03, B beats it, C does not."""

import math

import pytest

from models.grading import grade, grade_model


@pytest.mark.parametrize(
    ("model", "baseline", "letter"),
    [(0.80, 0.76, "A"), (0.79, 0.76, "A"), (0.78, 0.76, "B"), (0.76, 0.76, "C"), (0.70, 0.76, "C")],
)
def test_grade_rule(model, baseline, letter):
    assert grade(model, baseline, "roc_auc").letter == letter


def test_undefined_metric_grades_c():
    assert grade(math.nan, 0.7, "roc_auc").letter == "C"


def test_grade_text_states_numbers_and_rule():
    g = grade_model("value", {"normalized_gini": 0.75}, {"normalized_gini": 0.60})
    assert g.letter == "A" and g.metric == "normalized_gini"
    assert "0.750" in g.text and "0.600" in g.text and "at least 0.03" in g.text


def test_unknown_model_kind_is_rejected():
    with pytest.raises(ValueError, match="kind 'price'"):
        grade_model("price", {}, {})
