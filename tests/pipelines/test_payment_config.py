"""The `payment_risk:` section: its defaults as configs/default.yaml states them, and what it refuses."""

from __future__ import annotations

import pytest
import yaml

from pipelines.config import DEFAULT_CONFIG, ConfigError, load_config


def _with(tmp_path, section: dict):
    body = yaml.safe_load(DEFAULT_CONFIG.read_text())
    body["payment_risk"] = {**body["payment_risk"], **section}
    path = tmp_path / "custscore.yaml"
    path.write_text(yaml.safe_dump(body))
    (tmp_path / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    return path


def test_defaults_are_a_quarter_ahead_thirty_days_late_and_grades_at_10_25_50_percent():
    section = load_config().payment_risk
    assert (section.enabled, section.horizon_days, section.late_days, section.outcome_wait_days) == (True, 90, 30, 60)
    assert (section.grade_thresholds.B, section.grade_thresholds.C, section.grade_thresholds.D) == (0.10, 0.25, 0.50)


def test_thresholds_out_of_order_stop_the_run_naming_the_section(tmp_path):
    with pytest.raises(ConfigError, match=r"payment_risk.grade_thresholds must increase B < C < D"):
        load_config(_with(tmp_path, {"grade_thresholds": {"B": 0.3, "C": 0.2, "D": 0.6}}))


@pytest.mark.parametrize("section, path", [
    ({"late_dayz": 30}, "payment_risk.late_dayz"),
    ({"horizon_days": 0}, "payment_risk.horizon_days"),
    ({"grade_thresholds": {"B": 0.1, "C": 0.2, "D": 1.5}}, "payment_risk.grade_thresholds.D"),
])
def test_unknown_keys_and_impossible_values_are_refused_with_their_path(tmp_path, section, path):
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        load_config(_with(tmp_path, section))
