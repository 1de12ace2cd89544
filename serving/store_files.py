"""The files of one published run of the Parquet score store: writing them into staging, reading them back.

A run folder holds `scores/numbers.parquet` (every score column but the texts, one row per
customer), `scores/texts-NNNNN.parquet` (customer_id and the reason texts; read in name order
they hold the rows of the numbers file in order), `explanations/part-NNNNN.parquet`,
`segment_summary.parquet`, the run's further tables as `tables/<name>.parquet` and `metadata.json`.
`write_run_files` puts a `ScoredRun` there:
part files already in contract form are hard-linked (no re-encoding of millions of texts),
tables are written. Readers put numbers and texts back together, so every read and export
returns the one score table of the contract.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

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
from serving.scored_run import Part, ScoredRun

SUMMARY_FILE = "segment_summary.parquet"
SCORE_NUMBERS = "scores/numbers.parquet"
SCORE_TEXTS = "scores/texts-{:05d}.parquet"
EXPLANATION_PART = "explanations/part-{:05d}.parquet"
RUN_TABLE = "tables/{}.parquet"
RUN_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PART_COMPRESSION = "zstd"
# Row groups the store writes: a reader of one customer (serving/store_index.py) reads one row
# group of the texts (large: small groups) and scans customer_id of the numbers group by group.
TEXT_ROW_GROUP_ROWS = 512
NUMBER_ROW_GROUP_ROWS = 65_536


def write_run_files(staging: Path, stamp: dict[str, Any], run: ScoredRun) -> dict[str, Any]:
    """Write (or link) the run's tables into the staging folder; the row counts written.

    `stamp`: the columns every score row of the run has (run_id, as_of, model versions).
    """
    run_id = stamp["run_id"]
    where = f"run {run_id}"
    numbers = conform(stamped(run.numbers, stamp, where=f"{where} scores"), SCORE_NUMBERS_SCHEMA, where=f"{where} scores")
    check_unique_ids(numbers.column("customer_id"), where=f"{where} scores")
    (staging / "scores").mkdir()
    (staging / "explanations").mkdir()
    texts = [place_part(part, staging / SCORE_TEXTS.format(i), SCORE_TEXTS_SCHEMA, None, where=f"{where} score texts")
             for i, part in enumerate(run.text_parts)]
    check_texts_align(numbers.column("customer_id"), texts, where=f"{where} score texts")
    write_table(numbers, staging / SCORE_NUMBERS)
    explanation_rows = sum(
        place_part(part, staging / EXPLANATION_PART.format(i), EXPLANATION_SCHEMA, run_id, where=f"{where} explanations")[1]
        for i, part in enumerate(run.explanation_parts)
    )
    summary = SUMMARY_SCHEMA.empty_table() if run.summary is None else run.summary
    summary = conform(stamped(summary, {"run_id": run_id}, where=f"{where} segment summary"), SUMMARY_SCHEMA,
                      where=f"{where} segment summary")
    write_table(summary, staging / SUMMARY_FILE)
    tables = {name: write_named_table(staging, name, table, run_id) for name, table in sorted(run.tables.items())}
    fsync_dir(staging / "scores")
    fsync_dir(staging / "explanations")
    return {"score_rows": numbers.num_rows, "explanation_rows": explanation_rows, "summary_rows": summary.num_rows,
            "tables": tables}


def check_run_table_name(name: str) -> None:
    """A further table's name becomes a file name (and a database table name): a plain identifier only."""
    if not isinstance(name, str) or not RUN_TABLE_NAME.match(name):
        raise ContractError(f"run table name {name!r}: use a lower-case identifier (letters, digits, _; at most 63)")


def write_named_table(staging: Path, name: str, table: pa.Table, run_id: str) -> int:
    """Write one further table of a run (run_id stamped on its rows); its row count."""
    check_run_table_name(name)
    table = stamped(table, {"run_id": run_id}, where=f"run {run_id} table {name}")
    path = staging / RUN_TABLE.format(name)
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)  # a hard link to the published file: replace it, never write through it
    write_table(table, path)
    fsync_dir(path.parent)
    return table.num_rows


def read_named_table(folder: Path, name: str, columns: list[str] | None = None) -> pa.Table | None:
    """A further table of a published run (all columns or `columns`), or None when the run has none of that name."""
    check_run_table_name(name)
    path = folder / RUN_TABLE.format(name)
    return pq.read_table(path, columns=columns) if path.exists() else None


def link_run_files(source: Path, target: Path) -> None:
    """Give `target` every file of the run folder `source` (hard links; copies across file systems)."""
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copyfile(path, destination)


def stamped(chunk: pd.DataFrame | pa.Table, stamp: dict[str, Any], *, where: str) -> pa.Table:
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


def check_unique_ids(ids: pa.ChunkedArray, *, where: str) -> None:
    if pc.count_distinct(ids).as_py() == len(ids):
        return
    counts = pd.Series(ids.to_numpy(zero_copy_only=False)).value_counts()
    dup = [(k, int(v)) for k, v in counts[counts > 1].sort_index().head(3).items()]
    raise ContractError(f"{where}: customer_id occurs more than once, e.g. {dup}; a run has one score row per customer")


def place_part(part: Part, target: Path, schema: pa.Schema, run_id: str | None, *, where: str) -> tuple[Path, int]:
    """Put a part into a run: a hard link when it is a file already in contract form, else a converted copy."""
    stamp = {} if run_id is None else {"run_id": run_id}
    if isinstance(part, pa.Table):
        table = conform(stamped(part, stamp, where=where), schema, where=where)
        write_table(table, target)
        return target, table.num_rows
    where = f"{where}, {part}"
    try:
        file = pq.ParquetFile(part)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ContractError(f"{where}: cannot read the part file ({exc}); score the run again") from exc
    rows = file.metadata.num_rows
    if file.schema_arrow.equals(schema, check_metadata=False) and (run_id is None or _holds_only_run(file, run_id, where=where)):
        try:
            os.link(part, target)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(part, target)
        fsync_file(target)
        return target, rows
    write_table(conform(stamped(file.read(), stamp, where=where), schema, where=where), target)
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


def check_texts_align(ids: pa.ChunkedArray, parts: list[tuple[Path, int]], *, where: str) -> None:
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


def write_table(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression=PART_COMPRESSION, row_group_size=_rows_per_group(path))
    fsync_file(path)


def _rows_per_group(path: Path) -> int | None:
    """Row group size by the file's role in a run folder (None: pyarrow's default)."""
    if path.parent.name == "scores":
        return NUMBER_ROW_GROUP_ROWS if path.name == Path(SCORE_NUMBERS).name else TEXT_ROW_GROUP_ROWS
    return None


def _score_text_paths(folder: Path) -> list[Path]:
    return sorted((folder / "scores").glob("texts-*.parquet"))


def explanation_paths(folder: Path) -> list[Path]:
    """A run folder's explanation part files, in order."""
    return sorted((folder / "explanations").glob("part-*.parquet"))


def read_run_table(folder: Path, table: str, filters: list | None, columns: list[str] | None) -> pa.Table:
    """One table of a published run, as the contract defines it, whatever the run's file layout."""
    if table == "summary":
        return pq.read_table(folder / SUMMARY_FILE, filters=filters or None, columns=columns)
    expression = pq.filters_to_expression(filters) if filters else None
    if table == "explanations":
        paths = explanation_paths(folder)
        if not paths:
            empty = EXPLANATION_SCHEMA.empty_table()
            return empty.select(columns) if columns else empty
        return pads.dataset([str(p) for p in paths], schema=EXPLANATION_SCHEMA, format="parquet").to_table(columns=columns, filter=expression)
    return _read_split_scores(folder, expression, columns)


def _read_split_scores(folder: Path, expression: pads.Expression | None, columns: list[str] | None) -> pa.Table:
    """Score rows (all, or those matching `expression` on the number columns) with their texts put back."""
    # Without a filter only the number columns asked for are read: a million rows of every column is hundreds of MB.
    wanted = None
    if columns is not None and expression is None:
        wanted = [c for c in columns if c in SCORE_SCHEMA.names and c not in SCORE_TEXT_COLUMNS] or ["customer_id"]
    numbers = pq.read_table(folder / SCORE_NUMBERS, columns=wanted)
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


def iter_score_tables(folder: Path) -> Iterator[pa.Table]:
    """The score table of a run in contract columns, one part at a time (flat memory for exports)."""
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


def scores_sql(folder: Path) -> str:
    """SQL giving a run's score table (the text parts joined back on customer_id)."""
    texts = _score_text_paths(folder)
    numbers = f"read_parquet({sql_text(folder / SCORE_NUMBERS)})"
    if not texts:
        return "SELECT " + ", ".join(f"n.{c}" if c not in SCORE_TEXT_COLUMNS else f"NULL::VARCHAR AS {c}" for c in SCORE_SCHEMA.names) + f" FROM {numbers} n"
    select = ", ".join(f"{'t' if c in SCORE_TEXT_COLUMNS else 'n'}.{c}" for c in SCORE_SCHEMA.names)
    parts = ", ".join(sql_text(p) for p in texts)
    return f"SELECT {select} FROM {numbers} n JOIN read_parquet([{parts}]) t ON n.customer_id = t.customer_id"


def explanations_sql(folder: Path) -> str:
    paths = explanation_paths(folder)
    if not paths:
        types = {pa.string(): "VARCHAR", pa.int16(): "SMALLINT", pa.float64(): "DOUBLE"}
        return "SELECT " + ", ".join(f"NULL::{types[f.type]} AS {f.name}" for f in EXPLANATION_SCHEMA) + " WHERE false"
    return "SELECT * FROM read_parquet([" + ", ".join(sql_text(p) for p in paths) + "])"


def sql_text(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_durably(path: Path, body: dict) -> None:
    """Write JSON to a temporary file, fsync it, then rename it over `path` in one atomic step."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(body, handle, ensure_ascii=False, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


