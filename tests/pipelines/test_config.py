"""Configuration: the shipped files load, and mistakes stop the run with the key's path."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.config import DEFAULT_CONFIG, ConfigError, load_config


def test_default_config_loads_into_typed_frozen_objects():
    cfg = load_config()
    assert cfg.labels.churn_horizon_days == 90 and cfg.labels.value_horizon_days == 365
    assert cfg.features.windows_days == (30, 90, 180, 365)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.labels.churn_horizon_days = 10  # frozen: business code cannot mutate its config


def test_season_features_follow_the_label_horizons_and_can_be_switched_off():
    from pipelines.tasks import feature_spec

    cfg = load_config()
    assert cfg.features.seasonal
    # 365 days (the default value horizon) covers every season once: only the churn horizon gets columns.
    assert feature_spec(cfg).season_horizons_days == (90, 365)
    shorter = cfg.with_overrides(labels={"value_horizon_days": 180})
    assert feature_spec(shorter).season_horizons_days == (90, 180)
    assert feature_spec(cfg.with_overrides(features={"seasonal": False})).season_horizons_days == ()


def test_unknown_key_is_rejected_with_its_path(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("labels:\n  churn_horizon_dayz: 30\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "labels.churn_horizon_dayz" in str(err.value) and str(path) in str(err.value)


def test_wrong_type_is_rejected_with_value(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("labels:\n  value_horizon_days: soon\n")
    with pytest.raises(ConfigError, match=r"labels.value_horizon_days.*'soon'"):
        load_config(path)


def test_overrides_apply_and_are_validated():
    cfg = load_config().with_overrides(labels={"churn_horizon_days": 182, "value_horizon_days": None})
    assert cfg.labels.churn_horizon_days == 182 and cfg.labels.value_horizon_days == 365


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_model_options_default_to_the_unchanged_behaviour():
    cfg = load_config()
    assert cfg.features.btyd is False and cfg.features.model_features is None
    assert cfg.training.level_anchor == "auto"


def test_an_unknown_level_anchor_mode_is_rejected_with_its_path(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  level_anchor: sometimes\n")
    with pytest.raises(ConfigError, match=r"training.level_anchor.*'sometimes'"):
        load_config(path)


def test_duplicate_lines_defaults_to_keep_and_accepts_drop_exact(tmp_path: Path):
    assert load_config().data.duplicate_lines == "keep"
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  duplicate_lines: drop_exact\n")
    assert load_config(path).data.duplicate_lines == "drop_exact"


def test_an_unknown_duplicate_lines_policy_is_one_line_naming_key_choices_and_value(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  duplicate_lines: drop_all\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    [line] = [ln for ln in str(err.value).splitlines() if "duplicate_lines" in ln]
    assert "'keep'" in line and "'drop_exact'" in line and "'drop_all'" in line
    assert str(err.value).count("\n") == 1  # the file's heading, then this one line


def test_every_feature_set_setting_reaches_the_feature_build(tmp_path):
    from features.build import feature_columns
    from pipelines.tasks import feature_spec

    text = DEFAULT_CONFIG.read_text().replace("  year_ago: true", "  year_ago: false").replace("  dso_window_days: 365", "  dso_window_days: 90")
    (tmp_path / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    (tmp_path / "c.yaml").write_text(text)
    spec = feature_spec(load_config(tmp_path / "c.yaml"))
    assert (spec.year_ago, spec.dso_window_days) == (False, 90)
    columns = feature_columns(spec, {"transactions": ["customer_id", "order_id", "ts", "amount"]})
    assert not [c for c in columns if c.endswith("_vs_year_ago")]
    assert [c for c in feature_columns(feature_spec(load_config()), {"transactions": ["amount"]}) if c.endswith("_vs_year_ago")]


def test_season_horizons_are_not_a_setting(tmp_path):
    text = DEFAULT_CONFIG.read_text().replace("  seasonal: true", "  season_horizons_days: [30]\n  seasonal: true")
    (tmp_path / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match="season_horizons_days is not a setting"):
        load_config(tmp_path / "c.yaml")


def test_a_default_configuration_keeps_the_run_id_it_had_before_more_feature_settings_could_be_set():
    from pipelines.publishing import feature_settings_at_default

    cfg = load_config()
    key = cfg.model_dump(mode="json", include={"features"}, exclude={"features": feature_settings_at_default(cfg.features)})
    assert sorted(key["features"]) == ["attributes", "btyd", "model_features", "seasonal", "tenure_ratios", "windows_days"]


def test_a_section_written_twice_is_one_line_naming_file_line_and_key(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("monitoring:\n  drift:\n    bins: 10\nlabels:\n  churn_horizon_days: 60\nmonitoring:\n  drift:\n    bins: 20\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and "line 6" in message and "'monitoring'" in message and "line 1" in message


def test_a_key_written_twice_inside_a_block_is_refused(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("labels:\n  churn_horizon_days: 60\n  value_horizon_days: 365\n  churn_horizon_days: 90\n")
    with pytest.raises(ConfigError, match=r"line 4: key 'churn_horizon_days' appears twice .*first at line 2"):
        load_config(path)


def test_a_key_written_twice_in_the_segments_file_is_refused_with_that_file(tmp_path: Path):
    segments = (DEFAULT_CONFIG.parent / "segments.yaml").read_text()
    first_line = next(line for line in segments.splitlines() if line and not line.startswith(("#", " ")))
    first_key = first_line.split(":")[0]
    (tmp_path / "segments.yaml").write_text(segments + "\n" + first_line + "\n")
    config = tmp_path / "c.yaml"
    config.write_text("segments_file: segments.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert str(tmp_path / "segments.yaml") in str(err.value) and repr(first_key) in str(err.value)


def test_the_same_key_in_two_different_blocks_is_allowed(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("labels:\n  churn_horizon_days: 60\nmonitoring:\n  drift: {}\n")
    assert load_config(path).labels.churn_horizon_days == 60


def test_a_merge_key_and_a_key_it_overrides_are_no_duplicate():
    from pipelines.config import read_yaml_text

    text = "base: &b {x: 1, y: 2}\nmine:\n  <<: *b\n  y: 3\n"
    assert read_yaml_text(text) == {"base": {"x": 1, "y": 2}, "mine": {"x": 1, "y": 3}}


def test_invalid_yaml_is_one_line_with_its_position(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("labels:\n  churn_horizon_days: [60\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value) and ", line " in str(err.value)


def test_a_folder_or_a_file_that_is_not_utf8_given_as_config_is_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="is a folder, not a configuration file"):
        load_config(tmp_path)
    latin1 = tmp_path / "c.yaml"
    latin1.write_bytes("labels:\n  # Kunden m\u00fcssen\n  churn_horizon_days: 60\n".encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_config(latin1)
    assert "\n" not in str(err.value) and str(latin1) in str(err.value) and "not UTF-8" in str(err.value)


def test_a_segments_file_that_is_not_found_names_both_places_it_was_looked_for(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("segments_file: my_segments.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    message = str(err.value)
    assert str(config) in message and "'my_segments.yaml'" in message
    assert str(tmp_path / "my_segments.yaml") in message and str(DEFAULT_CONFIG.parent) in message
    config.write_text("segments_file:\n")
    with pytest.raises(ConfigError, match="segments_file must be a file name"):
        load_config(config)
