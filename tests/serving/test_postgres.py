"""The PostgreSQL sink against a real server (tests/conftest.py starts one): all or nothing, also when killed."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from serving.postgres import PostgresSink, PostgresSinkError, redacted_url
from serving.retention import prune_runs
from serving.score_table import SCORE_COLUMNS, ContractError
from serving.scored_run import ScoredRun
from serving.sink import ScoreSink
from serving.store import LatestRunDeletionError, RunNotFoundError, ScoreStore
from tests.serving.test_store import AS_OF, _summary, make_explanations, make_scores, metadata, scored_run

ROOT = Path(__file__).resolve().parents[2]
EARLIER = AS_OF - dt.timedelta(days=30)


def a_run(n: int = 30, p: float = 0.3, start: int = 0) -> ScoredRun:
    scores = make_scores(n, p=p, start=start)
    return scored_run(scores, make_explanations(scores), _summary())


@pytest.fixture
def sink(postgres_url, pg_schema):
    sink = PostgresSink(postgres_url, pg_schema)
    yield sink
    sink.close()


def query(url: str, text: str, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(text, params).fetchall()


def statuses(sink: PostgresSink) -> list[tuple[str, str]]:
    return query(sink.url, sql.SQL("SELECT run_id, status FROM {} ORDER BY id").format(
        sql.Identifier(sink.schema, "runs")).as_string())


def run_tables(sink: PostgresSink) -> set[str]:
    return {name for (name,) in query(sink.url, "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 't%%'",
                                      [sink.schema])}


def current_ids(sink: PostgresSink) -> set[str]:
    return {r for (r,) in query(sink.url, f'SELECT DISTINCT run_id FROM "{sink.schema}".scores_current')}


# ---------------------------------------------------------------------------------- publish and read


def test_a_run_reads_back_from_postgresql_exactly_as_from_the_store(sink, tmp_path):
    run = a_run()
    run.tables = {"score_changes": pa.table({"customer_id": ["c00001", "c00002"], "p_churn_change": [0.25, -0.5]})}
    store = ScoreStore(tmp_path / "store")
    store.publish(metadata("r1"), a_run())

    published = sink.publish(metadata("r1"), run)

    assert (published.score_rows, published.explanation_rows, published.summary_rows) == (30, 30, 1)
    assert published.tables == {"score_changes": 2}
    pd.testing.assert_frame_equal(sink.read_scores(), store.read_scores())
    pd.testing.assert_frame_equal(sink.read_explanations(), store.read_explanations())
    pd.testing.assert_frame_equal(sink.read_summary(), store.read_summary())
    assert list(sink.read_scores().columns) == list(SCORE_COLUMNS)
    changes = sink.read_table("score_changes")
    assert changes.to_dict("list") == {"customer_id": ["c00001", "c00002"], "p_churn_change": [0.25, -0.5], "run_id": ["r1", "r1"]}
    assert sink.read_table("drift") is None
    assert len(sink.read_scores(segment="at_risk")) == 10
    assert sink.read_scores(customer_id=["c00003", "c00004"], columns=["customer_id", "clv"]).to_dict("list") == {
        "customer_id": ["c00003", "c00004"], "clv": [203.0, 204.0]}
    # What a BI tool sees: the views, Chinese text intact.
    rows = query(sink.url, f'SELECT customer_id, reason_text_zh FROM "{sink.schema}".scores_current WHERE customer_id = %s', ["c00002"])
    assert rows == [("c00002", "推高流失风险：已120天未下单。")]
    assert query(sink.url, f'SELECT count(*) FROM "{sink.schema}".score_changes_current') == [(2,)]
    assert query(sink.url, f'SELECT count(*) FROM "{sink.schema}".segment_summary_current') == [(1,)]
    assert statuses(sink) == [("r1", "published")]
    assert isinstance(sink, ScoreSink)
    assert sink.list_runs()[["run_id", "score_rows"]].to_dict("list") == {"run_id": ["r1"], "score_rows": [30]}


def test_the_runs_table_lists_each_table_with_rows_and_columns_a_person_can_read(sink):
    run = a_run()
    run.tables = {"score_changes": pa.table({"customer_id": ["c00001", "c00002"], "p_churn_change": [0.25, -0.5]})}
    sink.publish(metadata("r1"), run)
    sink.attach_table("r1", "backtest", pa.table({"metric": ["roc_auc"], "value": [0.71]}))

    ((tables, schemas),) = query(sink.url, f'SELECT tables, table_schemas FROM "{sink.schema}".runs')
    assert set(tables) == {"scores", "explanations", "summary", "score_changes", "backtest"}
    assert tables["score_changes"]["rows"] == 2 and tables["score_changes"]["table"].endswith("_x_score_changes")
    assert tables["score_changes"]["columns"] == ["customer_id text", "p_churn_change double precision", "run_id text"]
    assert tables["backtest"]["columns"] == ["metric text", "value double precision", "run_id text"]
    assert tables["scores"]["columns"][:3] == ["customer_id text", "as_of date", "run_id text"]
    assert "schema" not in str(tables)  # no base64 blob where a BI tool looks
    assert set(schemas) == set(tables)  # the sink's own copy of each Arrow schema, apart
    # what a BI tool reads: the views of runs show the readable column, not the schemas
    ((shown,),) = query(sink.url, f'SELECT tables FROM "{sink.schema}".current_run')
    assert shown == tables
    columns = {c for (c,) in query(sink.url, "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                             "AND table_name IN ('current_run', 'published_runs')", [sink.schema])}
    assert "tables" in columns and "table_schemas" not in columns
    assert sink.read_table("backtest").to_dict("list") == {"metric": ["roc_auc"], "value": [0.71], "run_id": ["r1"]}


def test_a_run_row_written_with_schemas_inside_tables_still_reads_and_is_rewritten_readable(sink):
    import base64

    sink.publish(metadata("r1"), a_run())
    runs = f'"{sink.schema}".runs'
    # the layout of the runs table before table_schemas: each table's base64 schema inside `tables`
    with psycopg.connect(sink.url, autocommit=True) as conn:
        ((tables, schemas),) = conn.execute(f"SELECT tables, table_schemas FROM {runs}").fetchall()
        old = {name: {"table": t["table"], "rows": t["rows"], "schema": schemas[name]} for name, t in tables.items()}
        conn.execute(f"ALTER TABLE {runs} DROP COLUMN table_schemas")
        conn.execute(f"UPDATE {runs} SET tables = %s", [psycopg.types.json.Jsonb(old)])
    assert base64.b64decode(old["scores"]["schema"])  # really the old blob
    reader = PostgresSink(sink.url, sink.schema)
    try:
        assert len(reader.read_scores()) == 30  # a reader before any publish after the upgrade
    finally:
        reader.close()
    sink.ensure_schema()  # what the next publish or `db init` does first
    ((tables, schemas),) = query(sink.url, f"SELECT tables, table_schemas FROM {runs}")
    assert schemas == {name: t["schema"] for name, t in old.items()}
    assert tables["summary"]["columns"][:3] == ["run_id text", "group_by text", "group text"]
    assert all("schema" not in t for t in tables.values())
    assert len(sink.read_scores()) == 30


def holding_the_view(sink: PostgresSink, view: str = "scores_current") -> psycopg.Connection:
    """A reader in the middle of a long query: a transaction that has read the view and not ended."""
    reader = psycopg.connect(sink.url)  # not autocommit: the transaction stays open, and its lock on the view
    reader.execute(f'SELECT count(*) FROM "{sink.schema}".{view}').fetchall()
    return reader


def test_a_reader_holding_a_view_through_every_attempt_leaves_the_previous_run_in_one_line(postgres_url, pg_schema, caplog):
    sink = PostgresSink(postgres_url, pg_schema, switch_lock_timeout=0.3, switch_attempts=3)
    try:
        sink.publish(metadata("r1"), a_run(n=5))
        before = run_tables(sink)
        reader = holding_the_view(sink)
        try:
            started = time.monotonic()
            with pytest.raises(PostgresSinkError) as failure:
                sink.publish(metadata("r2", AS_OF + dt.timedelta(days=1)), a_run(n=7))
            waited = time.monotonic() - started
        finally:
            reader.close()
        message = str(failure.value)
        assert "\n" not in message
        assert "run r2's tables are in place but the views still show run r1" in message and "publish again" in message
        assert 3 * 0.3 <= waited < 15  # three bounded waits and two pauses, not the reader's whole query
        assert len(run_tables(sink) - before) == 3  # the new run's tables are there ...
        assert current_ids(sink) == {"r1"} and statuses(sink) == [("r1", "published"), ("r2", "failed")]  # ... not shown
        assert sum("switching to run r2 again" in r.getMessage() for r in caplog.records) == 2
        sink.publish(metadata("r2", AS_OF + dt.timedelta(days=1)), a_run(n=7))  # the reader is gone: it goes through
        assert current_ids(sink) == {"r2"} and len(run_tables(sink) - before) == 3  # the failed attempt's tables dropped
    finally:
        sink.close()


def test_a_reader_that_finishes_during_the_retries_lets_the_switch_through(postgres_url, pg_schema, monkeypatch):
    from types import SimpleNamespace

    from serving import postgres

    sink = PostgresSink(postgres_url, pg_schema, switch_lock_timeout=0.3, switch_attempts=3)
    try:
        sink.publish(metadata("r1"), a_run(n=5))
        reader = holding_the_view(sink, "score_history")
        pauses = []

        def pause(seconds):  # the long query ends while the switch pauses after its first attempt
            pauses.append(seconds)
            reader.close()

        monkeypatch.setattr(postgres, "time", SimpleNamespace(sleep=pause))
        published = sink.publish(metadata("r2", AS_OF + dt.timedelta(days=1)), a_run(n=7))
        assert pauses == [0.3]  # one attempt timed out waiting for the reader, the next went through
        assert published.run_id == "r2" and current_ids(sink) == {"r2"}
        assert statuses(sink) == [("r1", "published"), ("r2", "published")]
    finally:
        reader.close()
        sink.close()


def test_reading_before_any_publish_says_there_is_no_run(sink):
    with pytest.raises(RunNotFoundError, match="no published runs yet"):
        sink.read_scores()
    assert sink.list_runs().empty and sink.latest_run() is None


def test_a_rerun_of_the_same_run_id_replaces_its_rows_and_tables(sink):
    sink.publish(metadata("r1"), a_run(p=0.3))
    first_tables = run_tables(sink)

    sink.publish(metadata("r1"), a_run(p=0.7))

    scores = sink.read_scores()
    assert len(scores) == 30 and set(scores["p_churn"]) == {0.7}
    assert statuses(sink) == [("r1", "replaced"), ("r1", "published")]
    assert not first_tables & run_tables(sink)  # the replaced run's tables are dropped
    assert list(sink.list_runs()["run_id"]) == ["r1"]


def test_current_means_latest_as_of_then_last_published(sink):
    sink.publish(metadata("new", AS_OF), a_run(n=5))
    sink.publish(metadata("old", EARLIER), a_run(n=7))  # published later, but of an earlier date

    assert current_ids(sink) == {"new"} and sink.latest_run().run_id == "new"
    assert len(sink.read_scores(as_of=EARLIER)) == 7
    sink.publish(metadata("new2", AS_OF), a_run(n=3))
    assert current_ids(sink) == {"new2"} and len(sink.read_scores()) == 3
    assert list(sink.list_runs()["run_id"]) == ["old", "new", "new2"]


def test_pages_follow_customer_id_with_filters_and_history_lists_every_run(sink):
    sink.publish(metadata("old", EARLIER), a_run(n=12, p=0.2))
    sink.publish(metadata("new", AS_OF), a_run(n=12, p=0.6))

    page = sink.read_scores_page(segment="at_risk", after_customer_id="c00003", limit=2, columns=["customer_id", "clv"])
    assert page.to_dict("list") == {"customer_id": ["c00006", "c00009"], "clv": [206.0, 209.0]}
    assert sink.read_scores_page(min_value=210.5, min_p_churn=0.5)["customer_id"].tolist() == ["c00011"]
    assert sink.read_scores_page(run_id="old", min_p_churn=0.5).empty

    history = sink.customer_history("c00004", columns=["p_churn"])
    assert history.to_dict("list") == {"run_id": ["old", "new"], "as_of": [EARLIER, AS_OF], "p_churn": [0.2, 0.6]}
    assert sink.customer_history("nobody").empty


def test_a_table_attached_later_is_read_and_viewed_and_replaced_whole(sink):
    published = sink.publish(metadata("r1"), a_run())
    sink.attach_table("r1", "backtest", pd.DataFrame({"metric": ["roc_auc"], "value": [0.81]}))
    after = sink.attach_table("r1", "backtest", pd.DataFrame({"metric": ["roc_auc"], "value": [0.83]}))

    assert after.published_at == published.published_at and after.tables == {"backtest": 1}
    assert sink.read_table("backtest")["value"].tolist() == [0.83]
    assert query(sink.url, f'SELECT value FROM "{sink.schema}".backtest_current') == [(0.83,)]
    assert len(run_tables(sink)) == 4  # scores, explanations, summary, the one backtest: the first one dropped


# ---------------------------------------------------------------------------------- failures mid-publish


KILLED_PUBLISHER = """
import sys, time
from serving.postgres import PostgresSink
from tests.serving.test_postgres import a_run
from tests.serving.test_store import metadata

class Stalling(type(a_run())):
    def score_batches(self):
        for i, batch in enumerate(super().score_batches()):
            yield batch
            if i == 1:
                print("copying", flush=True)
                time.sleep(120)

run = a_run(n=60)
run.__class__ = Stalling
PostgresSink(sys.argv[1], sys.argv[2]).publish(metadata("r2"), run)
"""


def test_a_publisher_killed_during_copy_leaves_the_previous_run_current_and_is_cleaned_next_time(sink):
    sink.publish(metadata("r1"), a_run(n=30))
    before = run_tables(sink)
    publisher = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_PUBLISHER), sink.url, sink.schema],
                                 cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert publisher.stdout.readline().strip() == "copying"
        copying = query(sink.url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'custscore-publish' "
                                  "AND query LIKE 'COPY%'")
        assert copying == [(1,)]
    finally:
        publisher.kill()  # SIGKILL: no cleanup of its own
        publisher.wait(timeout=30)

    assert current_ids(sink) == {"r1"} and len(sink.read_scores()) == 30
    assert statuses(sink) == [("r1", "published"), ("r2", "publishing")]
    sink.publish(metadata("r3"), a_run(n=4))
    assert statuses(sink) == [("r1", "published"), ("r2", "failed"), ("r3", "published")]
    assert len(run_tables(sink) - before) == 3  # r3's tables only: nothing of r2 left
    with pytest.raises(RunNotFoundError):
        sink.read_scores(run_id="r2")


def test_a_connection_dropped_mid_publish_fails_in_one_line_and_the_previous_run_stays(sink):
    sink.publish(metadata("r1"), a_run(n=30))
    reached, release = threading.Event(), threading.Event()

    class Stalling(ScoredRun):
        def score_batches(self):
            for i, batch in enumerate(super().score_batches()):
                yield batch
                if i == 0:
                    reached.set()
                    release.wait(30)

    run = a_run(n=40)
    run.__class__ = Stalling
    failure: list[BaseException] = []

    def publish():
        try:
            sink.publish(metadata("r2"), run)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            failure.append(exc)

    thread = threading.Thread(target=publish)
    thread.start()
    assert reached.wait(30)
    killed = query(sink.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'custscore-publish'")
    release.set()
    thread.join(30)

    assert killed == [(True,)]
    assert len(failure) == 1 and isinstance(failure[0], PostgresSinkError)
    message = str(failure[0])
    assert "\n" not in message and "publishing run r2 failed" in message and "readers still see the previous run" in message
    assert current_ids(sink) == {"r1"} and len(sink.read_scores()) == 30
    sink.publish(metadata("r3"), a_run(n=4))
    assert ("r2", "failed") in statuses(sink)


def test_a_reader_whose_idle_connections_were_ended_reads_on_a_new_one(sink):
    sink.publish(metadata("r1"), a_run(n=6))
    assert len(sink.read_scores()) == 6  # leaves an idle connection behind
    ended = query(sink.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'custscore-read'")
    assert ended and all(ok for (ok,) in ended)

    assert len(sink.read_scores()) == 6
    assert sink.customer_history("c00001")["run_id"].tolist() == ["r1"]


def test_a_run_breaking_the_contract_mid_copy_is_rolled_back_and_marked_failed(sink):
    sink.publish(metadata("r1"), a_run(n=5))
    broken = a_run(n=20)
    broken.explanation_parts = [*broken.explanation_parts, pa.table({"customer_id": ["c00001"]})]  # no score column

    with pytest.raises(ContractError, match="missing column"):
        sink.publish(metadata("r2"), broken)

    assert current_ids(sink) == {"r1"} and statuses(sink) == [("r1", "published"), ("r2", "failed")]
    assert len(run_tables(sink)) == 3  # r1's only: the rollback took r2's tables with it


def test_two_concurrent_publishers_take_turns(sink, monkeypatch):
    sink.ensure_schema()
    spans: dict[str, tuple[float, float]] = {}
    load = PostgresSink._load_run

    def slow_load(self, conn, metadata, run):
        started = time.monotonic()
        time.sleep(0.5)
        tables = load(self, conn, metadata, run)
        spans[metadata.run_id] = (started, time.monotonic())
        return tables

    monkeypatch.setattr(PostgresSink, "_load_run", slow_load)
    threads = [threading.Thread(target=PostgresSink(sink.url, sink.schema).publish, args=(metadata(rid), a_run(n=n)))
               for rid, n in (("a", 10), ("b", 20))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    (a_start, a_end), (b_start, b_end) = spans["a"], spans["b"]
    assert a_end <= b_start or b_end <= a_start  # one after the other, never interleaved
    assert sorted(statuses(sink)) == [("a", "published"), ("b", "published")]
    assert len(sink.read_scores(run_id="a")) == 10 and len(sink.read_scores(run_id="b")) == 20


# ---------------------------------------------------------------------------------- the reader role


def test_the_reader_role_reads_later_runs_and_cannot_write_or_create(sink):
    sink.publish(metadata("r1", EARLIER), a_run(n=5))
    role = f"reader_{sink.schema[-6:]}"
    shown = sink.init_database(role, "reader-secret-1")
    assert shown.startswith(f"postgresql://{role}:***@127.0.0.1:") and "reader-secret-1" not in shown
    sink.publish(metadata("r2"), a_run(n=8))  # after the role was made
    reader_url = f"postgresql://{role}:reader-secret-1@{sink.url.split('@', 1)[1]}"

    with psycopg.connect(reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM scores_current").fetchone() == (8,)  # search_path is the schema
        assert conn.execute("SELECT run_id FROM current_run").fetchone() == ("r2",)
        assert conn.execute("SELECT count(*) FROM score_history").fetchone() == (13,)
        (scores_table,) = conn.execute("SELECT tables->'scores'->>'table' FROM runs WHERE run_id = 'r2'").fetchone()
        refused = {
            "INSERT": f"INSERT INTO {scores_table} (customer_id) VALUES ('x')",
            "UPDATE": f"UPDATE {scores_table} SET p_churn = 1",
            "DELETE": f"DELETE FROM {scores_table}",
            "CREATE": "CREATE TABLE mine (x int)",
            "CREATE public": "CREATE TABLE public.mine (x int)",
            "DROP": f"DROP TABLE {scores_table}",
        }
        for what, statement in refused.items():
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
                conn.execute(statement)
            assert what
        conn.execute("SET default_transaction_read_only = off")  # even with read-only switched off: no privilege
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {scores_table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE mine (x int)")

    sink.init_database(role, None)  # idempotent, keeps the password
    with psycopg.connect(reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM scores_current").fetchone() == (8,)


# ---------------------------------------------------------------------------------- retention and deletion


def test_prune_keeps_the_latest_runs_and_never_the_current_one(sink):
    sink.publish(metadata("current", AS_OF), a_run(n=3))
    sink.publish(metadata("older", EARLIER), a_run(n=4))
    sink.publish(metadata("oldest", EARLIER - dt.timedelta(days=30)), a_run(n=5))  # published last, dated first

    removed = prune_runs(sink, 1)

    assert [r.run_id for r in removed] == ["oldest", "older"]
    assert list(sink.list_runs()["run_id"]) == ["current"] and current_ids(sink) == {"current"}
    assert len(run_tables(sink)) == 3
    assert prune_runs(sink, 1) == []


def test_prune_on_the_store_keeps_the_latest(tmp_path):
    store = ScoreStore(tmp_path)
    store.publish(metadata("current", AS_OF), a_run(n=3))
    store.publish(metadata("older", EARLIER), a_run(n=4))
    assert [r.run_id for r in prune_runs(store, 1)] == ["older"]
    assert list(store.list_runs()["run_id"]) == ["current"]


def test_deleting_the_current_run_needs_allow_latest_and_then_moves_the_views(sink):
    sink.publish(metadata("old", EARLIER), a_run(n=4))
    sink.publish(metadata("new", AS_OF), a_run(n=6))
    with pytest.raises(LatestRunDeletionError):
        sink.delete_run("new")
    sink.delete_run("new", allow_latest=True)
    assert current_ids(sink) == {"old"} and statuses(sink)[-1] == ("new", "deleted")


# ---------------------------------------------------------------------------------- the password


def test_the_password_never_appears_in_logs_errors_or_reprs(sink, caplog):
    password = sink.url.split(":")[2].split("@")[0]
    caplog.set_level(logging.DEBUG)
    sink.publish(metadata("r1"), a_run(n=3))
    sink.publish(metadata("r1"), a_run(n=3))
    wrong = PostgresSink(sink.url.replace(password, password + "x"), sink.schema)
    with pytest.raises(PostgresSinkError) as refused:
        wrong.read_scores()
    down = PostgresSink(f"postgresql://postgres:{password}@127.0.0.1:1/custscore", sink.schema)
    with pytest.raises(PostgresSinkError) as unreachable:
        down.publish(metadata("r2"), a_run(n=3))

    shown = [str(refused.value), str(unreachable.value), repr(sink), sink.shown, caplog.text]
    assert all(password not in text for text in shown)
    assert "password authentication failed" in str(refused.value) and "postgres:***@127.0.0.1" in str(refused.value)
    assert "cannot connect" in str(unreachable.value)
    assert redacted_url("host=db.example.com port=5433 dbname=sales user=bi password=s3cret") == \
        "postgresql://bi:***@db.example.com:5433/sales"
