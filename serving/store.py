"""The Parquet score store, the first `ScoreSink`: all-or-nothing publishing of scored runs, reading back, export.

Layout under `root` (the custscore home's store folder)::

    manifest.json                  the catalog: which runs exist and where their files are
    runs/<run_id>__<token>/        one folder per published version of a run (serving/store_files.py)
    staging/<run_id>__<token>/     a publish in progress (or killed): never read
    .publish.lock                  serialises publishers (fcntl lock)

Why Parquet files plus an atomic manifest, not a DuckDB database file: a DuckDB file is
locked by the process writing to it, so while a publish runs (minutes for millions of
rows) readers in other processes - the CLI, a CRM export, a notebook - cannot even open
it. Here a publish writes a run's files into a staging folder nobody reads (the reason texts
scoring already wrote chunk by chunk are hard-linked, not rewritten, so memory stays flat),
moves the folder under runs/, and only then makes it visible with one atomic step: the new
manifest is written to a temporary file, fsynced, and renamed over manifest.json
(`os.replace`). A process killed at any point before that rename leaves the previous
manifest, hence the previous runs, untouched and readable; after it, the new run is complete.
Readers open whichever manifest is current and never see a half-written run. Leftovers of
killed publishes (staging folders, temporary manifests, unreferenced run folders) are removed
by the next publish. Re-publishing a run_id replaces that run (no duplicate rows); the
replaced files are deleted after the switch.
`delete_run` removes a run the same way: the manifest without it is renamed into place, then its
folder is deleted; deleting the latest run needs `allow_latest`. A reader that resolved a run
just before it was deleted or republished finds its files gone and resolves once more from the
new manifest. Publishers are serialised with an fcntl lock (POSIX only). SQL users get DuckDB views over the current
files with `connect_views()`.

"Latest run" = the run with the latest as_of, and among those the last published.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import duckdb
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from serving.export import ExportOptions, check_export_target, write_export
from serving.reading import as_of_date, equality_filters
from serving.score_table import SCORE_SCHEMA, ContractError
from serving.scored_run import ScoredRun
from serving.store_files import (
    SUMMARY_FILE,
    explanation_paths,
    explanations_sql,
    fsync_dir,
    iter_score_tables,
    link_run_files,
    read_named_table,
    read_run_table,
    scores_sql,
    sql_text,
    write_json_durably,
    write_named_table,
    write_run_files,
)
from serving.store_index import PageFilter, RunIndex, RunIndexCache, scan_rows

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_RUN_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"


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
    tables: dict[str, int] = {}  # the run's further tables and their rows


class RunNotFoundError(LookupError):
    """No published run matches the run_id / as_of asked for."""


class LatestRunDeletionError(ValueError):
    """Deleting this run would change which run is latest (or empty the store), and that was not allowed."""


class ScoreStore:
    """Parquet files per run made visible by an atomic manifest switch (see module docstring)."""

    def __init__(self, root: Path | str, *, index_runs: bool = False) -> None:
        """`index_runs`: keep the last runs read indexed in memory (a long-lived reader such as the read API;
        serving/store_index.py) so reading one customer or one page costs milliseconds at millions of rows."""
        self.root = Path(root)
        self.index_runs = index_runs
        self._indexes = RunIndexCache(size=2)
        self._latest_folder: Path | None = None  # the run folder the last read of the latest run used
        self._manifest_cache: tuple[tuple[int, int, int], dict[str, PublishedRun]] | None = None

    @property
    def reads_from_memory(self) -> bool:
        """True when one customer's read is answered from an in-memory index (the read API then skips its thread pool)."""
        return self.index_runs

    # ------------------------------------------------------------------ publishing

    def publish(self, metadata: RunMetadata, run: ScoredRun) -> PublishedRun:
        """Write a scored run's tables and make them visible at once; replaces an earlier run with the same run_id.

        Part files of the run are hard-linked, not rewritten, so the caller may delete them
        afterwards and a retried publish still finds them; it must not rewrite them in place
        (a linked file is the published file): delete first.
        """
        if run.run_id is not None and run.run_id != metadata.run_id:
            raise ContractError(f"run {metadata.run_id}: the scored run is {run.run_id!r}; publish it under its own run_id")
        return self._publish(metadata, lambda staging: write_run_files(staging, _score_stamp(metadata), run))

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
                write_json_durably(staging / "metadata.json", run.model_dump(mode="json"))
                (self.root / "runs").mkdir(exist_ok=True)
                os.rename(staging, self.root / run.folder)
                fsync_dir(self.root / "runs")
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            runs = self._manifest_runs()
            runs[run.run_id] = run
            self._write_manifest(runs)  # the one step that makes the run visible
            self._remove_unreferenced_runs(runs)
        logger.info("published run %s (as of %s): %d scores, %d explanations", run.run_id, run.as_of, run.score_rows, run.explanation_rows)
        return run

    def attach_table(self, run_id: str, name: str, table: pa.Table | pd.DataFrame) -> PublishedRun:
        """Add a table to a published run, or replace its table of that name, all or nothing.

        For what is known only later (the backtest of a run whose horizons have passed). The run's
        files are hard-linked into a new version of its folder beside the new table, and the
        manifest switch makes that version current: readers see the run with or without the
        table, never a half-written file. The run keeps its publish time, so which run is latest
        does not change.
        """
        table = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
        with self._publish_lock():
            runs = self._manifest_runs()
            if run_id not in runs:
                raise RunNotFoundError(f"{self.root}: no run with run_id {run_id!r}; published runs: {sorted(runs) or 'none'}")
            before = runs[run_id]
            token = f"{run_id}__{uuid.uuid4().hex[:12]}"
            staging = self.root / "staging" / token
            staging.mkdir(parents=True)
            try:
                link_run_files(self.root / before.folder, staging)
                rows = write_named_table(staging, name, table, run_id)
                run = before.model_copy(update={"folder": f"runs/{token}", "tables": {**before.tables, name: rows}})
                write_json_durably(staging / "metadata.json", run.model_dump(mode="json"))
                os.rename(staging, self.root / run.folder)
                fsync_dir(self.root / "runs")
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            runs[run_id] = run
            self._write_manifest(runs)  # the one step that makes the table visible
            self._remove_unreferenced_runs(runs)
        logger.info("run %s: table %s attached (%d rows)", run_id, name, rows)
        return run

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
        write_json_durably(self.root / MANIFEST, body)

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
            stat = path.stat()
        except FileNotFoundError:
            return {}
        # The manifest is only ever replaced by a rename (a new inode), so an unchanged stat is an
        # unchanged catalog: a reader answering many requests parses it once per publish.
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._manifest_cache
        if cached is not None and cached[0] == signature:
            return dict(cached[1])
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"{path}: store manifest is not valid JSON ({exc}); restore it or publish again into a new store folder") from exc
        runs = {rid: PublishedRun.model_validate(r) for rid, r in body.get("runs", {}).items()}
        self._manifest_cache = (signature, runs)
        return dict(runs)

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
            if as_of is not None and run.as_of != as_of_date(as_of):
                raise RunNotFoundError(f"{self.root}: run {run_id!r} is as of {run.as_of}, not {as_of}")
            return run
        if as_of is not None:
            day = as_of_date(as_of)
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
                return read_run_table(self.root / run.folder, table, filters, columns)
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
        if customer_id is not None and segment is None:
            ids = [customer_id] if isinstance(customer_id, str) else [str(c) for c in customer_id]
            latest = run_id is None and as_of is None
            indexed = self._with_run(run_id, as_of, lambda run: self._indexed_rows(run, ids, columns, latest=latest))
            if indexed is not None:
                return indexed.to_pandas()
        filters = equality_filters(segment=segment, customer_id=customer_id)
        return self._read("scores", run_id, as_of, filters, columns).to_pandas()

    def read_scores_page(self, run_id: str | None = None, *, segment: str | None = None, value_tier: str | None = None,
                         min_value: float | None = None, min_p_churn: float | None = None,
                         after_customer_id: str | None = None, limit: int = 100,
                         columns: list[str] | None = None) -> pd.DataFrame:
        """Up to `limit` score rows of a run (default: latest) in customer_id order, strictly after `after_customer_id`.

        Filters: segment, value tier, clv >= `min_value`, p_churn >= `min_p_churn`. Paging by the last
        customer_id seen, not by offset, so a page never repeats or skips rows of the same run.
        """
        if limit < 0:
            raise ValueError(f"limit {limit} is negative; ask for 0 or more rows")
        where = PageFilter(segment, value_tier, min_value, min_p_churn)
        page = self._with_run(run_id, None, lambda run: self._index(run).page(where, after_customer_id, limit, columns))
        return page.to_pandas()

    def customer_history(self, customer_id: str, columns: list[str] | None = None) -> pd.DataFrame:
        """One score row per published run holding the customer, oldest run first (run_id and as_of always included)."""
        names = list(columns) if columns else list(SCORE_SCHEMA.names)
        names = [*[c for c in ("run_id", "as_of") if c not in names], *names]
        rows = []
        for run in sorted(self._manifest_runs().values(), key=_recency):
            try:
                index = self._indexes.peek(self.root / run.folder)
                found = index.rows([customer_id], names) if index else scan_rows(self.root / run.folder, customer_id, names)
            except FileNotFoundError:
                continue  # deleted or republished meanwhile: not a run of the current catalog any more
            rows.append(found)
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        return pa.concat_tables(rows).to_pandas()

    def _index(self, run: PublishedRun) -> RunIndex:
        folder = self.root / run.folder
        return self._indexes.get(folder) if self.index_runs else (self._indexes.peek(folder) or RunIndex(folder))

    def _indexed_rows(self, run: PublishedRun, ids: list[str], columns: list[str] | None, *,
                      latest: bool = False) -> pa.Table | None:
        """The rows of these customers through the run's index; None when the run is not indexed (read by scanning).

        `latest`: the caller asked for the latest run, so while a newly published latest run is
        being indexed the one before it may answer (see `_previous_latest_while_indexing`).
        """
        folder = self.root / run.folder
        index = self._indexes.peek(folder)
        if self.index_runs:
            if index is None and latest:
                index = self._previous_latest_while_indexing(folder)
            if index is None:
                index = self._indexes.get(folder)
            if latest and index.folder == folder:
                self._latest_folder = folder
        return None if index is None else index.rows(ids, columns)

    def _previous_latest_while_indexing(self, folder: Path) -> RunIndex | None:
        """The index of the latest run read before, while the new latest run is indexed in the background.

        Indexing a run of a million customers takes a second or two (more on a busy machine); every
        reader waiting for it would stall the API for that long after each publish. Answering from
        the previous latest run meanwhile keeps reads at milliseconds: a reader sees the old run or
        the new one (each row says which), never a mix. None when there is no previous index or its
        files are gone (a republish of the same run_id): then the caller waits for the new index.
        """
        previous = self._latest_folder
        index = self._indexes.peek(previous) if previous is not None else None
        if index is None or not previous.exists():
            return None
        return index if self._indexes.build_in_background(folder) else None

    def _with_run(self, run_id: str | None, as_of: dt.date | str | None, read: Callable[[PublishedRun], Any]) -> Any:
        """`read(run)` on the resolved run; resolved once more if its files vanish (deleted or republished meanwhile)."""
        for attempt in (1, 2):
            run = self._resolve(run_id, as_of)
            try:
                return read(run)
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def read_explanations(
        self,
        run_id: str | None = None,
        as_of: dt.date | str | None = None,
        customer_id: str | Iterable[str] | None = None,
        score: str | None = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame:
        """Return the explanations (one row per reason) of a run (default: latest), all columns or `columns`."""
        filters = equality_filters(customer_id=customer_id, score=score)
        return self._read("explanations", run_id, as_of, filters, columns).to_pandas()

    def explanation_files(self, run_id: str | None = None) -> list[Path]:
        """The Parquet part files of a run's explanations (default: latest), in order, for readers that go part by part.

        A run deleted or republished while they are read is gone with its files (FileNotFoundError).
        """
        return explanation_paths(self.root / self._resolve(run_id, None).folder)

    def read_summary(self, run_id: str | None = None, as_of: dt.date | str | None = None) -> pd.DataFrame:
        """Return the segment and value-tier summary of a run (default: latest)."""
        return self._read("summary", run_id, as_of, None, None).to_pandas()

    def read_table(self, name: str, run_id: str | None = None, as_of: dt.date | str | None = None,
                   columns: list[str] | None = None) -> pd.DataFrame | None:
        """A further table of a run (default: latest), all columns or `columns`; None when the run has none of that name."""
        for attempt in (1, 2):  # as in _read: a run republished meanwhile is resolved once more
            run = self._resolve(run_id, as_of)
            try:
                table = read_named_table(self.root / run.folder, name, columns)
                return None if table is None else table.to_pandas()
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ export and SQL

    def export_scores(self, path: Path | str, run_id: str | None = None, as_of: dt.date | str | None = None) -> PublishedRun:
        """Write a run's score table (default: latest) to .csv or .parquet, chosen by the file suffix.

        In CSV, a text cell beginning with ``=``, ``+``, ``-``, ``@``, tab, carriage return or
        ``'`` gets a ``'`` in front so a spreadsheet shows it instead of evaluating it (see
        `features.safe_csv`; remove one leading ``'`` to get the text back). Parquet is unchanged.
        """
        return self.export(path, run_id, as_of)[0]

    def export(self, path: Path | str, run_id: str | None = None, as_of: dt.date | str | None = None,
               options: ExportOptions | None = None) -> tuple[PublishedRun, int]:
        """`export_scores` with some segments, tiers or columns, or an Excel-friendly CSV (serving/export.py); the rows written."""
        path = Path(path)
        options = options or ExportOptions()
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValueError(f"{path}: cannot export to a {suffix or 'suffix-less'} file; use a name ending in .csv or .parquet")
        check_export_target(path, options)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            # As in _read: a run deleted or republished while exported is resolved once more.
            for attempt in (1, 2):
                run = self._resolve(run_id, as_of)
                try:
                    rows = write_export(iter_score_tables(self.root / run.folder), tmp, suffix, options)
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        logger.info("exported %d scores of run %s to %s", rows, run.run_id, path)
        return run, rows

    def connect_views(self, run_id: str | None = None, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
        """Return a DuckDB connection with views over a run (default: latest).

        Views: `scores`, `explanations`, `segment_summary` (the chosen run), `runs` (all
        published runs), `score_history` (scores of every published run). The views point at
        the run's files: reconnect after a new publish to see it.
        """
        run = self._resolve(run_id, None)
        con = duckdb.connect(database)
        folder = self.root / run.folder
        con.execute(f"CREATE OR REPLACE VIEW scores AS {scores_sql(folder)}")
        con.execute(f"CREATE OR REPLACE VIEW explanations AS {explanations_sql(folder)}")
        con.execute(f"CREATE OR REPLACE VIEW segment_summary AS SELECT * FROM read_parquet({sql_text(folder / SUMMARY_FILE)})")
        runs = self.list_runs().drop(columns=["extra"])
        con.register("_runs_frame", runs)
        con.execute("CREATE OR REPLACE TABLE runs AS SELECT * FROM _runs_frame")
        con.unregister("_runs_frame")
        history = " UNION ALL ".join(f"({scores_sql(self.root / f)})" for f in runs["folder"])
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


def _score_stamp(metadata: RunMetadata) -> dict[str, Any]:
    """The score columns that are the same on every row of a run."""
    return {
        "run_id": metadata.run_id,
        "as_of": metadata.as_of,
        "churn_model_version": metadata.churn_model_version,
        "value_model_version": metadata.value_model_version,
    }
