"""Fitted state comes from fit: orchestration never sets a model's trailing-underscore attribute afterwards."""

from __future__ import annotations

import re
from pathlib import Path

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
# An assignment target ending in `name_` (scikit-learn's mark of fitted state), alone or in a tuple.
FITTED_ATTRIBUTE_ASSIGNMENT = re.compile(r"^\s*[^=#]*\.[A-Za-z]\w*_\s*(,[^=]*)?=(?!=)")


def fitted_attribute_assignments(text: str) -> list[str]:
    """Lines of `text` that assign an attribute whose name ends in an underscore."""
    return [line.strip() for line in text.splitlines() if FITTED_ATTRIBUTE_ASSIGNMENT.match(line)]


def test_the_pattern_finds_assignments_and_ignores_reads_and_comparisons():
    text = ("    model.level_anchor_ = anchor\n    m.blend_weight_, m.design_ = 0.5, {}\n"
            "    x = model.level_anchor_\n    ok = model.design_ == other\n    f(model.reason_reference_)\n")
    assert fitted_attribute_assignments(text) == ["model.level_anchor_ = anchor", "m.blend_weight_, m.design_ = 0.5, {}"]


def test_no_module_of_pipelines_sets_fitted_state_on_a_model():
    found = {path.name: hits for path in sorted(PIPELINES.glob("*.py"))
             if (hits := fitted_attribute_assignments(path.read_text()))}
    assert found == {}, f"set these in the estimator's fit instead: {found}"
