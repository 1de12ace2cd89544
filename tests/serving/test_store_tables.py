"""A run's further tables: published with it, attached later, all or nothing, never written through a link."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pytest

from serving.score_table import ContractError
from serving.store import RunNotFoundError, ScoreStore
from tests.serving.test_store import make_scores, metadata, publish, scored_run


def changes_table(n: int = 3) -> pa.Table:
    return pa.table({"customer_id": [f"c{i:05d}" for i in range(n)], "p_churn_change": [0.1 * i for i in range(n)]})


def test_a_run_publishes_its_further_tables_with_run_id_stamped(tmp_path):
    store = ScoreStore(tmp_path)
    run = scored_run(make_scores(5))
    run.tables = {"score_changes": changes_table()}
    published = store.publish(metadata("r1"), run)

    assert published.tables == {"score_changes": 3}
    table = store.read_table("score_changes")
    assert table["customer_id"].tolist() == ["c00000", "c00001", "c00002"]
    assert set(table["run_id"]) == {"r1"}
    assert store.read_table("drift") is None  # a table the run does not have


def test_attaching_a_table_later_keeps_the_run_and_its_publish_time(tmp_path):
    store = ScoreStore(tmp_path)
    before = publish(store, "r1", n=10)
    scores_before = store.read_scores("r1")

    after = store.attach_table("r1", "backtest", pd.DataFrame({"metric": ["roc_auc"], "value": [0.81]}))

    assert after.folder != before.folder and after.published_at == before.published_at
    assert store.read_table("backtest", run_id="r1")["value"].tolist() == [0.81]
    pd.testing.assert_frame_equal(store.read_scores("r1"), scores_before)
    assert not (tmp_path / before.folder).exists()  # the old version of the folder is gone after the switch


def test_replacing_an_attached_table_never_writes_through_the_hard_link(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")
    first = store.attach_table("r1", "backtest", pd.DataFrame({"value": [1.0]}))
    kept = tmp_path / "kept.parquet"
    os.link(tmp_path / first.folder / "tables" / "backtest.parquet", kept)  # as a reader holding the old file would

    store.attach_table("r1", "backtest", pd.DataFrame({"value": [2.0]}))

    assert store.read_table("backtest")["value"].tolist() == [2.0]
    assert pd.read_parquet(kept)["value"].tolist() == [1.0]


def test_an_attach_failing_mid_way_leaves_the_run_as_it_was(tmp_path, monkeypatch):
    store = ScoreStore(tmp_path)
    before = publish(store, "r1")

    def broken_write(*args, **kwargs):
        raise OSError("disk went away")

    monkeypatch.setattr("serving.store.write_named_table", broken_write)
    with pytest.raises(OSError, match="disk went away"):
        store.attach_table("r1", "backtest", pd.DataFrame({"value": [1.0]}))

    assert store.run_metadata("r1") == before
    assert store.read_table("backtest") is None
    assert not any((tmp_path / "staging").iterdir())


def test_attaching_to_an_unknown_run_or_under_an_unsafe_name_is_refused(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")
    with pytest.raises(RunNotFoundError, match="no run with run_id 'r9'"):
        store.attach_table("r9", "backtest", pd.DataFrame({"value": [1.0]}))
    with pytest.raises(ContractError, match="lower-case identifier"):
        store.attach_table("r1", "../escape", pd.DataFrame({"value": [1.0]}))
    with pytest.raises(ContractError, match="lower-case identifier"):
        store.read_table("Drop Table")
