"""Deleting a published run: all or nothing, and never the latest run by accident."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.store import LatestRunDeletionError, RunNotFoundError, ScoreStore
from tests.serving.test_store import AS_OF, publish

EARLIER = AS_OF - dt.timedelta(days=30)


def _state(store: ScoreStore) -> tuple[bytes, set[str]]:
    """The manifest's bytes and the run folders on disk: what a reader can see."""
    return (store.root / "manifest.json").read_bytes(), {p.name for p in (store.root / "runs").iterdir()}


def test_deleting_an_older_run_removes_it_and_its_files_and_keeps_the_latest(tmp_path):
    store = ScoreStore(tmp_path)
    old = publish(store, "old", n=20, as_of=EARLIER)
    publish(store, "new", n=30)
    deleted = store.delete_run("old")
    assert deleted.run_id == "old" and deleted.score_rows == 20
    assert list(store.list_runs()["run_id"]) == ["new"] and store.latest_run().run_id == "new"
    assert not (tmp_path / old.folder).exists()
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {store.latest_run().folder.removeprefix("runs/")}
    with pytest.raises(RunNotFoundError, match="'old'"):
        store.read_scores(run_id="old")
    assert len(store.read_scores()) == 30


def test_deleting_the_latest_run_is_refused_unless_allowed_and_says_what_it_would_do(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "old", as_of=EARLIER)
    publish(store, "new")
    before = _state(store)
    with pytest.raises(LatestRunDeletionError, match=rf"run new \(as of {AS_OF}\) is the latest run; deleting it makes "
                                                     rf"run old \(as of {EARLIER}\) the latest"):
        store.delete_run("new")
    assert _state(store) == before
    store.delete_run("new", allow_latest=True)
    assert store.latest_run().run_id == "old" and len(store.read_scores()) == 30


def test_deleting_the_only_run_is_refused_unless_allowed_then_the_store_is_empty(tmp_path):
    store = ScoreStore(tmp_path)
    only = publish(store, "only")
    before = _state(store)
    with pytest.raises(LatestRunDeletionError, match="is the only published run"):
        store.delete_run("only")
    assert _state(store) == before
    store.delete_run("only", allow_latest=True)
    assert store.list_runs().empty and store.latest_run() is None and not (tmp_path / only.folder).exists()
    with pytest.raises(RunNotFoundError, match="no published runs yet"):
        store.read_scores()


def test_deleting_an_unknown_run_names_the_published_ones_and_changes_nothing(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "a", as_of=EARLIER)
    publish(store, "b")
    before = _state(store)
    with pytest.raises(RunNotFoundError, match=r"no run with run_id 'c'; published runs: \['a', 'b'\]"):
        store.delete_run("c")
    assert _state(store) == before


def test_deleting_from_a_store_never_published_to_says_so_without_creating_it(tmp_path):
    store = ScoreStore(tmp_path / "store")
    with pytest.raises(RunNotFoundError, match="no published runs yet"):
        store.delete_run("x")
    assert not (tmp_path / "store").exists()


def test_a_reader_that_resolved_a_run_just_before_its_deletion_reads_the_store_after_it(tmp_path, monkeypatch):
    store = ScoreStore(tmp_path)
    publish(store, "old", n=20, as_of=EARLIER)
    stale = publish(store, "new", n=30)
    store.delete_run("new", allow_latest=True)
    # The reader's first resolution still sees the manifest from before the delete.
    resolve = store._resolve
    answers = iter([stale])
    monkeypatch.setattr(store, "_resolve", lambda run_id, as_of: next(answers, None) or resolve(run_id, as_of))
    scores = store.read_scores()
    assert len(scores) == 20 and set(scores["run_id"]) == {"old"}


def test_an_export_that_resolved_a_run_just_before_its_deletion_writes_the_run_after_it(tmp_path, monkeypatch):
    store = ScoreStore(tmp_path)
    publish(store, "old", n=20, as_of=EARLIER)
    stale = publish(store, "new", n=30)
    store.delete_run("new", allow_latest=True)
    resolve = store._resolve
    answers = iter([stale])
    monkeypatch.setattr(store, "_resolve", lambda run_id, as_of: next(answers, None) or resolve(run_id, as_of))
    written = store.export_scores(tmp_path / "out.csv")
    assert written.run_id == "old" and (tmp_path / "out.csv").read_text().count("\n") == 21


def test_a_run_whose_text_parts_vanish_mid_read_is_never_exported_as_an_empty_table(tmp_path):
    # What a reader meets when the run is deleted between reading its numbers and its texts.
    store = ScoreStore(tmp_path)
    run = publish(store, "only", n=30)
    for part in (tmp_path / run.folder / "scores").glob("texts-*.parquet"):
        part.unlink()
    with pytest.raises(FileNotFoundError, match="text parts vanished"):
        store.export_scores(tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    with pytest.raises(FileNotFoundError, match="text parts vanished"):
        store.read_scores()
