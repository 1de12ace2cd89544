"""The embedded score store: all-or-nothing publishing of scoring runs, reading back, export.

Layout under `root` (the custscore home's store folder)::

    manifest.json                  the catalog: which runs exist and where their files are
    runs/<run_id>__<token>/        one folder per published version of a run:
        scores/numbers.parquet     every score column but the texts, one row per customer
        scores/texts-NNNNN.parquet customer_id + reasons, reason_text_en, reason_text_zh; the
                                   parts, in name order, hold the rows of numbers.parquet in order
        explanations/part-NNNNN.parquet
        segment_summary.parquet, metadata.json
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
`delete_run` removes a run the same way: the manifest without it is renamed into place, then its
folder is deleted; deleting the latest run needs `allow_latest`. A reader that resolved a run
just before it was deleted or republished finds its files gone and resolves once more from the
new manifest. Publishers are serialised with an fcntl lock (POSIX only). SQL users get DuckDB views over the current
files with `connect_views()`.

Why the score table is split in two: its reason texts (JSON and two sentences, ~3 KB per
customer) are known chunk by chunk while scoring, but the segment columns only once the
whole run is scored (tiers are cumulative shares). `publish_parts` therefore takes the
scoring's part files as they are (hard links, no re-encoding of millions of texts) and writes
only the small numbers file; readers put the two back together by position, and every read
and export returns the one score table of the contract. Runs published by earlier versions
(a single scores.parquet / explanations.parquet) are still read.

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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from features.safe_csv import safe_text_table
from serving.score_table import (
    EXPLANATION_SCHEMA,
    SCORE_NUMBERS_SCHEMA,
    SCORE_SCHEMA,
    SCORE_TEXT_COLUMNS,
    SCORE_TEXTS_SCHEMA,
    SUMMARY_SCHEMA,
    ContractError,
    conform,
)

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FILES = {"scores": "scores.parquet", "explanations": "explanations.parquet", "summary": "segment_summary.parquet"}  # summary; scores/explanations of runs before the split layout
SCORE_NUMBERS = "scores/numbers.parquet"
SCORE_TEXTS = "scores/texts-{:05d}.parquet"
EXPLANATION_PART = "explanations/part-{:05d}.parquet"
PART_COMPRESSION = "zstd"
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


class LatestRunDeletionError(ValueError):
    """Deleting this run would change which run is latest (or empty the store), and that was not allowed."""


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
        return self._publish(metadata, lambda staging: self._write_run_files(staging, metadata, chunks, summary))

    def publish_parts(
        self,
        metadata: RunMetadata,
        numbers: pd.DataFrame | pa.Table,
        text_parts: list[Path],
        explanation_parts: list[Path],
        summary: pd.DataFrame | pa.Table | None = None,
    ) -> PublishedRun:
        """Publish a run whose texts and explanations are already in part files (the fast path of scoring).

        `numbers` holds every score column but the texts (SCORE_NUMBERS_SCHEMA; the run's
        constant columns are added where missing), one row per customer, in the order of the
        rows of `text_parts` (SCORE_TEXTS_SCHEMA) read one after the other. Part files in
        contract schema are hard-linked into the run, not rewritten (others are converted),
        so the caller may delete them afterwards and a retried publish still finds them; it
        must not rewrite them in place (a linked file is the published file): delete first.
        """

        def write(staging: Path) -> dict[str, int]:
            where = f"run {metadata.run_id}"
            numbers_table = conform(_stamped(numbers, _score_stamp(metadata), where=f"{where} scores"), SCORE_NUMBERS_SCHEMA,
                                    where=f"{where} scores")
            _check_unique_ids(numbers_table.column("customer_id"), where=f"{where} scores")
            (staging / "scores").mkdir()
            (staging / "explanations").mkdir()
            texts = [_place_part(path, staging / SCORE_TEXTS.format(i), SCORE_TEXTS_SCHEMA, None, where=f"{where} score texts")
                     for i, path in enumerate(text_parts)]
            _check_texts_align(numbers_table.column("customer_id"), texts, where=f"{where} score texts")
            _write_table(numbers_table, staging / SCORE_NUMBERS)
            explanation_rows = sum(
                _place_part(path, staging / EXPLANATION_PART.format(i), EXPLANATION_SCHEMA, metadata.run_id,
                            where=f"{where} explanations")[1]
                for i, path in enumerate(explanation_parts)
            )
            summary_rows = self._write_summary(staging, metadata, summary)
            _fsync_dir(staging / "scores")
            _fsync_dir(staging / "explanations")
            return {"score_rows": numbers_table.num_rows, "explanation_rows": explanation_rows, "summary_rows": summary_rows}

        return self._publish(metadata, write)

    def _publish(self, metadata: RunMetadata, write_files: Callable[[Path], dict[str, int]]) -> PublishedRun:
        """Write a run's files into staging, move them under runs/, then switch the manifest (all or nothing)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._publish_lock():
            self._remove_leftovers()
            token = f"{metadata.run_id}__{uuid.uuid4().hex[:12]}"
            staging = self.root / "staging" / token
            staging.mkdir(parents=True)
            try:
                counts = write_files(staging)
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
        (folder / "scores").mkdir()
        (folder / "explanations").mkdir()
        run_stamp = {"run_id": metadata.run_id}
        with (
            _ChunkWriter(folder / SCORE_NUMBERS, SCORE_SCHEMA, _score_stamp(metadata), where=f"{where} scores",
                         split=(SCORE_NUMBERS_SCHEMA, folder / SCORE_TEXTS.format(0), SCORE_TEXTS_SCHEMA)) as score_writer,
            _ChunkWriter(folder / EXPLANATION_PART.format(0), EXPLANATION_SCHEMA, run_stamp, where=f"{where} explanations") as explanation_writer,
        ):
            for score_chunk, explanation_chunk in chunks:
                if score_chunk is not None:
                    score_writer.write(score_chunk)
                if explanation_chunk is not None:
                    explanation_writer.write(explanation_chunk)
        _check_unique_ids(pq.read_table(folder / SCORE_NUMBERS, columns=["customer_id"]).column("customer_id"), where=f"{where} scores")
        summary_rows = self._write_summary(folder, metadata, summary)
        return {"score_rows": score_writer.rows, "explanation_rows": explanation_writer.rows, "summary_rows": summary_rows}

    @staticmethod
    def _write_summary(folder: Path, metadata: RunMetadata, summary: pd.DataFrame | pa.Table | None) -> int:
        where = f"run {metadata.run_id} segment summary"
        with _ChunkWriter(folder / FILES["summary"], SUMMARY_SCHEMA, {"run_id": metadata.run_id}, where=where) as writer:
            if summary is not None:
                writer.write(summary)
        return writer.rows

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

    # ------------------------------------------------------------------ deleting

    def delete_run(self, run_id: str, *, allow_latest: bool = False) -> PublishedRun:
        """Remove a published run: the manifest switch hides it at once, then its files go.

        Like a publish, one atomic manifest rename is the switch, under the publish lock:
        readers see the store with the run or without it. Deleting the latest run (the
        only one included) changes what every default read returns, so it needs
        `allow_latest`; otherwise LatestRunDeletionError says what it would do.
        """
        if not (self.root / MANIFEST).exists():
            raise RunNotFoundError(f"{self.root}: no published runs yet, so no run {run_id!r} to delete")
        with self._publish_lock():
            runs = self._manifest_runs()
            if run_id not in runs:
                raise RunNotFoundError(f"{self.root}: no run with run_id {run_id!r}; published runs: {sorted(runs) or 'none'}")
            run = runs.pop(run_id)
            if not allow_latest:
                _refuse_latest_deletion(run, runs)
            self._write_manifest(runs)  # the one step that hides the run
            self._remove_unreferenced_runs(runs)
        logger.info("deleted run %s (as of %s, %d scores)", run.run_id, run.as_of, run.score_rows)
        return run

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
                return _read_run_table(self.root / run.folder, table, filters, columns)
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
        """Write a run's score table (default: latest) to .csv or .parquet, chosen by the file suffix.

        In CSV, a text cell beginning with ``=``, ``+``, ``-``, ``@``, tab, carriage return or
        ``'`` gets a ``'`` in front so a spreadsheet shows it instead of evaluating it (see
        `features.safe_csv`; remove one leading ``'`` to get the text back). Parquet is unchanged.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValueError(f"{path}: cannot export to a {suffix or 'suffix-less'} file; use a name ending in .csv or .parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            # As in _read: a run deleted or republished while exported is resolved once more.
            for attempt in (1, 2):
                run = self._resolve(run_id, as_of)
                try:
                    _write_score_tables(_iter_score_tables(self.root / run.folder), tmp, suffix)
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
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
        folder = self.root / run.folder
        con.execute(f"CREATE OR REPLACE VIEW scores AS {_scores_sql(folder)}")
        con.execute(f"CREATE OR REPLACE VIEW explanations AS {_explanations_sql(folder)}")
        con.execute(f"CREATE OR REPLACE VIEW segment_summary AS SELECT * FROM read_parquet({_sql_text(folder / FILES['summary'])})")
        runs = self.list_runs().drop(columns=["extra"])
        con.register("_runs_frame", runs)
        con.execute("CREATE OR REPLACE TABLE runs AS SELECT * FROM _runs_frame")
        con.unregister("_runs_frame")
        history = " UNION ALL ".join(f"({_scores_sql(self.root / f)})" for f in runs["folder"])
        con.execute(f"CREATE OR REPLACE VIEW score_history AS {history}")
        return con


# ---------------------------------------------------------------------- helpers


def _recency(run: PublishedRun) -> tuple:
    return (run.as_of, run.published_at, run.run_id)


def _refuse_latest_deletion(run: PublishedRun, remaining: dict[str, PublishedRun]) -> None:
    """Raise LatestRunDeletionError when `run` is the latest of the runs it is removed from."""
    if not remaining:
        raise LatestRunDeletionError(f"run {run.run_id} (as of {run.as_of}) is the only published run; "
                                     "deleting it leaves the store with no run to read or export")
    successor = max(remaining.values(), key=_recency)
    if _recency(run) > _recency(successor):
        raise LatestRunDeletionError(f"run {run.run_id} (as of {run.as_of}) is the latest run; deleting it makes "
                                     f"run {successor.run_id} (as of {successor.as_of}) the latest")


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
    """Streams chunks into Parquet in contract schema, counting rows; fsyncs on close.

    With `split` = (schema of `path`, texts path, texts schema), each conformed chunk is
    divided by columns between the two files (the store's score layout).
    """

    def __init__(self, path: Path, schema: pa.Schema, stamp: dict[str, Any], *, where: str,
                 split: tuple[pa.Schema, Path, pa.Schema] | None = None) -> None:
        self.path, self.schema, self.stamp, self.where, self.split = path, schema, stamp, where, split
        self.rows = 0
        self._chunks = 0
        self._writers: list[tuple[pq.ParquetWriter, Path, pa.Schema]] = []

    def __enter__(self) -> _ChunkWriter:
        targets = [(self.path, self.schema)] if self.split is None else [(self.path, self.split[0]), (self.split[1], self.split[2])]
        self._writers = [(pq.ParquetWriter(path, schema, compression=PART_COMPRESSION), path, schema) for path, schema in targets]
        return self

    def write(self, chunk: pd.DataFrame | pa.Table | pa.RecordBatch) -> None:
        self._chunks += 1
        where = f"{self.where}, chunk {self._chunks}"
        table = conform(_stamped(chunk, self.stamp, where=where), self.schema, where=where)
        for writer, _path, schema in self._writers:
            writer.write_table(table.select(schema.names))
        self.rows += table.num_rows

    def __exit__(self, *exc_info: object) -> None:
        for writer, path, _schema in self._writers:
            writer.close()
            if exc_info[0] is None:
                _fsync_file(path)


def _score_stamp(metadata: RunMetadata) -> dict[str, Any]:
    """The score columns that are the same on every row of a run."""
    return {
        "run_id": metadata.run_id,
        "as_of": metadata.as_of,
        "churn_model_version": metadata.churn_model_version,
        "value_model_version": metadata.value_model_version,
    }


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


def _check_unique_ids(ids: pa.ChunkedArray, *, where: str) -> None:
    if pc.count_distinct(ids).as_py() == len(ids):
        return
    counts = pd.Series(ids.to_numpy(zero_copy_only=False)).value_counts()
    dup = [(k, int(v)) for k, v in counts[counts > 1].sort_index().head(3).items()]
    raise ContractError(f"{where}: customer_id occurs more than once, e.g. {dup}; a run has one score row per customer")


def _place_part(source: Path, target: Path, schema: pa.Schema, run_id: str | None, *, where: str) -> tuple[Path, int]:
    """Put a part file into a run: a hard link when it is already in contract form, else a converted copy."""
    where = f"{where}, {source}"
    try:
        file = pq.ParquetFile(source)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ContractError(f"{where}: cannot read the part file ({exc}); score the run again") from exc
    rows = file.metadata.num_rows
    if file.schema_arrow.equals(schema, check_metadata=False) and (run_id is None or _holds_only_run(file, run_id, where=where)):
        try:
            os.link(source, target)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(source, target)
        _fsync_file(target)
        return target, rows
    stamp = {} if run_id is None else {"run_id": run_id}
    _write_table(conform(_stamped(file.read(), stamp, where=where), schema, where=where), target)
    return target, rows


def _holds_only_run(file: pq.ParquetFile, run_id: str, *, where: str) -> bool:
    """True if every row's run_id is `run_id`, by the row-group statistics (or reading the column)."""
    index = file.schema_arrow.get_field_index("run_id")
    for group in range(file.metadata.num_row_groups):
        meta = file.metadata.row_group(group)
        stats = meta.column(index).statistics
        if meta.num_rows and not (stats is not None and stats.has_min_max and stats.min == run_id == stats.max and stats.null_count == 0):
            found = pc.unique(file.read_row_group(group, columns=["run_id"]).column("run_id")).to_pylist()
            if found != [run_id]:
                raise ContractError(f"{where}: column run_id holds {found[:3]} but the run being published is {run_id!r}")
    return True


def _check_texts_align(ids: pa.ChunkedArray, parts: list[tuple[Path, int]], *, where: str) -> None:
    """The text parts, read in order, must hold exactly the customers of the numbers, row by row."""
    total = sum(rows for _path, rows in parts)
    if total != len(ids):
        raise ContractError(f"{where}: the text parts hold {total} rows but the scores have {len(ids)}; pass the parts of the same scoring run")
    offset = 0
    for path, rows in parts:
        part_ids = pq.read_table(path, columns=["customer_id"]).column("customer_id")
        if not part_ids.equals(ids.slice(offset, rows)):
            raise ContractError(f"{where}: {path} does not hold the customers of score rows {offset}..{offset + rows - 1} in the same order; "
                                "pass the numbers and the parts of the same scoring run, in order")
        offset += rows


def _write_table(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression=PART_COMPRESSION)
    _fsync_file(path)


def _score_text_paths(folder: Path) -> list[Path]:
    return sorted((folder / "scores").glob("texts-*.parquet"))


def _explanation_paths(folder: Path) -> list[Path]:
    return sorted((folder / "explanations").glob("part-*.parquet"))


def _is_legacy(folder: Path, table: str) -> bool:
    """True for runs published before the split layout (one Parquet file per table)."""
    if not folder.exists():
        raise FileNotFoundError(folder)
    return (folder / FILES[table]).exists()


def _read_run_table(folder: Path, table: str, filters: list | None, columns: list[str] | None) -> pa.Table:
    """One table of a published run, as the contract defines it, whatever the run's file layout."""
    if table == "summary" or _is_legacy(folder, table):
        return pq.read_table(folder / FILES[table], filters=filters or None, columns=columns)
    expression = pq.filters_to_expression(filters) if filters else None
    if table == "explanations":
        paths = _explanation_paths(folder)
        if not paths:
            empty = EXPLANATION_SCHEMA.empty_table()
            return empty.select(columns) if columns else empty
        return pads.dataset([str(p) for p in paths], schema=EXPLANATION_SCHEMA, format="parquet").to_table(columns=columns, filter=expression)
    return _read_split_scores(folder, expression, columns)


def _read_split_scores(folder: Path, expression: pads.Expression | None, columns: list[str] | None) -> pa.Table:
    """Score rows (all, or those matching `expression` on the number columns) with their texts put back."""
    numbers = pq.read_table(folder / SCORE_NUMBERS)
    total_rows = numbers.num_rows
    positions = None
    if expression is not None:
        numbers = numbers.append_column("__row", pa.array(np.arange(numbers.num_rows, dtype=np.int64))).filter(expression)
        positions = numbers.column("__row").to_numpy()
        numbers = numbers.drop_columns(["__row"])
    wanted = [c for c in SCORE_TEXT_COLUMNS if columns is None or c in columns]
    texts = _text_columns(folder, wanted, positions, total_rows) if wanted else {}
    names = list(columns) if columns else list(SCORE_SCHEMA.names)
    return pa.table({c: texts[c] if c in texts else numbers.column(c) for c in names})


def _text_columns(folder: Path, columns: list[str], positions: np.ndarray | None,
                  total_rows: int) -> dict[str, pa.ChunkedArray]:
    """Text columns of the score rows at `positions` (sorted; None = all), read part by part."""
    pieces: dict[str, list[pa.Array]] = {c: [] for c in columns}
    offset = 0
    for path in _score_text_paths(folder):
        file = pq.ParquetFile(path)
        rows = file.metadata.num_rows
        lo, hi = (0, rows) if positions is None else np.searchsorted(positions, [offset, offset + rows])
        if hi > lo:
            part = file.read(columns=columns)
            if positions is not None:
                part = part.take(pa.array(positions[lo:hi] - offset))
            for c in columns:
                pieces[c].extend(part.column(c).chunks)
        offset += rows
    _check_parts_complete(folder, offset, total_rows)
    return {c: pa.chunked_array(pieces[c], type=SCORE_SCHEMA.field(c).type) for c in columns}


def _iter_score_tables(folder: Path) -> Iterator[pa.Table]:
    """The score table of a run in contract columns, one part at a time (flat memory for exports)."""
    if _is_legacy(folder, "scores"):
        source = pq.ParquetFile(folder / FILES["scores"])
        for batch in source.iter_batches(batch_size=65_536):
            yield pa.Table.from_batches([batch])
        return
    numbers = pq.read_table(folder / SCORE_NUMBERS)
    offset = 0
    for path in _score_text_paths(folder):
        texts = pq.read_table(path)
        part = numbers.slice(offset, texts.num_rows)
        offset += texts.num_rows
        yield pa.table({c: texts.column(c) if c in SCORE_TEXT_COLUMNS else part.column(c) for c in SCORE_SCHEMA.names})
    _check_parts_complete(folder, offset, numbers.num_rows)
    if offset == 0:
        yield SCORE_SCHEMA.empty_table()


def _check_parts_complete(folder: Path, text_rows: int, score_rows: int) -> None:
    """A run's text parts hold every score row; fewer means its folder went away while being read."""
    if text_rows != score_rows:
        raise FileNotFoundError(f"{folder}: the run's text parts vanished while being read "
                                "(the run was deleted or republished meanwhile)")


def _write_score_tables(tables: Iterator[pa.Table], target: Path, suffix: str) -> None:
    """Parquet as stored; CSV with text cells a spreadsheet cannot run as formulas (features.safe_csv)."""
    writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    try:
        for table in tables:
            if suffix == ".csv":
                table = safe_text_table(table)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema, compression="zstd") if suffix == ".parquet" else pacsv.CSVWriter(target, table.schema)
            for batch in table.to_batches(max_chunksize=65_536):
                writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()


def _scores_sql(folder: Path) -> str:
    """SQL giving a run's score table (the text parts joined back on customer_id)."""
    if _is_legacy(folder, "scores"):
        return f"SELECT * FROM read_parquet({_sql_text(folder / FILES['scores'])})"
    texts = _score_text_paths(folder)
    numbers = f"read_parquet({_sql_text(folder / SCORE_NUMBERS)})"
    if not texts:
        return "SELECT " + ", ".join(f"n.{c}" if c not in SCORE_TEXT_COLUMNS else f"NULL::VARCHAR AS {c}" for c in SCORE_SCHEMA.names) + f" FROM {numbers} n"
    select = ", ".join(f"{'t' if c in SCORE_TEXT_COLUMNS else 'n'}.{c}" for c in SCORE_SCHEMA.names)
    parts = ", ".join(_sql_text(p) for p in texts)
    return f"SELECT {select} FROM {numbers} n JOIN read_parquet([{parts}]) t ON n.customer_id = t.customer_id"


def _explanations_sql(folder: Path) -> str:
    if _is_legacy(folder, "explanations"):
        return f"SELECT * FROM read_parquet({_sql_text(folder / FILES['explanations'])})"
    paths = _explanation_paths(folder)
    if not paths:
        types = {pa.string(): "VARCHAR", pa.int16(): "SMALLINT", pa.float64(): "DOUBLE"}
        return "SELECT " + ", ".join(f"NULL::{types[f.type]} AS {f.name}" for f in EXPLANATION_SCHEMA) + " WHERE false"
    return "SELECT * FROM read_parquet([" + ", ".join(_sql_text(p) for p in paths) + "])"


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

