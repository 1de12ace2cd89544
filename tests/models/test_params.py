"""Parameter objects: frozen, reject unknown keys and impossible sizes."""

import pydantic
import pytest

from models.params import ChurnParams, ValueParams


def test_defaults_keep_trees_small_for_treeshap():
    p = ChurnParams()
    assert p.max_depth <= 5 and p.num_leaves <= 31 and p.n_estimators <= 300


def test_unknown_key_is_rejected():
    with pytest.raises(pydantic.ValidationError, match="num_leafs"):
        ChurnParams(num_leafs=15)


def test_params_are_frozen():
    with pytest.raises(pydantic.ValidationError):
        ValueParams().learning_rate = 0.2


def test_more_leaves_than_depth_allows_is_rejected():
    with pytest.raises(pydantic.ValidationError, match="num_leaves=63 exceeds"):
        ChurnParams(max_depth=5, num_leaves=63)


def test_interval_quantiles_must_be_ordered():
    with pytest.raises(pydantic.ValidationError, match="interval_quantiles"):
        ValueParams(interval_quantiles=(0.9, 0.1))


def test_binning_and_quantile_row_caps_refuse_samples_too_small_to_be_useful():
    with pytest.raises(pydantic.ValidationError, match="bin_construct_sample_cnt"):
        ChurnParams(bin_construct_sample_cnt=10)
    with pytest.raises(pydantic.ValidationError, match="interval_max_rows"):
        ValueParams(interval_max_rows=10)
    assert ValueParams(interval_max_rows=None).interval_max_rows is None  # None: every row
