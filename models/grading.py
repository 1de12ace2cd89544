"""Grade A/B/C of a model against its rule baseline on the headline metric."""

from __future__ import annotations

import math
from dataclasses import dataclass

CLEAR_MARGIN = 0.03
HEADLINE_METRIC = {"churn": "roc_auc", "value": "normalized_gini", "payment": "roc_auc", "prospect": "roc_auc"}
GRADE_RULE = (
    "A: beats the baseline on {metric} by at least {margin} (absolute); "
    "B: beats it by less; C: does not beat it (or the metric is undefined)"
)


@dataclass(frozen=True)
class Grade:
    """A grade with the numbers and rule that produced it."""

    letter: str
    metric: str
    model_value: float
    baseline_value: float
    rule: str

    @property
    def text(self) -> str:
        """One line a user reads: grade, metric, model vs baseline and the rule."""
        return (
            f"grade {self.letter}: {self.metric} {self.model_value:.3f} vs baseline "
            f"{self.baseline_value:.3f} "
            f"(difference {self.model_value - self.baseline_value:+.3f}). "
            f"Rule: {self.rule}"
        )


def grade(
    model_value: float, baseline_value: float, metric: str, margin: float = CLEAR_MARGIN
) -> Grade:
    """Grade by the rule: A if model - baseline >= margin, B if > 0, else C (higher is better)."""
    rule = GRADE_RULE.format(metric=metric, margin=margin)
    if math.isnan(model_value) or math.isnan(baseline_value):
        letter = "C"
    elif model_value - baseline_value >= margin - 1e-12:
        letter = "A"
    elif model_value > baseline_value:
        letter = "B"
    else:
        letter = "C"
    return Grade(letter, metric, float(model_value), float(baseline_value), rule)


def grade_model(
    kind: str, model_metrics: dict[str, float], baseline_metrics: dict[str, float],
    margin: float = CLEAR_MARGIN,
) -> Grade:
    """Grade a churn, value or payment-risk model from its and its baseline's metric dicts."""
    if kind not in HEADLINE_METRIC:
        raise ValueError(
            f"grade_model: kind '{kind}' unknown; use one of {sorted(HEADLINE_METRIC)}"
        )
    metric = HEADLINE_METRIC[kind]
    return grade(model_metrics[metric], baseline_metrics[metric], metric, margin)
