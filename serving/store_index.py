"""Fast reads of one published run of the Parquet store: a customer, a page of a segment.

A published run folder never changes (a republish writes a new folder), so a long-lived
reader (the read API) may keep what it learnt about a run in memory: the number columns of
the score table (one row per customer, a few dozen bytes each), a hash index from customer_id
to row position, the rows in customer_id order, and where each text part and row group starts.
A customer's score is then a hash lookup plus one small read: only the row group of the text
part that holds its reason texts, in the columns asked for. Building the index of a run of 1M
customers takes about a second and ~250 MB; `ScoreStore` keeps the last few runs it read.

Reading a run that is not indexed (its history) scans only the customer_id column and then
reads the row groups holding the customer.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.score_table import SCORE_SCHEMA, SCORE_TEXT_COLUMNS
from serving.store_files import SCORE_NUMBERS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageFilter:
    """Which rows of a run a page may hold (None: no condition); `min_value` applies to clv."""

    segment: str | None = None
    value_tier: str | None = None
    min_value: float | None = None
    min_p_churn: float | None = None


class RunIndex:
    """What a reader keeps in memory about one published run folder (see module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # One chunk per column: taking a row from a many-chunk column costs a millisecond, from one chunk microseconds.
        self.numbers = pq.read_table(folder / SCORE_NUMBERS).combine_chunks()
        self.positions = _positions(self.numbers.column("customer_id"))
        self._texts = TextParts(folder)

    @cached_property
    def order(self) -> np.ndarray:
        """Row positions in customer_id order (built at the first page; Arrow sorts 1M strings in ~0.2 s)."""
        return pc.sort_indices(self.numbers.column("customer_id")).to_numpy().astype(np.int64)

    @cached_property
    def sorted_ids(self) -> pa.Array:
        return self.numbers.column("customer_id").take(pa.array(self.order)).combine_chunks()

    def rows(self, customer_ids: list[str], columns: list[str] | None) -> pa.Table:
        """The score rows of these customers (those the run holds), in the order asked."""
        found = [p for p in (self.positions.get(c) for c in customer_ids) if p is not None]
        return self.take(np.array(found, dtype=np.int64), columns)

    def take(self, positions: np.ndarray, columns: list[str] | None) -> pa.Table:
        names = list(columns) if columns else list(SCORE_SCHEMA.names)
        number_columns = [c for c in names if c not in SCORE_TEXT_COLUMNS]
        selected = self.numbers.select(number_columns)
        # One row (the common read) is a zero-copy slice; take() copies every column.
        numbers = selected.slice(int(positions[0]), 1) if len(positions) == 1 else selected.take(pa.array(positions, type=pa.int64()))
        texts = self._texts.take(positions, [c for c in names if c in SCORE_TEXT_COLUMNS])
        return pa.table({c: texts[c] if c in texts else numbers.column(c) for c in names})

    def page(self, where: PageFilter, after_customer_id: str | None, limit: int, columns: list[str] | None) -> pa.Table:
        """Up to `limit` rows matching `where`, in customer_id order, strictly after `after_customer_id`."""
        start = 0 if after_customer_id is None else bisect.bisect_right(_Values(self.sorted_ids), after_customer_id)
        candidates = self.order[start:]
        mask = self._mask(where)
        if mask is not None:
            candidates = candidates[mask[candidates]]
        return self.take(candidates[:limit], columns)

    def _mask(self, where: PageFilter) -> np.ndarray | None:
        conditions = []
        for column, value in (("segment", where.segment), ("value_tier", where.value_tier)):
            if value is not None:
                conditions.append(pc.equal(self.numbers.column(column), value))
        for column, value in (("clv", where.min_value), ("p_churn", where.min_p_churn)):
            if value is not None:
                conditions.append(pc.greater_equal(self.numbers.column(column), value))
        if not conditions:
            return None
        combined = conditions[0]
        for condition in conditions[1:]:
            combined = pc.and_kleene(combined, condition)
        return pc.fill_null(combined, False).to_numpy(zero_copy_only=False)


class _Values:
    """An Arrow string array as a sequence of Python strings, converted one at a time (for bisect: ~20 of 1M)."""

    def __init__(self, values: pa.Array) -> None:
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, i: int) -> str:
        return self._values[i].as_py()


def _positions(ids: pa.ChunkedArray, chunk: int = 65_536) -> dict[str, int]:
    """customer_id -> row, built a slice at a time.

    One call turning a million ids into Python strings holds the GIL for a second or more on a
    busy machine, and the API's event loop with it; slices let it answer between them while a
    new run is indexed in the background.
    """
    positions: dict[str, int] = {}
    for offset in range(0, len(ids), chunk):
        values = ids.slice(offset, chunk).to_pylist()
        positions.update(zip(values, range(offset, offset + len(values)), strict=True))
        time.sleep(0)  # let other threads (the event loop) take the GIL
    return positions


class TextParts:
    """The text part files of a run and where each of their row groups starts in the score rows."""

    def __init__(self, folder: Path) -> None:
        self._files: list[tuple[Path, pq.FileMetaData]] = []
        starts: list[int] = []
        self._groups: list[tuple[int, int]] = []  # (file index, row group index), by starting row
        offset = 0
        for path in sorted((folder / "scores").glob("texts-*.parquet")):
            meta = pq.read_metadata(path)
            for group in range(meta.num_row_groups):
                starts.append(offset)
                self._groups.append((len(self._files), group))
                offset += meta.row_group(group).num_rows
            self._files.append((path, meta))
        self._starts = np.array(starts, dtype=np.int64)
        self.rows = offset

    def take(self, positions: np.ndarray, columns: list[str]) -> dict[str, pa.Array]:
        """The text columns at these score row positions (in that order), reading only their row groups."""
        if not columns:
            return {}
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 1:  # one customer: one row group, sliced without copies
            group = int(np.searchsorted(self._starts, positions[0], side="right")) - 1
            table = self._read_group(group, columns)
            return {c: table.column(c).slice(int(positions[0] - self._starts[group]), 1) for c in columns}
        out = {c: [None] * len(positions) for c in columns}
        if len(positions):
            groups = np.searchsorted(self._starts, positions, side="right") - 1
            for group in np.unique(groups):
                picked = np.flatnonzero(groups == group)
                table = self._read_group(group, columns)
                local = table.take(pa.array(positions[picked] - self._starts[group]))
                for c in columns:
                    values = local.column(c).to_pylist()
                    for slot, value in zip(picked, values, strict=True):
                        out[c][slot] = value
        return {c: pa.array(v, type=SCORE_SCHEMA.field(c).type) for c, v in out.items()}

    def _read_group(self, group: int, columns: list[str]) -> pa.Table:
        file_index, row_group = self._groups[group]
        path, meta = self._files[file_index]
        return pq.ParquetFile(path, metadata=meta).read_row_group(row_group, columns=columns)


def scan_rows(folder: Path, customer_id: str, columns: list[str] | None) -> pa.Table:
    """A customer's score row in a run that is not indexed: its customer_id column scanned, then its row groups read."""
    numbers = pq.ParquetFile(folder / SCORE_NUMBERS)
    names = list(columns) if columns else list(SCORE_SCHEMA.names)
    number_columns = [c for c in names if c not in SCORE_TEXT_COLUMNS]
    pieces, positions, offset = [], [], 0
    for group in range(numbers.metadata.num_row_groups):
        ids = numbers.read_row_group(group, columns=["customer_id"]).column("customer_id")
        hits = np.flatnonzero(pc.equal(ids, customer_id).to_numpy(zero_copy_only=False))
        if len(hits):
            part = numbers.read_row_group(group, columns=number_columns or ["customer_id"])
            pieces.append(part.take(pa.array(hits)))
            positions.extend(offset + hits)
        offset += len(ids)
    if not pieces:
        return pa.table({c: pa.array([], type=SCORE_SCHEMA.field(c).type) for c in names})
    found = pa.concat_tables(pieces)
    texts = TextParts(folder).take(np.array(positions, dtype=np.int64), [c for c in names if c in SCORE_TEXT_COLUMNS])
    return pa.table({c: texts[c] if c in texts else found.column(c) for c in names})


class RunIndexCache:
    """The indexes of the last `size` run folders read; built once per folder, shared by threads."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._indexes: OrderedDict[Path, RunIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Path, threading.Lock] = {}
        self._background: set[Path] = set()
        self._failed: set[Path] = set()

    def get(self, folder: Path) -> RunIndex:
        with self._lock:
            if folder in self._indexes:
                self._indexes.move_to_end(folder)
                return self._indexes[folder]
            building = self._building.setdefault(folder, threading.Lock())
        with building:  # one thread builds, the others wait for it instead of building too
            with self._lock:
                if folder in self._indexes:
                    return self._indexes[folder]
            index = RunIndex(folder)
            with self._lock:
                self._indexes[folder] = index
                self._building.pop(folder, None)
                while len(self._indexes) > self.size:
                    self._indexes.popitem(last=False)
        return index

    def build_in_background(self, folder: Path) -> bool:
        """Start indexing `folder` in a thread unless it is indexed or being indexed already.

        False when indexing it in the background failed before: the caller then builds it itself
        and meets the error, instead of answering from another run for ever.
        """
        with self._lock:
            if folder in self._failed:
                return False
            if folder in self._indexes or folder in self._background:
                return True
            self._background.add(folder)

        def build() -> None:
            try:
                self.get(folder)
            except Exception as exc:
                logger.warning("indexing %s in the background failed: %s", folder, exc)
                with self._lock:
                    self._failed.add(folder)
            finally:
                with self._lock:
                    self._background.discard(folder)

        threading.Thread(target=build, name=f"index {folder.name}", daemon=True).start()
        return True

    def peek(self, folder: Path) -> RunIndex | None:
        """The index of a folder if it is already built (never builds one)."""
        with self._lock:
            return self._indexes.get(folder)
