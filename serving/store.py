"""The embedded score store: all-or-nothing publishing of scoring runs, reading back, export.

Layout under `root` (the custscore home's store folder)::

    manifest.json                  the catalog: which runs exist and where their files are
    runs/<run_id>__<token>/        one folder per published version of a run:
        scores.parquet, explanations.parquet, segment_summary.parquet, metadata.json
    staging/<run_id>__<token>/     a publish in progress (or killed): never read
    .publish.lock                  serialises publishers (fcntl lock)

Why Parquet files plus an atomic manifest, not a DuckDB database file: a DuckDB file is
locked by the process writing to it, so while a publish runs (minutes for millions of
rows) readers in other processes - the CLI, a CRM export, a notebook - cannot even open
it. Here a publish writes its Parquet files (chunk by chunk with `pyarrow.parquet.
ParquetWriter`, so memory stays flat) into a staging folder nobody reads, moves the folder
under runs/, and only then makes it visible with one atomic step: the new manifest is
written to a temporary file, fsynced, and renamed over manifest.json (`os.replace`).
A process killed at any point before that rename leaves the previous manifest, hence the
previous runs, untouched and readable; after it, the new run is complete. Readers open
whichever manifest is current and never see a half-written run. Leftovers of killed
publishes (staging folders, temporary manifests, unreferenced run folders) are removed
by the next publish. Re-publishing a run_id replaces that run (no duplicate rows); the
replaced files are deleted after the switch. `publish_chunks` takes (scores, explanations)
pairs per chunk, so a scoring loop can hand over each chunk's tables as it goes.
Publishers are serialised with an fcntl lock (POSIX only). SQL users get DuckDB views over the current
files with `connect_views()`.

"Latest run" = the run with the latest as_of, and among those the last published.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import itertools
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from serving.score_table import (
    EXPLANATION_SCHEMA,
    SCORE_SCHEMA,
    SUMMARY_SCHEMA,
    ContractError,
    conform,
)

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FILES = {"scores": "scores.parquet", "explanations": "explanations.parquet", "summary": "segment_summary.parquet"}
_RUN_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
Chunks = pd.DataFrame | pa.Table | Iterable[pd.DataFrame | pa.Table]


class RunMetadata(BaseModel):
    """What identifies a scoring run: given by the caller when publishing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: Annotated[str, Field(pattern=rf"^{_RUN_ID}$")]
    as_of: dt.date
    churn_model_version: str | None = None
    value_model_version: str | None = None
    churn_mlflow_run_id: str | None = None
    value_mlflow_run_id: str | None = None
    data_hash: str | None = None
    extra: dict[str, Any] = {}  # JSON-serialisable facts worth keeping (feature set, horizons...)


class PublishedRun(RunMetadata):
    """A run as recorded in the manifest: its metadata plus what the store wrote."""

    folder: str  # relative to the store root
    score_rows: int
    explanation_rows: int
    summary_rows: int
    published_at: dt.datetime  # UTC


class RunNotFoundError(LookupError):
    """No published run matches the run_id / as_of asked for."""


class ScoreStore:
    """Parquet files per run made visible by an atomic manifest switch (see module docstring)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ publishing

    def publish(
        self,
        metadata: RunMetadata,
        scores: Chunks,
        explanations: Chunks = (),
        summary: pd.DataFrame | pa.Table | None = None,
    ) -> PublishedRun:
        """Write a run's tables and make them visible at once; replaces an earlier run with the same run_id.

        `scores` and `explanations` are tables or iterables of chunks (pandas or Arrow). When
        both come from the same chunk computation, use `publish_chunks` so the explanations of
        early chunks need not be held in memory while the scores are written.
        """
        pairs = itertools.chain(((chunk, None) for chunk in _iter_chunks(scores)), ((None, chunk) for chunk in _iter_chunks(explanations)))
        return self.publish_chunks(metadata, pairs, summary)

    def publish_chunks(
        self,
        metadata: RunMetadata,
        chunks: Iterable[tuple[pd.DataFrame | pa.Table | None, pd.DataFrame | pa.Table | None]],
        summary: pd.DataFrame | pa.Table | None = None,
    ) -> PublishedRun:
        """Publish from an iterable of (scores chunk, explanations chunk) pairs (either may be None)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._publish_lock():
            self._remove_leftovers()
            token = f"{metadata.run_id}__{uuid.uuid4().hex[:12]}"
            staging = self.root / "staging" / token
            staging.mkdir(parents=True)
            try:
                counts = self._write_run_files(staging, metadata, chunks, summary)
                run = PublishedRun(
                    **metadata.model_dump(),
                    folder=f"runs/{token}",
                    **counts,
                    published_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
                )
                _write_json_durably(staging / "metadata.json", run.model_dump(mode="json"))
                (self.root / "runs").mkdir(exist_ok=True)
                os.rename(staging, self.root / run.folder)
                _fsync_dir(self.root / "runs")
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            runs = self._manifest_runs()
            runs[run.run_id] = run
            self._write_manifest(runs)  # the one step that makes the run visible
            self._remove_unreferenced_runs(runs)
        logger.info("published run %s (as of %s): %d scores, %d explanations", run.run_id, run.as_of, run.score_rows, run.explanation_rows)
        return run

    def _write_run_files(self, folder: Path, metadata: RunMetadata, chunks, summary) -> dict[str, int]:
        where = f"run {metadata.run_id}"
        score_stamp = {
            "run_id": metadata.run_id,
            "as_of": metadata.as_of,
            "churn_model_version": metadata.churn_model_version,
            "value_model_version": metadata.value_model_version,
        }
        run_stamp = {"run_id": metadata.run_id}
        with (
            _ChunkWriter(folder / FILES["scores"], SCORE_SCHEMA, score_stamp, where=f"{where} scores") as score_writer,
            _ChunkWriter(folder / FILES["explanations"], EXPLANATION_SCHEMA, run_stamp, where=f"{where} explanations") as explanation_writer,
        ):
            for score_chunk, explanation_chunk in chunks:
                if score_chunk is not None:
                    score_writer.write(score_chunk)
                if explanation_chunk is not None:
                    explanation_writer.write(explanation_chunk)
        _check_unique_customers(folder / FILES["scores"], where=f"{where} scores")
        with _ChunkWriter(folder / FILES["summary"], SUMMARY_SCHEMA, run_stamp, where=f"{where} segment summary") as summary_writer:
            if summary is not None:
                summary_writer.write(summary)
        return {"score_rows": score_writer.rows, "explanation_rows": explanation_writer.rows, "summary_rows": summary_writer.rows}

    @contextlib.contextmanager
    def _publish_lock(self) -> Iterator[None]:
        with open(self.root / ".publish.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released by the OS if the process dies
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _remove_leftovers(self) -> None:
        """Remove what killed publishes left: staging folders, temporary manifests, orphan run folders."""
        staging = self.root / "staging"
        if staging.exists():
            for leftover in staging.iterdir():
                logger.warning("removing leftover of an interrupted publish: %s", leftover)
                shutil.rmtree(leftover, ignore_errors=True)
        for tmp in self.root.glob(f".{MANIFEST}.*.tmp"):
            tmp.unlink(missing_ok=True)
        self._remove_unreferenced_runs(self._manifest_runs())

    def _remove_unreferenced_runs(self, runs: dict[str, PublishedRun]) -> None:
        folder = self.root / "runs"
        if not folder.exists():
            return
        referenced = {Path(r.folder).name for r in runs.values()}
        for child in folder.iterdir():
            if child.name not in referenced:
                shutil.rmtree(child, ignore_errors=True)

    def _write_manifest(self, runs: dict[str, PublishedRun]) -> None:
        body = {"format": 1, "runs": {rid: r.model_dump(mode="json") for rid, r in sorted(runs.items())}}
        _write_json_durably(self.root / MANIFEST, body)

    # ------------------------------------------------------------------ reading

    def _manifest_runs(self) -> dict[str, PublishedRun]:
        path = self.root / MANIFEST
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"{path}: store manifest is not valid JSON ({exc}); restore it or publish again into a new store folder") from exc
        return {rid: PublishedRun.model_validate(r) for rid, r in body.get("runs", {}).items()}

    def list_runs(self) -> pd.DataFrame:
        """Return one row per published run (oldest first), with its metadata and row counts."""
        runs = sorted(self._manifest_runs().values(), key=_recency)
        columns = list(PublishedRun.model_fields)
        return pd.DataFrame([r.model_dump() for r in runs], columns=columns)

    def latest_run(self) -> PublishedRun | None:
        """Return the latest published run (latest as_of, then last published), or None."""
        runs = self._manifest_runs().values()
        return max(runs, key=_recency) if runs else None

    def run_metadata(self, run_id: str | None = None, as_of: dt.date | str | None = None) -> PublishedRun:
        """Return the metadata of a run (default: the latest)."""
        return self._resolve(run_id, as_of)

    def _resolve(self, run_id: str | None, as_of: dt.date | str | None) -> PublishedRun:
        runs = self._manifest_runs()
        if not runs:
            raise RunNotFoundError(f"{self.root}: no published runs yet; run `custscore run` first")
        if run_id is not None:
            if run_id not in runs:
                raise RunNotFoundError(f"{self.root}: no run with run_id {run_id!r}; published runs: {sorted(runs)}")
            run = runs[run_id]
            if as_of is not None and run.as_of != _date(as_of):
                raise RunNotFoundError(f"{self.root}: run {run_id!r} is as of {run.as_of}, not {as_of}")
            return run
        if as_of is not None:
            day = _date(as_of)
            matching = [r for r in runs.values() if r.as_of == day]
            if not matching:
                raise RunNotFoundError(f"{self.root}: no run as of {day}; published as-of dates: {sorted({str(r.as_of) for r in runs.values()})}")
            return max(matching, key=_recency)
        return max(runs.values(), key=_recency)

    def _read(self, table: str, run_id, as_of, filters: list | None, columns: list[str] | None) -> pa.Table:
        # A concurrent republish of the same run_id may delete the files we just resolved:
        # resolve again once from the new manifest.
        for attempt in (1, 2):
            run = self._resolve(run_id, as_of)
            try:
                return pq.read_table(self.root / run.folder / FILES[table], filters=filters or None, columns=columns)
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def read_scores(
        self,
        run_id: str | None = None,
        as_of: dt.date | str | None = None,
        segment: str | None = None,
        customer_id: str | Iterable[str] | None = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame:
        """Return the score table of a run (default: latest), optionally one segment or some customers."""
        filters = _filters(segment=segment, customer_id=customer_id)
        return self._read("scores", run_id, as_of, filters, columns).to_pandas()

    def read_explanations(
        self,
        run_id: str | None = None,
        as_of: dt.date | str | None = None,
        customer_id: str | Iterable[str] | None = None,
        score: str | None = None,
    ) -> pd.DataFrame:
        """Return the explanations (one row per reason) of a run (default: latest)."""
        filters = _filters(customer_id=customer_id, score=score)
        return self._read("explanations", run_id, as_of, filters, None).to_pandas()

    def read_summary(self, run_id: str | None = None, as_of: dt.date | str | None = None) -> pd.DataFrame:
        """Return the segment and value-tier summary of a run (default: latest)."""
        return self._read("summary", run_id, as_of, None, None).to_pandas()

    # ------------------------------------------------------------------ export and SQL

    def export_scores(self, path: Path | str, run_id: str | None = None, as_of: dt.date | str | None = None) -> PublishedRun:
        """Write a run's score table (default: latest) to .csv or .parquet, chosen by the file suffix."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValueError(f"{path}: cannot export to a {suffix or 'suffix-less'} file; use a name ending in .csv or .parquet")
        run = self._resolve(run_id, as_of)
        source = pq.ParquetFile(self.root / run.folder / FILES["scores"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            _copy_batches(source, tmp, suffix)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        logger.info("exported %d scores of run %s to %s", run.score_rows, run.run_id, path)
        return run

    def connect_views(self, run_id: str | None = None, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
        """Return a DuckDB connection with views over a run (default: latest).

        Views: `scores`, `explanations`, `segment_summary` (the chosen run), `runs` (all
        published runs), `score_history` (scores of every published run). The views point at
        the run's files: reconnect after a new publish to see it.
        """
        run = self._resolve(run_id, None)
        con = duckdb.connect(database)
        for view, key in (("scores", "scores"), ("explanations", "explanations"), ("segment_summary", "summary")):
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet({_sql_text(self.root / run.folder / FILES[key])})")
        runs = self.list_runs().drop(columns=["extra"])
        con.register("_runs_frame", runs)
        con.execute("CREATE OR REPLACE TABLE runs AS SELECT * FROM _runs_frame")
        con.unregister("_runs_frame")
        files = ", ".join(_sql_text(self.root / f / FILES["scores"]) for f in runs["folder"])
        con.execute(f"CREATE OR REPLACE VIEW score_history AS SELECT * FROM read_parquet([{files}])")
        return con


# ---------------------------------------------------------------------- helpers


def _recency(run: PublishedRun) -> tuple:
    return (run.as_of, run.published_at, run.run_id)


def _date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise ValueError(f"as_of {value!r} is not a date; use YYYY-MM-DD") from exc


def _filters(**conditions: Any) -> list:
    out = []
    for column, value in conditions.items():
        if value is None:
            continue
        if isinstance(value, str):
            out.append((column, "=", value))
        else:
            out.append((column, "in", [str(v) for v in value]))
    return out


def _iter_chunks(chunks: Chunks) -> Iterator[pd.DataFrame | pa.Table]:
    if isinstance(chunks, (pd.DataFrame, pa.Table, pa.RecordBatch)):
        yield chunks
        return
    yield from chunks


class _ChunkWriter:
    """Streams chunks into one Parquet file in contract schema, counting rows; fsyncs on close."""

    def __init__(self, path: Path, schema: pa.Schema, stamp: dict[str, Any], *, where: str) -> None:
        self.path, self.schema, self.stamp, self.where = path, schema, stamp, where
        self.rows = 0
        self._chunks = 0
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _ChunkWriter:
        self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        return self

    def write(self, chunk: pd.DataFrame | pa.Table | pa.RecordBatch) -> None:
        self._chunks += 1
        where = f"{self.where}, chunk {self._chunks}"
        table = conform(_stamped(chunk, self.stamp, where=where), self.schema, where=where)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __exit__(self, *exc_info: object) -> None:
        self._writer.close()
        if exc_info[0] is None:
            _fsync_file(self.path)


def _stamped(chunk: pd.DataFrame | pa.Table, stamp: dict[str, Any], *, where: str) -> pa.Table:
    """Add the run's constant columns where missing; where present they must agree with the run."""
    table = chunk if isinstance(chunk, pa.Table) else (pa.Table.from_batches([chunk]) if isinstance(chunk, pa.RecordBatch) else pa.Table.from_pandas(chunk, preserve_index=False))
    for column, value in stamp.items():
        if column not in table.column_names:
            typ = pa.date32() if isinstance(value, dt.date) else pa.string()
            table = table.append_column(column, pa.array([value] * table.num_rows, type=typ))
        elif column == "run_id" and table.num_rows:
            found = pc.unique(table.column(column).cast(pa.string())).to_pylist()
            if found != [value]:
                raise ContractError(f"{where}: column run_id holds {found[:3]} but the run being published is {value!r}")
    return table


def _check_unique_customers(path: Path, *, where: str) -> None:
    con = duckdb.connect()
    try:
        dup = con.execute(
            f"SELECT customer_id, count(*) AS n FROM read_parquet({_sql_text(path)}) GROUP BY 1 HAVING n > 1 ORDER BY 1 LIMIT 3"
        ).fetchall()
    finally:
        con.close()
    if dup:
        raise ContractError(f"{where}: customer_id occurs more than once, e.g. {dup}; a run has one score row per customer")


def _copy_batches(source: pq.ParquetFile, target: Path, suffix: str) -> None:
    schema = source.schema_arrow
    if suffix == ".parquet":
        with pq.ParquetWriter(target, schema, compression="zstd") as writer:
            for batch in source.iter_batches(batch_size=65_536):
                writer.write_batch(batch)
    else:
        with pacsv.CSVWriter(target, schema) as writer:
            for batch in source.iter_batches(batch_size=65_536):
                writer.write_batch(batch)


def _sql_text(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_durably(path: Path, body: dict) -> None:
    """Write JSON to a temporary file, fsync it, then rename it over `path` in one atomic step."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(body, handle, ensure_ascii=False, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)

