"""The scoring feature stream split into hash partitions of customers, queried one ahead."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow as pa
import pytest

from features.build import (
    FeatureSpec,
    _rebatched,
    build_features,
    customer_partitions,
    iter_feature_batches,
)
from features.tables import tables_from_frames
from tests.features.conftest import random_frames

T = datetime(2024, 7, 1)
# With season columns: the population share must be everyone's in every partition.
SPEC = FeatureSpec(windows_days=(30, 90), season_horizons_days=(90,))
PARTITIONS = 3


@pytest.fixture(scope="module")
def tables(con):
    frames = random_frames(300, seed=11, start=datetime(2023, 1, 1), end=datetime(2024, 12, 31))
    # Prospects: customers without any order, who must land in exactly one partition too.
    ids = sorted(set(frames["transactions"]["customer_id"])) + [f"p{i:03d}" for i in range(40)]
    frames["customers"] = pd.DataFrame({"customer_id": ids, "region": ["north", "south"] * (len(ids) // 2)})
    return tables_from_frames(frames, con)[1]


@pytest.fixture(scope="module")
def batches(tables) -> list[pd.DataFrame]:
    return list(iter_feature_batches(tables, T, SPEC, include_prospects=True, batch_rows=64, partitions=PARTITIONS))


def test_partitioned_stream_has_every_customer_once_with_the_same_features(tables, batches):
    whole = build_features(tables, T, SPEC, include_prospects=True).set_index("customer_id").sort_index()
    streamed = pd.concat(batches).set_index("customer_id")

    assert all(len(b) <= 64 for b in batches)
    assert not streamed.index.duplicated().any()
    # The population season share is everyone's, not each partition's.
    assert streamed["season_share_next_90d"].notna().all() and streamed["season_share_next_90d"].nunique() == 1
    pd.testing.assert_frame_equal(streamed.sort_index(), whole, check_categorical=False)


def test_partitions_are_disjoint_and_streamed_one_after_another(tables, batches):
    parts = [set(part["customers"].customer_id.to_pandas()) for part in customer_partitions(tables, PARTITIONS)]
    assert all(parts) and sum(map(len, parts)) == len(set.union(*parts))

    streamed = pd.concat(batches)["customer_id"].tolist()
    blocks, start = [], 0
    for part in parts:
        size = len(part & set(streamed))
        blocks.append(set(streamed[start:start + size]))
        start += size
    assert blocks == [part & set(streamed) for part in parts]
    assert start == len(streamed)


def test_chunks_are_refilled_to_the_asked_size_across_partitions(batches):
    sizes = [len(b) for b in batches]
    assert all(size == 64 for size in sizes[:-1]) and 1 <= sizes[-1] <= 64


def test_stopping_early_interrupts_the_query_running_ahead_and_leaves_the_connection_usable(tables):
    stream = iter_feature_batches(tables, T, SPEC, include_prospects=True, batch_rows=16, partitions=2)
    first = next(stream)
    stream.close()

    assert len(first) == 16
    assert tables["transactions"].count().execute() > 0


def test_rebatching_keeps_every_row_in_stream_order_at_the_asked_size():
    values = list(range(21))
    sizes = [3, 10, 1, 7]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    batches = [pa.record_batch({"x": values[s:s + n]}) for s, n in zip(starts, sizes, strict=True)]

    tables = list(_rebatched(iter(batches), 4))

    assert [t.num_rows for t in tables] == [4, 4, 4, 4, 4, 1]
    assert [x for t in tables for x in t.column("x").to_pylist()] == values
