"""Model files: data read back exactly, nothing read that names code or differs from its checksum."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import skops.io as sio

from models.design import DesignChoice
from models.model_files import ModelFileError, file_sha256, read_model_file, write_model_file
from models.params import ValueParams
from models.value import ValueModel


class _NotAModelClass:
    def __init__(self):
        self.weights = [1.0, 2.0]


def test_a_value_model_with_its_reference_reads_back_and_predicts_the_same(training_split, tmp_path):
    train, valid, features = training_split
    design = DesignChoice("value", [{"name": "all", "normalized_gini": 0.5}], "all", [], 0.25, "rule")
    model = ValueModel(ValueParams(num_threads=1, n_estimators=30)).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], features,
        margin=train["label_margin"], margin_val=valid["label_margin"], reason_population=valid,
        level_reference=np.full(len(valid), 2.0), design=design)
    X = valid[features]
    path = tmp_path / "value.skops"

    restored = read_model_file(path, write_model_file(model, path), "custscore-value v1")

    np.testing.assert_array_equal(restored.predict(X).to_numpy(), model.predict(X).to_numpy())
    before, after = model.reason_reference_, restored.reason_reference_
    assert (after.feature_names, after.rows) == (before.feature_names, before.rows)
    for field in ("value_percentiles", "contribution_percentiles", "direction"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field))
    assert (restored.blend_weight_, restored.design_) == (0.25, design.as_dict())
    assert restored.level_anchor_.factor_val_ == model.level_anchor_.factor_val_


def test_writing_a_model_that_holds_an_untrusted_class_fails_and_leaves_no_file(tmp_path):
    path = tmp_path / "model.skops"
    with pytest.raises(ModelFileError, match=r"holds types that model files do not trust: \['.*_NotAModelClass'\]"):
        write_model_file(_NotAModelClass(), path)
    assert not path.exists()


def test_a_file_that_differs_from_its_checksum_is_refused_before_it_is_decoded(tmp_path):
    sentinel = tmp_path / "sentinel"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {sentinel}",)

    path = tmp_path / "model.skops"
    recorded = write_model_file({"weights": np.arange(3.0)}, path)
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelFileError, match=r"^custscore-churn v2: model file model.skops has SHA-256 [0-9a-f]{16}\.\.\., "
                                             rf"the registry recorded {recorded[:16]}\.\.\. at registration"):
        read_model_file(path, recorded, "custscore-churn v2")
    assert not sentinel.exists()


def test_a_file_naming_a_function_is_refused_even_with_a_matching_checksum(tmp_path):
    path = tmp_path / "model.skops"
    sio.dump({"booster_": os.system}, path)
    with pytest.raises(ModelFileError, match=r"names types outside the trusted list: .*system"):
        read_model_file(path, file_sha256(path), "custscore-churn v2")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match=r"^custscore-value v4: model file .*gone.skops is missing"):
        read_model_file(tmp_path / "gone.skops", "0" * 64, "custscore-value v4")
