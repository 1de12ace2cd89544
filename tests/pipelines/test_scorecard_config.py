"""The `scorecard:` section: the shipped defaults reach scoring, and bad weights or thresholds stop the run in one line."""

from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_config


def test_the_shipped_scorecard_reaches_the_scoring_settings():
    cfg = load_config()
    card = cfg.scoring_settings().scorecard
    assert card == cfg.scorecard
    assert (card.weights.value, card.weights.loyalty, card.weights.growth, card.weights.credit,
            card.weights.cost_to_serve) == (0.30, 0.20, 0.15, 0.20, 0.15)
    assert (card.thresholds.key, card.thresholds.regular) == (70, 40)


def _refusal(tmp_path: Path, yaml_text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value)


@pytest.mark.parametrize("yaml_text, where, says", [
    ("scorecard:\n  weights: {value: 0, loyalty: 0, growth: 0, credit: 0, cost_to_serve: 0}\n",
     "scorecard.weights", "every weight is 0: give at least one dimension"),
    ("scorecard:\n  weights: {credit: -0.2}\n", "scorecard.weights.credit", "greater than or equal to 0"),
    ("scorecard:\n  thresholds: {key: 30, regular: 40}\n", "scorecard.thresholds",
     "key (30) must be above regular (40)"),
    ("scorecard:\n  thresholds: {key: 120}\n", "scorecard.thresholds.key", "less than or equal to 100"),
    ("scorecard:\n  weigths: {value: 1}\n", "scorecard.weigths", "Extra inputs are not permitted"),
])
def test_bad_weights_or_thresholds_are_one_line_naming_the_key(tmp_path: Path, yaml_text, where, says):
    message = _refusal(tmp_path, yaml_text)
    lines = [line for line in message.splitlines() if where in line]
    assert len(lines) == 1 and says in lines[0], message
