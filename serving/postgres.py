"""The PostgreSQL score sink: every run in tables of its own, one transaction making it current.

Layout in the schema (default `custscore`)::

    runs                       one row per publish: metadata (jsonb), counts, status, timestamps,
                               the physical tables of the run with their rows and columns (`tables`,
                               jsonb a person can read) and, apart, the Arrow schemas the sink reads
                               them back with (`table_schemas`, jsonb of base64 text)
    t<12 hex>_scores, ...      a run's tables (scores, explanations, segment_summary, x_<name>)
    scores_current, explanations_current, segment_summary_current, <name>_current
                               views over the current run's tables: what BI tools read
    current_run, published_runs, score_history
                               views: the current run's row, every published run, every published score row

A publish takes a connection-level advisory lock (publishers are serialised; the server releases it when
a publisher dies), records the run as `publishing`, then in one transaction creates the run's
tables, fills them with COPY (the score batches and explanation parts streamed one at a time, so
memory stays flat), indexes them and records them on the run's row, still `publishing`. A second,
short transaction (the switch) marks the run `published` (an earlier run of the same run_id
`replaced`) and points the views at the current run. A process killed or a connection dropped
anywhere before the switch commits leaves readers on the previous run, and at most the
`publishing` row and its tables, which the next publish marks `failed` and drops.

The switch redefines views a reader may hold open (a long query in a BI tool): it waits at most
`switch_lock_timeout` seconds for them, as readers arriving meanwhile queue behind it, then lets
them through and tries again, `switch_attempts` times in all; then it gives up in one line
(`ViewSwitchTimeout`): the new run's tables are in place, the views still show the previous run.
The replaced run's tables are dropped after the switch, under the same bound (else the next
publish drops them); a reader that resolved them just before resolves once more.

"Current/latest" means what it means in the Parquet store: the latest as_of, then the last published.
Identifiers are always composed with psycopg.sql; the connection URL is shown only redacted.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from serving.reading import as_of_date, equality_filters
from serving.score_table import EXPLANATION_SCHEMA, SCORE_SCHEMA, SUMMARY_SCHEMA, ContractError, conform
from serving.scored_run import ScoredRun, read_part
from serving.store import LatestRunDeletionError, PublishedRun, RunMetadata, RunNotFoundError
from serving.store_files import check_run_table_name, check_unique_ids, stamped

logger = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PHYSICAL = re.compile(r"^t[0-9a-f]{12}_")
CONTRACT_TABLES = {"scores": "scores", "explanations": "explanations", "summary": "segment_summary"}
# Names the schema's own tables and views use: a further table of a run may not take them.
RESERVED = {"scores", "explanations", "segment_summary", "summary", "runs", "current_run", "published_runs", "score_history"}
MAX_TABLE_NAME = 47  # t<12 hex>_x_<name> and <name>_current must fit PostgreSQL's 63 characters
COPY_ROWS = 20_000  # rows per CSV block sent to COPY: a few MB, whatever the run's size
_IDLE_READERS = 8


# The columns of `runs` the readers' views show (all but table_schemas).
RUN_VIEW_COLUMNS = ("id", "run_id", "as_of", "churn_model_version", "value_model_version", "churn_mlflow_run_id",
                    "value_mlflow_run_id", "data_hash", "metadata", "status", "score_rows", "explanation_rows",
                    "summary_rows", "tables", "started_at", "published_at", "finished_at", "error")


@dataclasses.dataclass(frozen=True)
class CreatedTable:
    """A table a publish made: what `runs.tables` shows of it, and its Arrow schema for `runs.table_schemas`."""

    described: dict  # {"table": physical name, "rows": n, "columns": ["name type", ...]}
    schema: str  # base64 of the serialized Arrow schema


def readable_table(name: str, rows: int, schema: pa.Schema) -> dict:
    """How `runs.tables` shows one table: its physical name, rows, and columns as "name type" in order."""
    columns = [f"{f.name} {pg_type(f).split(' COLLATE')[0]}" for f in schema]
    return {"table": name, "rows": rows, "columns": columns}


def schema_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_of(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def _json_columns(tables: dict[str, CreatedTable]) -> tuple[psycopg.types.json.Jsonb, psycopg.types.json.Jsonb]:
    """The values of `tables` and `table_schemas` for some created tables."""
    return (psycopg.types.json.Jsonb({name: t.described for name, t in tables.items()}),
            psycopg.types.json.Jsonb({name: t.schema for name, t in tables.items()}))


class PostgresSinkError(RuntimeError):
    """PostgreSQL refused or lost a publish or a read; the message names the server (redacted) and what to do."""


class ViewSwitchTimeout(PostgresSinkError):
    """Readers held the views through every attempt of a publish's switch: the run's tables are in, the views are not moved."""


class ReadConnectionLost(PostgresSinkError):
    """A reading connection broke (server restarted, connection ended): a read is retried once on a new one."""


def redacted_url(url: str) -> str:
    """The connection URL as custscore shows it: user, host, port and database, the password as ***."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable connection string)"
    user = params.get("user", "")
    auth = f"{user}:***@" if params.get("password") else (f"{user}@" if user else "")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{auth}{params.get('host', 'localhost')}{port}/{params.get('dbname', '')}"


class PostgresSink:
    """A `ScoreSink` in a PostgreSQL schema (see the module docstring)."""

    def __init__(self, url: str, schema: str = "custscore", *, connect_timeout: int = 10,
                 switch_lock_timeout: float = 3.0, switch_attempts: int = 5) -> None:
        if not IDENTIFIER.match(schema):
            raise ValueError(f"PostgreSQL schema {schema!r}: use a lower-case identifier (letters, digits, _)")
        if switch_lock_timeout <= 0 or switch_attempts < 1:
            raise ValueError(f"switch_lock_timeout {switch_lock_timeout} and switch_attempts {switch_attempts}: "
                             "give a timeout above 0 seconds and at least 1 attempt")
        self.url = url
        self.schema = schema
        self.shown = redacted_url(url)
        self.connect_timeout = connect_timeout
        self.switch_lock_timeout = switch_lock_timeout
        self.switch_attempts = switch_attempts
        self._idle: list[psycopg.Connection] = []
        self._idle_lock = threading.Lock()

    def __repr__(self) -> str:  # never the password, also not in a traceback's locals
        return f"PostgresSink({self.shown!r}, schema={self.schema!r})"

    # ------------------------------------------------------------------ connections

    def _connect(self, purpose: str) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout,
                                   application_name=f"custscore-{purpose}")
        except psycopg.Error as exc:
            raise PostgresSinkError(f"PostgreSQL {self.shown}: cannot connect ({self.scrubbed(exc)}); check that the "
                                    "server runs and the URL (CUSTSCORE_POSTGRES_URL or sinks.postgres.url)") from None

    def scrubbed(self, exc: BaseException | str) -> str:
        """The first line of an error, with the password removed should the driver ever quote it."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        with contextlib.suppress(psycopg.ProgrammingError):
            password = conninfo_to_dict(self.url).get("password")
            if password:
                text = text.replace(str(password), "***")
        return text

    @contextlib.contextmanager
    def _reader(self) -> Iterator[psycopg.Connection]:
        """A connection for reading, taken from the idle ones (a read API calls many times a second)."""
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self._connect("read")
        try:
            yield conn
        except psycopg.OperationalError as exc:
            conn.close()
            self.close()  # a restarted server ended every idle connection too
            raise ReadConnectionLost(f"PostgreSQL {self.shown}: reading failed ({self.scrubbed(exc)}); try again") from None
        except (LookupError, ValueError):  # a run not found, a bad column: the connection is as it was
            self._give_back(conn)
            raise
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)

    def _give_back(self, conn: psycopg.Connection) -> None:
        with self._idle_lock:
            if len(self._idle) < _IDLE_READERS and not conn.closed and not conn.broken:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle reading connections."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _name(self, name: str) -> sql.Composable:
        return sql.Identifier(self.schema, name)

    # ------------------------------------------------------------------ schema

    def ensure_schema(self, conn: psycopg.Connection | None = None) -> None:
        """Create the schema and the runs table when missing (idempotent)."""
        if conn is None:
            with self._connect("init") as own, self._publish_lock(own):
                self.ensure_schema(own)
            return
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        conn.execute(sql.SQL("""
            CREATE TABLE IF NOT EXISTS {runs} (
                id bigserial PRIMARY KEY,
                run_id text COLLATE "C" NOT NULL,
                as_of date NOT NULL,
                churn_model_version text, value_model_version text,
                churn_mlflow_run_id text, value_mlflow_run_id text, data_hash text,
                metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                status text NOT NULL CHECK (status IN ('publishing', 'published', 'failed', 'replaced', 'deleted')),
                score_rows bigint, explanation_rows bigint, summary_rows bigint,
                tables jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                published_at timestamptz, finished_at timestamptz, error text)""").format(runs=self._name("runs")))
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS table_schemas jsonb NOT NULL DEFAULT '{{}}'::jsonb")
                     .format(self._name("runs")))
        self._move_schemas_out_of_tables(conn)
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS runs_run_id ON {} (run_id)").format(self._name("runs")))
        conn.execute(sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS runs_one_published ON {} (run_id) "
                             "WHERE status = 'published'").format(self._name("runs")))
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
            self._name("runs"), sql.Literal("custscore: one row per publish; status published = readable, "
                                            "the current run is in the view current_run")))

    def _move_schemas_out_of_tables(self, conn: psycopg.Connection) -> None:
        """Rows written before `table_schemas` existed kept the base64 schemas in `tables`: move them there."""
        runs = self._name("runs")
        old = conn.execute(sql.SQL("SELECT id, tables FROM {} WHERE jsonb_path_exists(tables, '$.*.schema')").format(runs)).fetchall()
        if not old:
            return
        with conn.transaction():
            for row_id, tables in old:
                schemas = {name: t["schema"] for name, t in tables.items() if "schema" in t}
                readable = {name: readable_table(t["table"], t["rows"], schema_of(schemas[name])) if name in schemas else t
                            for name, t in tables.items()}
                conn.execute(sql.SQL("UPDATE {} SET tables = %s, table_schemas = table_schemas || %s WHERE id = %s").format(runs),
                             [psycopg.types.json.Jsonb(readable), psycopg.types.json.Jsonb(schemas), row_id])
        logger.info("PostgreSQL %s: %d run row(s) now list their tables' columns; their schemas moved to table_schemas",
                    self.shown, len(old))

    def _schema_exists(self, conn: psycopg.Connection) -> bool:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                            [f'"{self.schema}"."runs"']).fetchone()[0]

    @contextlib.contextmanager
    def _publish_lock(self, conn: psycopg.Connection) -> Iterator[None]:
        """Serialise publishers of this schema; the server releases the lock when a publisher's connection ends."""
        key = f"custscore.publish.{self.schema}"
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
        try:
            yield
        finally:
            if not conn.closed and not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])

    # ------------------------------------------------------------------ publishing

    def publish(self, metadata: RunMetadata, run: ScoredRun) -> PublishedRun:
        """Copy the run into tables of its own and make it current in one transaction (see module docstring)."""
        if run.run_id is not None and run.run_id != metadata.run_id:
            raise ContractError(f"run {metadata.run_id}: the scored run is {run.run_id!r}; publish it under its own run_id")
        for name in run.tables:
            self._check_table_name(name)
        with self._publishing(f"publishing run {metadata.run_id}") as conn:
            self._remove_leftovers(conn)
            attempt = self._record_attempt(conn, metadata)
            try:
                with conn.transaction():
                    self._record_tables(conn, attempt, self._load_run(conn, metadata, run))
                replaced = self._switch(conn, attempt, metadata.run_id)
            except BaseException as exc:
                self._mark_failed(conn, attempt, exc)
                raise
            self._drop_replaced(conn, replaced)
            published = self._published(conn, attempt)
        logger.info("published run %s (as of %s) to PostgreSQL %s: %d scores, %d explanations", published.run_id,
                    published.as_of, self.shown, published.score_rows, published.explanation_rows)
        return published

    @contextlib.contextmanager
    def _publishing(self, what: str) -> Iterator[psycopg.Connection]:
        """A publisher's connection holding the lock, the schema in place; driver errors as one line."""
        try:
            with self._connect("publish") as conn, self._publish_lock(conn):
                self.ensure_schema(conn)
                yield conn
        except psycopg.Error as exc:
            raise PostgresSinkError(f"PostgreSQL {self.shown}: {what} failed ({self.scrubbed(exc)}); nothing of it "
                                    "was committed: readers still see the previous run") from None

    def _record_attempt(self, conn: psycopg.Connection, metadata: RunMetadata) -> int:
        row = conn.execute(sql.SQL(
            "INSERT INTO {} (run_id, as_of, churn_model_version, value_model_version, churn_mlflow_run_id, "
            "value_mlflow_run_id, data_hash, metadata, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'publishing') "
            "RETURNING id").format(self._name("runs")),
            [metadata.run_id, metadata.as_of, metadata.churn_model_version, metadata.value_model_version,
             metadata.churn_mlflow_run_id, metadata.value_mlflow_run_id, metadata.data_hash,
             psycopg.types.json.Jsonb(metadata.extra)]).fetchone()
        return row[0]

    def _load_run(self, conn: psycopg.Connection, metadata: RunMetadata, run: ScoredRun) -> dict[str, CreatedTable]:
        """Create and fill the run's tables (inside the caller's transaction), by name."""
        run_id = metadata.run_id
        where = f"run {run_id}"
        stamp = {"run_id": run_id, "as_of": metadata.as_of, "churn_model_version": metadata.churn_model_version,
                 "value_model_version": metadata.value_model_version}
        check_unique_ids(run.numbers.column("customer_id"), where=f"{where} scores")
        scores = (conform(stamped(batch, stamp, where=f"{where} scores"), SCORE_SCHEMA, where=f"{where} scores")
                  for batch in run.score_batches())
        explanations = (conform(stamped(read_part(part), {"run_id": run_id}, where=f"{where} explanations"),
                                EXPLANATION_SCHEMA, where=f"{where} explanations") for part in run.explanation_parts)
        summary = SUMMARY_SCHEMA.empty_table() if run.summary is None else run.summary
        summary = conform(stamped(summary, {"run_id": run_id}, where=f"{where} segment summary"), SUMMARY_SCHEMA,
                          where=f"{where} segment summary")
        tables = {
            "scores": self._create_filled(conn, "scores", SCORE_SCHEMA, scores, indexes=("customer_id", "segment")),
            "explanations": self._create_filled(conn, "explanations", EXPLANATION_SCHEMA, explanations,
                                                indexes=("customer_id",)),
            "summary": self._create_filled(conn, "segment_summary", SUMMARY_SCHEMA, iter([summary])),
        }
        for name, table in sorted(run.tables.items()):
            table = stamped(table, {"run_id": run_id}, where=f"{where} table {name}")
            tables[name] = self._create_filled(conn, f"x_{name}", table.schema, iter([table]),
                                               indexes=tuple(c for c in ("customer_id",) if c in table.column_names))
        return tables

    def _create_filled(self, conn: psycopg.Connection, kind: str, schema: pa.Schema, batches: Iterable[pa.Table],
                       indexes: tuple[str, ...] = ()) -> dict:
        """A new table of `schema` filled by COPY from the batches, one block at a time; its description."""
        name = f"t{uuid.uuid4().hex[:12]}_{kind}"
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f))) for f in schema)
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(self._name(name), columns))
        rows = 0
        copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            self._name(name), sql.SQL(", ").join(sql.Identifier(n) for n in schema.names))
        with conn.cursor().copy(copy) as pipe:
            for batch in batches:
                batch = batch.select(schema.names)
                for offset in range(0, batch.num_rows, COPY_ROWS):
                    block = batch.slice(offset, COPY_ROWS)
                    pipe.write(csv_block(block))
                    rows += block.num_rows
        for column in indexes:
            conn.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{name}_{column}"), self._name(name), sql.Identifier(column)))
        conn.execute(sql.SQL("ANALYZE {}").format(self._name(name)))
        return CreatedTable(readable_table(name, rows, schema), schema_text(schema))

    def _record_tables(self, conn: psycopg.Connection, attempt: int, tables: dict[str, CreatedTable]) -> None:
        """The loaded tables and their counts on the attempt's row, still `publishing`: no reader sees them yet."""
        conn.execute(sql.SQL(
            "UPDATE {} SET score_rows = %s, explanation_rows = %s, summary_rows = %s, tables = %s, table_schemas = %s "
            "WHERE id = %s").format(self._name("runs")),
            [tables["scores"].described["rows"], tables["explanations"].described["rows"], tables["summary"].described["rows"],
             *_json_columns(tables), attempt])

    def _switch(self, conn: psycopg.Connection, attempt: int, run_id: str) -> list[str]:
        """Make the loaded run current, waiting a bounded time for readers holding the views; the replaced run's tables."""
        for number in range(1, self.switch_attempts + 1):
            try:
                with conn.transaction():
                    self._bound_lock_waits(conn)
                    replaced = self._mark_published(conn, attempt, run_id)
                    self._point_views(conn)
                return replaced
            except psycopg.errors.LockNotAvailable:
                if number == self.switch_attempts:
                    raise self._switch_timeout(conn, run_id) from None
                logger.warning("PostgreSQL %s: a reader holds the views; switching to run %s again in %gs (attempt %d of %d)",
                               self.shown, run_id, self.switch_lock_timeout, number + 1, self.switch_attempts)
                # The readers that queued behind the switch's lock request run meanwhile.
                time.sleep(self.switch_lock_timeout)
        raise AssertionError("unreachable")

    def _bound_lock_waits(self, conn: psycopg.Connection) -> None:
        """Within the current transaction, wait at most switch_lock_timeout for any lock."""
        conn.execute("SELECT set_config('lock_timeout', %s, true)", [f"{round(self.switch_lock_timeout * 1000)}ms"])

    def _switch_timeout(self, conn: psycopg.Connection, run_id: str) -> ViewSwitchTimeout:
        current = self._current_row(conn)
        shown = f"run {current['run_id']} (as of {current['as_of']})" if current else "no run"
        return ViewSwitchTimeout(
            f"PostgreSQL {self.shown}: run {run_id}'s tables are in place but the views still show {shown}: a reader "
            f"held them through {self.switch_attempts} attempts of {self.switch_lock_timeout:g}s (a long query in a BI "
            "tool?); let it finish or cancel it (pg_stat_activity, pg_cancel_backend), then publish again")

    def _drop_replaced(self, conn: psycopg.Connection, names: list[str]) -> None:
        """Drop the replaced run's tables after the switch, waiting as little as the switch; else the next publish does."""
        try:
            with conn.transaction():
                self._bound_lock_waits(conn)
                self._drop_tables(conn, names)
        except psycopg.errors.LockNotAvailable:
            logger.warning("PostgreSQL %s: a reader still holds the replaced tables %s; the next publish drops them",
                           self.shown, ", ".join(names))

    def _mark_published(self, conn: psycopg.Connection, attempt: int, run_id: str) -> list[str]:
        """Mark the attempt published and an earlier publish of the run replaced; the replaced run's tables."""
        replaced = conn.execute(sql.SQL(
            "UPDATE {} SET status = 'replaced', finished_at = clock_timestamp() "
            "WHERE run_id = %s AND status = 'published' RETURNING tables").format(self._name("runs")), [run_id]).fetchall()
        conn.execute(sql.SQL(
            "UPDATE {} SET status = 'published', published_at = clock_timestamp(), finished_at = clock_timestamp() "
            "WHERE id = %s").format(self._name("runs")), [attempt])
        return [t["table"] for (old,) in replaced for t in old.values()]

    def _mark_failed(self, conn: psycopg.Connection, attempt: int, exc: BaseException) -> None:
        """Record the failure when the connection still works (if not, the next publish does it)."""
        if conn.closed or conn.broken:
            return
        with contextlib.suppress(psycopg.Error):
            conn.execute(sql.SQL("UPDATE {} SET status = 'failed', finished_at = clock_timestamp(), error = %s "
                                 "WHERE id = %s AND status = 'publishing'").format(self._name("runs")),
                         [self.scrubbed(exc)[:500], attempt])

    def _remove_leftovers(self, conn: psycopg.Connection) -> None:
        """Under the lock no other publish runs: a `publishing` row is a killed one; tables no run holds are orphans."""
        failed = conn.execute(sql.SQL(
            "UPDATE {} SET status = 'failed', finished_at = clock_timestamp(), "
            "error = 'interrupted: the publisher stopped before the switch' "
            "WHERE status = 'publishing' RETURNING run_id").format(self._name("runs"))).fetchall()
        for (run_id,) in failed:
            logger.warning("PostgreSQL %s: run %s was left publishing by an interrupted publish; marked failed",
                           self.shown, run_id)
        held = {t["table"] for (tables,) in conn.execute(sql.SQL(
            "SELECT tables FROM {} WHERE status = 'published'").format(self._name("runs"))) for t in tables.values()}
        existing = [name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", [self.schema]) if _PHYSICAL.match(name)]
        orphans = [name for name in existing if name not in held]
        if orphans:
            logger.warning("PostgreSQL %s: removing %d table(s) of interrupted publishes", self.shown, len(orphans))
        self._drop_tables(conn, orphans)

    def _drop_tables(self, conn: psycopg.Connection, names: Iterable[str]) -> None:
        for name in names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._name(name)))

    def _point_views(self, conn: psycopg.Connection) -> None:
        """Point the *_current views at the current run and rebuild the history views (inside the caller's transaction)."""
        current = self._current_row(conn)
        wanted: dict[str, str] = {}
        if current is not None:
            for name, table in current["tables"].items():
                wanted[f"{CONTRACT_TABLES.get(name, name)}_current"] = table["table"]
        existing = {name for (name,) in conn.execute(
            "SELECT viewname FROM pg_views WHERE schemaname = %s AND viewname LIKE %s", [self.schema, r"%\_current"])}
        for view in sorted(existing - set(wanted)):
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(self._name(view)))
        for view, table in sorted(wanted.items()):
            self._define_view(conn, view, sql.SQL("SELECT * FROM {}").format(self._name(table)))
        runs = self._name("runs")
        # The readers' views leave out table_schemas: what the sink needs, not what a person reads.
        shown = sql.SQL(", ").join(sql.Identifier(c) for c in RUN_VIEW_COLUMNS)
        self._define_view(conn, "published_runs", sql.SQL("SELECT {} FROM {} WHERE status = 'published'").format(shown, runs))
        self._define_view(conn, "current_run", sql.SQL("SELECT {} FROM {} WHERE id = {}").format(
            shown, runs, sql.Literal(current["id"] if current else -1)))
        published = [t["scores"]["table"] for (t,) in conn.execute(sql.SQL(
            "SELECT tables FROM {} WHERE status = 'published' ORDER BY as_of, published_at, run_id").format(runs))]
        history = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT * FROM {}").format(self._name(t)) for t in published) if published else sql.SQL(
            "SELECT {} WHERE false").format(sql.SQL(", ").join(
                sql.SQL("NULL::{} AS {}").format(sql.SQL(pg_type(f)), sql.Identifier(f.name)) for f in SCORE_SCHEMA))
        self._define_view(conn, "score_history", history)

    def _define_view(self, conn: psycopg.Connection, view: str, query: sql.Composable) -> None:
        """CREATE OR REPLACE keeps grants and dependants; a view whose columns changed is dropped and made anew."""
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(self._name(view), query))
        except psycopg.errors.InvalidTableDefinition:
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(self._name(view)))
            conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(self._name(view), query))

    # ------------------------------------------------------------------ a database for readers

    def role_exists(self, role: str) -> bool:
        """Whether a role of that name exists on the server."""
        with self._reader() as conn:
            return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is not None

    def init_database(self, reader_role: str, reader_password: str | None) -> str:
        """Schema, runs table, views and a read-only login role (idempotent); the URL a BI tool uses, password ***.

        The role may SELECT every table and view of the schema, also those of runs published later
        (default privileges of the publishing role), and nothing else: no CREATE on the schema, and
        its connections are read-only. Its password is set when given (a role made without one cannot log in);
        only its SCRAM verifier is sent to the server, so the password appears in no server log.
        """
        if not IDENTIFIER.match(reader_role):
            raise ValueError(f"reader role {reader_role!r}: use a lower-case identifier (letters, digits, _)")
        role, schema = sql.Identifier(reader_role), sql.Identifier(self.schema)
        with self._publishing(f"setting up schema {self.schema} and role {reader_role}") as conn, conn.transaction():
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [reader_role]).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            if reader_password is not None:
                verifier = conn.pgconn.encrypt_password(reader_password.encode(), reader_role.encode(), b"scram-sha-256")
                conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(verifier.decode())))
            database = conn.execute("SELECT current_database()").fetchone()[0]
            conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
            conn.execute(sql.SQL("ALTER ROLE {} SET search_path = {}").format(role, schema))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
            conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema, role))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role))
            conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(schema, role))
            self._point_views(conn)  # the views exist before the first run, so a BI tool can be set up at once
        params = conninfo_to_dict(self.url)
        port = f":{params['port']}" if params.get("port") else ""
        return f"postgresql://{reader_role}:***@{params.get('host', 'localhost')}{port}/{params.get('dbname', '')}"

    # ------------------------------------------------------------------ further tables, deleting, retention

    def attach_table(self, run_id: str, name: str, table: pa.Table | pd.DataFrame) -> PublishedRun:
        """Add or replace a further table of a published run, all or nothing; the run keeps its publish time."""
        self._check_table_name(name)
        table = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
        with self._publishing(f"attaching table {name} to run {run_id}") as conn:
            row = self._published_row(conn, run_id)
            table = stamped(table, {"run_id": run_id}, where=f"run {run_id} table {name}")
            with conn.transaction():
                created = self._create_filled(conn, f"x_{name}", table.schema, iter([table]),
                                              indexes=tuple(c for c in ("customer_id",) if c in table.column_names))
                conn.execute(sql.SQL("UPDATE {} SET tables = tables || %s, table_schemas = table_schemas || %s "
                                     "WHERE id = %s").format(self._name("runs")),
                             [*_json_columns({name: created}), row["id"]])
                self._point_views(conn)
            old = row["tables"].get(name)
            self._drop_tables(conn, [old["table"]] if old else [])
            published = self._published(conn, row["id"])
        logger.info("run %s: table %s attached in PostgreSQL %s (%d rows)", run_id, name, self.shown, created.described["rows"])
        return published

    def delete_run(self, run_id: str, *, allow_latest: bool = False) -> PublishedRun:
        """Remove a published run: one transaction hides it (and moves the views), then its tables go."""
        with self._publishing(f"deleting run {run_id}") as conn:
            row = self._published_row(conn, run_id)
            if not allow_latest:
                current = self._current_row(conn)
                others = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE status = 'published' AND id <> %s").format(
                    self._name("runs")), [row["id"]]).fetchone()[0]
                if not others:
                    raise LatestRunDeletionError(f"run {run_id} (as of {row['as_of']}) is the only published run; "
                                                 "deleting it leaves PostgreSQL with no run to read")
                if current["id"] == row["id"]:
                    raise LatestRunDeletionError(f"run {run_id} (as of {row['as_of']}) is the current run")
            removed = self._delete_rows(conn, [row])
        return removed[0]

    def prune(self, keep: int) -> list[PublishedRun]:
        """Delete all but the `keep` most recent published runs (the current run is always kept); the runs removed."""
        if keep < 1:
            raise ValueError(f"--keep {keep}: keep at least 1 run (the current run is never removed)")
        with self._publishing(f"pruning to {keep} runs") as conn:
            rows = self._rows(conn, "WHERE status = 'published' ORDER BY as_of DESC, published_at DESC, run_id DESC")
            removed = self._delete_rows(conn, rows[keep:])
        return removed

    def _delete_rows(self, conn: psycopg.Connection, rows: list[dict]) -> list[PublishedRun]:
        if not rows:
            return []
        removed = [self._as_published(row) for row in rows]
        with conn.transaction():
            conn.execute(sql.SQL("UPDATE {} SET status = 'deleted', finished_at = clock_timestamp() "
                                 "WHERE id = ANY(%s)").format(self._name("runs")), [[r["id"] for r in rows]])
            self._point_views(conn)
        self._drop_tables(conn, [t["table"] for row in rows for t in row["tables"].values()])
        for run in removed:
            logger.info("deleted run %s (as of %s) from PostgreSQL %s", run.run_id, run.as_of, self.shown)
        return removed

    def _check_table_name(self, name: str) -> None:
        check_run_table_name(name)
        if name in RESERVED or len(name) > MAX_TABLE_NAME:
            raise ContractError(f"run table name {name!r}: in PostgreSQL a further table's name has at most "
                                f"{MAX_TABLE_NAME} characters and is none of {sorted(RESERVED)}; rename it")

    # ------------------------------------------------------------------ run rows

    # table_schemas read through the row as jsonb: a reader may meet a database no publish has given
    # the column yet (the reader role cannot add it); such rows still hold the schemas in `tables`.
    _ROW = ("id, run_id, as_of, churn_model_version, value_model_version, churn_mlflow_run_id, value_mlflow_run_id, "
            "data_hash, metadata, status, score_rows, explanation_rows, summary_rows, tables, published_at, "
            "coalesce(to_jsonb(runs) -> 'table_schemas', '{{}}'::jsonb) AS table_schemas")

    def _rows(self, conn: psycopg.Connection, where: str, params: list | None = None) -> list[dict]:
        cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
        # `where` is one of this module's fixed clauses; values always travel as parameters.
        return cursor.execute(sql.SQL("SELECT " + self._ROW + " FROM {} AS runs " + where).format(self._name("runs")),
                              params or []).fetchall()

    def _current_row(self, conn: psycopg.Connection) -> dict | None:
        rows = self._rows(conn, "WHERE status = 'published' ORDER BY as_of DESC, published_at DESC, run_id DESC LIMIT 1")
        return rows[0] if rows else None

    def _published_row(self, conn: psycopg.Connection, run_id: str) -> dict:
        rows = self._rows(conn, "WHERE status = 'published' AND run_id = %s", [run_id])
        if not rows:
            raise RunNotFoundError(f"PostgreSQL {self.shown}: no published run with run_id {run_id!r}; "
                                   f"published runs: {self._run_ids(conn) or 'none'}")
        return rows[0]

    def _run_ids(self, conn: psycopg.Connection) -> list[str]:
        return [r["run_id"] for r in self._rows(conn, "WHERE status = 'published' ORDER BY run_id")]

    def _published(self, conn: psycopg.Connection, attempt: int) -> PublishedRun:
        return self._as_published(self._rows(conn, "WHERE id = %s", [attempt])[0])

    def _as_published(self, row: dict) -> PublishedRun:
        further = {name: t["rows"] for name, t in row["tables"].items() if name not in CONTRACT_TABLES}
        return PublishedRun(
            run_id=row["run_id"], as_of=row["as_of"], churn_model_version=row["churn_model_version"],
            value_model_version=row["value_model_version"], churn_mlflow_run_id=row["churn_mlflow_run_id"],
            value_mlflow_run_id=row["value_mlflow_run_id"], data_hash=row["data_hash"], extra=row["metadata"] or {},
            folder=f"postgresql:{self.schema}/{row['tables']['scores']['table'].split('_')[0]}",
            score_rows=row["score_rows"], explanation_rows=row["explanation_rows"], summary_rows=row["summary_rows"],
            published_at=row["published_at"].astimezone(dt.UTC), tables=further)

    # ------------------------------------------------------------------ reading

    def list_runs(self) -> pd.DataFrame:
        """One row per published run, oldest first, with its metadata and row counts."""
        with self._reader() as conn:
            rows = self._rows(conn, "WHERE status = 'published' ORDER BY as_of, published_at, run_id") \
                if self._schema_exists(conn) else []
        return pd.DataFrame([self._as_published(r).model_dump() for r in rows], columns=list(PublishedRun.model_fields))

    def latest_run(self) -> PublishedRun | None:
        """The current run (latest as_of, then last published), or None."""
        with self._reader() as conn:
            row = self._current_row(conn) if self._schema_exists(conn) else None
        return None if row is None else self._as_published(row)

    def run_metadata(self, run_id: str | None = None, as_of: dt.date | str | None = None) -> PublishedRun:
        """The metadata of a run (default: the current one)."""
        with self._reader() as conn:
            return self._as_published(self._resolve(conn, run_id, as_of))

    def _resolve(self, conn: psycopg.Connection, run_id: str | None, as_of: dt.date | str | None) -> dict:
        if not self._schema_exists(conn):
            raise RunNotFoundError(f"PostgreSQL {self.shown}: no published runs yet in schema {self.schema}; "
                                   "run `custscore run` first")
        day = None if as_of is None else as_of_date(as_of)
        if run_id is not None:
            row = self._published_row(conn, run_id)
            if day is not None and row["as_of"] != day:
                raise RunNotFoundError(f"PostgreSQL {self.shown}: run {run_id!r} is as of {row['as_of']}, not {day}")
            return row
        if day is not None:
            rows = self._rows(conn, "WHERE status = 'published' AND as_of = %s "
                                    "ORDER BY published_at DESC, run_id DESC LIMIT 1", [day])
            if not rows:
                raise RunNotFoundError(f"PostgreSQL {self.shown}: no run as of {day}")
            return rows[0]
        row = self._current_row(conn)
        if row is None:
            raise RunNotFoundError(f"PostgreSQL {self.shown}: no published runs yet; run `custscore run` first")
        return row

    def _select(self, name: str, run_id, as_of, columns: list[str] | None, conditions: list[tuple[str, str, Any]],
                order: sql.Composable, limit: int | None = None) -> pd.DataFrame | None:
        """Rows of one of a run's tables as the store returns them (types from the Arrow schema it was written with)."""
        # Once more when the run was republished or deleted between resolving and reading, or when an
        # idle connection turns out to be dead (the server restarted since): the second attempt is fresh.
        for attempt in (1, 2):
            with self._retrying_once(attempt), self._reader() as conn:
                row = self._resolve(conn, run_id, as_of)
                described = row["tables"].get(name)
                if described is None:
                    return None
                schema = schema_of(row["table_schemas"].get(name) or described["schema"])
                wanted = _wanted_columns(schema, columns, f"run {row['run_id']} {name}")
                where = sql.SQL(" AND ").join(
                    sql.SQL("{} " + op + " (%s)").format(sql.Identifier(column)) for column, op, _ in conditions
                ) if conditions else sql.SQL("true")
                query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}{}").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in wanted), self._name(described["table"]), where,
                    order, sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""))
                try:
                    rows = conn.execute(query, [value for _, _, value in conditions]).fetchall()
                except psycopg.errors.UndefinedTable:
                    if attempt == 2:
                        raise
                    continue
                return _frame(rows, pa.schema([schema.field(c) for c in wanted]))
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _retrying_once(self, attempt: int) -> Iterator[None]:
        """Swallow a lost reading connection on the first attempt (the caller's loop tries again), not on the second."""
        try:
            yield
        except ReadConnectionLost:
            if attempt == 2:
                raise

    def read_scores(self, run_id: str | None = None, as_of: dt.date | str | None = None, segment: str | None = None,
                    customer_id: str | Iterable[str] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """The score table of a run (default: current), optionally one segment or some customers."""
        conditions = _conditions(segment=segment, customer_id=customer_id)
        return self._select("scores", run_id, as_of, columns, conditions, sql.SQL("ctid"))

    def read_explanations(self, run_id: str | None = None, as_of: dt.date | str | None = None,
                          customer_id: str | Iterable[str] | None = None, score: str | None = None,
                          columns: list[str] | None = None) -> pd.DataFrame:
        """The explanations (one row per reason) of a run (default: current), all columns or `columns`."""
        conditions = _conditions(customer_id=customer_id, score=score)
        return self._select("explanations", run_id, as_of, columns, conditions, sql.SQL("ctid"))

    def read_summary(self, run_id: str | None = None, as_of: dt.date | str | None = None) -> pd.DataFrame:
        """The segment and value-tier summary of a run (default: current)."""
        return self._select("summary", run_id, as_of, None, [], sql.SQL("ctid"))

    def read_table(self, name: str, run_id: str | None = None, as_of: dt.date | str | None = None,
                   columns: list[str] | None = None) -> pd.DataFrame | None:
        """A further table of a run (default: current), all columns or `columns`; None when the run has none of that name."""
        check_run_table_name(name)
        if name in CONTRACT_TABLES:
            return None
        return self._select(name, run_id, as_of, columns, [], sql.SQL("ctid"))

    def read_scores_page(self, run_id: str | None = None, *, segment: str | None = None, value_tier: str | None = None,
                         min_value: float | None = None, min_p_churn: float | None = None,
                         after_customer_id: str | None = None, limit: int = 100,
                         columns: list[str] | None = None) -> pd.DataFrame:
        """Score rows ordered by customer_id, strictly after `after_customer_id`, at most `limit` (min_value filters clv)."""
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit {limit!r}: ask for at least 1 row")
        conditions = [(c, op, v) for c, op, v in (("segment", "=", segment), ("value_tier", "=", value_tier),
                                                  ("clv", ">=", min_value), ("p_churn", ">=", min_p_churn),
                                                  ("customer_id", ">", after_customer_id)) if v is not None]
        return self._select("scores", run_id, None, columns, conditions, sql.SQL("customer_id"), limit)

    def customer_history(self, customer_id: str, columns: list[str] | None = None) -> pd.DataFrame:
        """One row per published run holding the customer, oldest first, with run_id and as_of."""
        wanted = None if columns is None else [*(c for c in ("run_id", "as_of") if c not in columns), *columns]
        wanted_columns = _wanted_columns(SCORE_SCHEMA, wanted, "score history")
        schema = pa.schema([SCORE_SCHEMA.field(c) for c in wanted_columns])
        for attempt in (1, 2):  # as in _select
            with self._retrying_once(attempt), self._reader() as conn:
                if not self._schema_exists(conn):
                    return _frame([], schema)
                runs = self._rows(conn, "WHERE status = 'published' ORDER BY as_of, published_at, run_id")
                if not runs:
                    return _frame([], schema)
                select = sql.SQL(", ").join(sql.Identifier(c) for c in wanted_columns)
                parts = [sql.SQL("(SELECT {}, {} AS _order FROM {} WHERE customer_id = %s)").format(
                    select, sql.Literal(i), self._name(run["tables"]["scores"]["table"])) for i, run in enumerate(runs)]
                query = sql.SQL("SELECT {} FROM ({}) AS history ORDER BY _order").format(
                    select, sql.SQL(" UNION ALL ").join(parts))
                try:
                    rows = conn.execute(query, [customer_id] * len(parts)).fetchall()
                except psycopg.errors.UndefinedTable:
                    if attempt == 2:
                        raise
                    continue
                return _frame(rows, schema)
        raise AssertionError("unreachable")


# ---------------------------------------------------------------------- Arrow <-> PostgreSQL


def pg_type(field: pa.Field) -> str:
    """The PostgreSQL column type of an Arrow field (ids and run ids in byte order, as the store sorts them)."""
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return 'text COLLATE "C"' if field.name in ("customer_id", "run_id") else "text"
    simple = [(pa.types.is_boolean, "boolean"), (pa.types.is_int8, "smallint"), (pa.types.is_int16, "smallint"),
              (pa.types.is_uint8, "smallint"), (pa.types.is_int32, "integer"), (pa.types.is_uint16, "integer"),
              (pa.types.is_int64, "bigint"), (pa.types.is_uint32, "bigint"), (pa.types.is_uint64, "numeric(20, 0)"),
              (pa.types.is_float16, "real"), (pa.types.is_float32, "real"), (pa.types.is_float64, "double precision"),
              (pa.types.is_date, "date"), (pa.types.is_time, "time"), (pa.types.is_decimal, "numeric"),
              (pa.types.is_duration, "bigint"), (pa.types.is_binary, "bytea"), (pa.types.is_large_binary, "bytea")]
    for check, name in simple:
        if check(t):
            return name
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_nested(t):
        return "jsonb"
    raise ContractError(f"column {field.name}: Arrow type {t} has no PostgreSQL column type here; cast it to a "
                        "number, text or date before publishing")


def csv_block(table: pa.Table) -> bytes:
    """Rows as PostgreSQL's CSV COPY reads them: NULL unquoted and empty, every text quoted (so '' stays '')."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if pa.types.is_dictionary(field.type):
            column = column.cast(t)
        if pa.types.is_nested(t):
            column = pa.array([None if v is None else json.dumps(v, default=str, ensure_ascii=False)
                               for v in column.to_pylist()], pa.string())
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            column = pa.array([None if v is None else "\\x" + v.hex() for v in column.to_pylist()], pa.string())
        elif pa.types.is_duration(t):
            column = column.cast(pa.int64())
        elif pa.types.is_null(t):
            column = column.cast(pa.string())
        columns.append(column)
    out = io.BytesIO()
    pacsv.write_csv(pa.table(columns, names=table.column_names), out, pacsv.WriteOptions(include_header=False))
    return out.getvalue()


def _frame(rows: list[tuple], schema: pa.Schema) -> pd.DataFrame:
    """Rows fetched from PostgreSQL as a frame with the types the Arrow schema gives (as the store's reads)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = [_array(list(values), field.type) for values, field in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema).to_pandas()


def _array(values: list, t: pa.DataType) -> pa.Array:
    if pa.types.is_duration(t):
        return pa.array(values, pa.int64()).cast(t)
    if pa.types.is_uint64(t):
        values = [None if v is None else int(v) for v in values]
    if pa.types.is_dictionary(t):
        return pa.array(values, t.value_type).dictionary_encode().cast(t)
    return pa.array(values, t)


def _wanted_columns(schema: pa.Schema, columns: list[str] | None, where: str) -> list[str]:
    if columns is None:
        return list(schema.names)
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise ValueError(f"{where}: no column(s) {unknown}; columns: {list(schema.names)}")
    return list(dict.fromkeys(columns))


def _conditions(**values: Any) -> list[tuple[str, str, Any]]:
    """The equality filters of a read, as SQL operators (several values: `= ANY`)."""
    return [(column, "= ANY" if op == "in" else op, value) for column, op, value in equality_filters(**values)]
