"""`custscore runs list` and `custscore runs delete` as a user meets them."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving.store import RunMetadata, ScoreStore
from tests.serving.test_store import AS_OF, make_explanations, make_scores, publish, scored_run

runner = CliRunner()
EARLIER = AS_OF - dt.timedelta(days=30)


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return ScoreStore(tmp_path / "home" / "store")


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_runs_list_shows_each_run_latest_first_with_what_identifies_it(store):
    publish(store, "run-old", n=20, as_of=EARLIER)
    publish(store, "run-new", n=30)
    result = runner.invoke(app, ["runs", "list"])
    assert result.exit_code == 0, result.output
    rows = [line for line in _lines(result.output) if "run-" in line]
    assert len(rows) == 2 and "run-new" in rows[0] and "run-old" in rows[1]
    for row, as_of, count in ((rows[0], AS_OF, "30"), (rows[1], EARLIER, "20")):
        cells = [c.strip() for c in row.strip("│ ").split("│")]
        assert cells[:5] == [str(as_of), cells[1], count, "v1", "v2"]
    assert rows[0].rstrip(" │").endswith("current") and rows[1].rstrip(" │").endswith("published")


def test_runs_list_on_an_empty_store_says_how_to_fill_it(store):
    result = runner.invoke(app, ["runs", "list"])
    assert result.exit_code == 0 and "no published run" in result.output and "custscore run" in result.output


def test_runs_delete_removes_an_older_run_and_names_the_latest(store):
    publish(store, "run-old", as_of=EARLIER)
    publish(store, "run-new")
    result = runner.invoke(app, ["runs", "delete", "run-old"])
    assert result.exit_code == 0, result.output
    assert "deleted run run-old" in result.output and "latest is now run run-new" in result.output
    assert list(store.list_runs()["run_id"]) == ["run-new"]


def test_runs_delete_of_the_only_run_without_yes_refuses_and_keeps_it(store):
    publish(store, "run-only")
    manifest = (store.root / "manifest.json").read_bytes()
    result = runner.invoke(app, ["runs", "delete", "run-only"])
    assert result.exit_code == 1
    assert _lines(result.output) == [
        f"error: run run-only (as of {AS_OF}) is the only published run; deleting it leaves the store with no run "
        "to read or export. Nothing deleted; pass --yes to delete it"]
    assert (store.root / "manifest.json").read_bytes() == manifest and len(store.read_scores()) == 30
    result = runner.invoke(app, ["runs", "delete", "run-only", "--yes"])
    assert result.exit_code == 0, result.output
    assert "the store has no run left" in result.output and store.list_runs().empty


def test_runs_delete_of_the_latest_run_without_yes_says_which_run_would_become_latest(store):
    publish(store, "run-old", as_of=EARLIER)
    publish(store, "run-new")
    result = runner.invoke(app, ["runs", "delete", "run-new"])
    assert result.exit_code == 1 and "makes run run-old" in result.output and "--yes" in result.output
    assert store.latest_run().run_id == "run-new"


def test_runs_delete_of_an_unknown_id_names_the_published_runs(store):
    publish(store, "run-only")
    result = runner.invoke(app, ["runs", "delete", "run-typo"])
    assert result.exit_code == 2 and len(_lines(result.output)) == 1
    assert "'run-typo'" in result.output and "run-only" in result.output and "Traceback" not in result.output
    assert list(store.list_runs()["run_id"]) == ["run-only"]


def test_runs_list_names_each_runs_data_source(store):
    store.publish(RunMetadata(run_id="run-src", as_of=AS_OF, churn_model_version="1", value_model_version="2",
                              extra={"data_source": "demo/data"}),
                  scored_run(make_scores(5), make_explanations(make_scores(5))))
    result = runner.invoke(app, ["runs", "list"])
    assert result.exit_code == 0, result.output
    row = next(line for line in _lines(result.output) if "run-src" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[5] == "demo/data" and cells[-1] == "current"
