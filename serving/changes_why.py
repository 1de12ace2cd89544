"""The why of a run-to-run comparison, read in streams: each run's reason rows as small integer codes.

A run's reasons (about 12 rows per customer and run, 12M at a million customers) are read part
by part, only the columns needed: customer_id, score, feature and contribution become the row
of the changes table (int32), one key for (feature, score) (int16) and the contribution
(float64), plus the row's position in the run's reasons (int32) so the few values a sentence
states are read afterwards, and nothing else: about 18 bytes a reason row. The why numbers are
then summed one window of rows of the changes table at a time in a dense (row, score, feature)
grid, and the `value` texts read only for the why-features the sentences state: those of the
customers whose score moved.

Every sum is taken in the order of the whole-table comparison (rows of the earlier run before
those of the later one, keys in (customer, score, feature name) order), so the numbers are
bit for bit those of comparing the runs in one piece.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.sentences import sentence_codes

# The reasons of one run: a whole table (small runs, tests, other sinks) or a function giving its parts
# for some columns (a scored run's part files, a stored run's files), read one at a time.
ReasonSource = pd.DataFrame | pa.Table | Callable[[list[str]], Iterable[pa.Table]]

_ENCODED_COLUMNS = ["customer_id", "score", "feature", "contribution"]


def reason_parts(source: ReasonSource, columns: list[str]) -> Iterator[pa.Table]:
    """The run's reason rows in `columns`, one part at a time, in the same order at every call."""
    if isinstance(source, pd.DataFrame):
        yield pa.Table.from_pandas(source[columns], preserve_index=False)
    elif isinstance(source, pa.Table):
        yield source.select(columns)
    else:
        yield from source(columns)


def file_reasons(paths: list[Path | pa.Table]) -> Callable[[list[str]], Iterator[pa.Table]]:
    """Reasons kept in Parquet part files (or tables): score and feature read as dictionaries, as Parquet stores them."""

    def parts(columns: list[str]) -> Iterator[pa.Table]:
        for part in paths:
            if isinstance(part, pa.Table):
                yield part.select(columns)
            else:
                yield pq.read_table(part, columns=columns, read_dictionary=[c for c in ("score", "feature") if c in columns])

    return parts


@dataclass
class RunReasons:
    """One run's reason rows of the customers present in both runs, as codes (see module docstring)."""

    source: ReasonSource
    row: np.ndarray  # int32: row of the changes table
    key: np.ndarray  # int16 (int32 beyond 16,383 features): feature code * 2 + score (0 churn, 1 value)
    contribution: np.ndarray  # float64
    position: np.ndarray  # int32 (int64 beyond 2**31 rows): the row's position among the run's reason rows
    starts: np.ndarray | None = None  # once `windowed`: where each window of rows begins in the arrays

    def windowed(self, window_rows: int, n_rows: int) -> RunReasons:
        """The entries grouped by window of `window_rows` table rows, file order kept within a window (a stable radix sort)."""
        windows = max(-(-n_rows // window_rows), 1)
        window = (self.row // window_rows).astype(np.int16 if windows < 2**15 else np.int64)
        order = np.argsort(window, kind="stable")
        self.row, self.key = self.row[order], self.key[order]
        self.contribution, self.position = self.contribution[order], self.position[order]
        self.starts = np.searchsorted(window[order], np.arange(windows + 1))
        return self

    def window(self, w: int) -> tuple[np.ndarray, ...]:
        lo, hi = self.starts[w], self.starts[w + 1]
        return self.row[lo:hi], self.key[lo:hi], self.contribution[lo:hi], self.position[lo:hi]


@dataclass
class FeatureNames:
    """Feature names met in either run, coded as met; `sorted_codes` recodes them in name order once both are read."""

    codes: dict[str, int]

    def code_of(self, dictionary: pa.Array) -> np.ndarray:
        out = np.empty(len(dictionary), dtype=np.int32)
        for i, name in enumerate(dictionary.to_pylist()):
            out[i] = self.codes.setdefault(str(name), len(self.codes))
        return out

    def in_name_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Names sorted (ties between features break by name) and, per code as met, its code in that order."""
        names = np.array(list(self.codes), dtype=object)
        order = np.argsort(names.astype(str), kind="stable")
        recode = np.empty(len(order), dtype=np.int32)
        recode[order] = np.arange(len(order), dtype=np.int32)
        return names[order], recode


def encoded_reasons(source: ReasonSource, ids: pa.Array, in_both: np.ndarray, names: FeatureNames) -> RunReasons:
    """Read a run's reasons part by part into codes, keeping the rows of customers present in both runs.

    A customer's reason rows are written together, so customer_id is looked up once per run of
    equal ids, all the run's at once (one hash table of the changes table's ids).
    """
    heads, lengths, keys, contributions = [], [], [], []
    for part in reason_parts(source, _ENCODED_COLUMNS):
        if part.num_rows == 0:
            continue
        customer = part.column("customer_id").combine_chunks().cast(pa.string())
        starts = _run_starts(customer)
        heads.append(customer.take(pa.array(starts)))
        lengths.append(np.diff(np.append(starts, len(customer))))
        keys.append(_feature_codes(part.column("feature"), names) * 2 + _is_value(part.column("score")))
        contributions.append(part.column("contribution").to_numpy().astype(float, copy=False))
    if not heads:
        empty = np.array([], dtype=np.int64)
        return RunReasons(source, empty.astype(np.int32), empty.astype(np.int32), empty.astype(float), empty)
    head_rows = pc.index_in(pa.concat_arrays(heads), value_set=ids)
    head_rows = pc.fill_null(head_rows, -1).to_numpy().astype(np.int64)
    known = head_rows >= 0
    head_rows[known] = np.where(in_both[head_rows[known]], head_rows[known], -1)
    rows = np.repeat(head_rows.astype(np.int32), np.concatenate(lengths))
    position = np.flatnonzero(rows >= 0)
    key = np.concatenate(keys)[position]
    # The smallest integer types that hold them: at 1M customers these arrays are the comparison's largest.
    return RunReasons(source, rows[position], key.astype(np.int16) if len(names.codes) < 2**14 else key,
                      np.concatenate(contributions)[position],
                      position.astype(np.int32) if len(rows) < 2**31 else position)


def _run_starts(customer: pa.Array) -> np.ndarray:
    """Where each run of equal customer_id begins."""
    if len(customer) < 2:
        return np.zeros(len(customer), dtype=np.int64)
    differs = pc.not_equal(customer.slice(1), customer.slice(0, len(customer) - 1))
    return np.append(0, np.flatnonzero(differs.to_numpy(zero_copy_only=False)) + 1)


def _feature_codes(column: pa.ChunkedArray, names: FeatureNames) -> np.ndarray:
    pieces = []
    for chunk in column.chunks:
        chunk = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        pieces.append(names.code_of(chunk.dictionary)[chunk.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(pieces) if pieces else np.array([], dtype=np.int32)


def _is_value(column: pa.ChunkedArray) -> np.ndarray:
    plain = column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column
    return pc.fill_null(pc.equal(plain, "value"), False).to_numpy(zero_copy_only=False).astype(np.int32)


def recoded(reasons: RunReasons, recode: np.ndarray) -> RunReasons:
    """The run's keys with feature codes in name order."""
    reasons.key = (recode[reasons.key // 2] * 2 + reasons.key % 2).astype(reasons.key.dtype)
    return reasons


# ---------------------------------------------------------------------- the why of one partition


@dataclass
class PartitionWhy:
    """The why of the rows [lo, hi) of the changes table, per score: listed sums and the top-k features."""

    listed: np.ndarray  # (rows, 2): the sum of the listed features' changes per score (0 where none)
    feature: np.ndarray  # (2, k, rows) int32: feature code in name order, -1 where none
    change: np.ndarray  # (2, k, rows) float64: its contribution change, NaN where none
    chosen_later: np.ndarray  # (2, k, rows) bool: its value is read from the later run (else the earlier)
    chosen_position: np.ndarray  # (2, k, rows) int64: position of that value among the run's reason rows


# Cells of the dense (row, score, feature) grid one window of rows is summed in (16 MB of float64).
_WINDOW_CELLS = 2_000_000


def window_rows(n_features: int, at_most: int) -> int:
    """Rows per why window: as many as the dense grid of `_WINDOW_CELLS` cells holds."""
    return max(1, min(at_most, _WINDOW_CELLS // (2 * max(n_features, 1))))


def partition_why(before: RunReasons, after: RunReasons, w: int, lo: int, hi: int, k: int, n_features: int) -> PartitionWhy:
    """Each row of window `w` (rows [lo, hi)): its listed change and top-k features by size of their change, per score.

    A feature counts with its contribution in each run where it was one of the customer's
    reasons, 0 where it was not. The sums go into a dense (row, score, feature) grid, in the
    order of the rows (the earlier run's first), so the cells present come out in key order
    without a sort.
    """
    n = hi - lo
    pieces = [before.window(w), after.window(w)]
    rows = np.concatenate([p[0] for p in pieces]).astype(np.int64) - lo
    key = np.concatenate([p[1] for p in pieces]).astype(np.int64)
    signed = np.concatenate([-pieces[0][2], pieces[1][2]])
    position = np.concatenate([p[3] for p in pieces])
    later = np.concatenate([np.zeros(len(pieces[0][0]), dtype=bool), np.ones(len(pieces[1][0]), dtype=bool)])
    width = max(n_features, 1)
    cell = (rows * 2 + key % 2) * width + key // 2
    cells = n * 2 * width
    keys = np.flatnonzero(np.bincount(cell, minlength=cells))
    change = np.bincount(cell, weights=signed, minlength=cells)[keys]
    chosen_position = np.zeros(cells, dtype=np.int64)
    chosen_later = np.zeros(cells, dtype=bool)
    chosen_position[cell[~later]] = position[~later]
    chosen_position[cell[later]] = position[later]  # the later run's value wins: it is the customer's state now
    chosen_later[cell[later]] = True
    chosen_position, chosen_later = chosen_position[keys], chosen_later[keys]
    group, code = keys // width, keys % width
    listed = np.bincount(group, weights=change, minlength=2 * n).reshape(n, 2)
    rank = _rank_in_group(group, np.where(np.isnan(change), -np.inf, np.abs(change)))  # NaN last, as a sort puts it
    kept = np.flatnonzero(rank < k)
    kept_rank = rank[kept]
    out = PartitionWhy(listed, np.full((2, k, n), -1, dtype=np.int32), np.full((2, k, n), np.nan),
                       np.zeros((2, k, n), dtype=bool), np.zeros((2, k, n), dtype=np.int64))
    score, row = group[kept] % 2, group[kept] // 2
    out.feature[score, kept_rank, row] = code[kept]
    out.change[score, kept_rank, row] = change[kept]
    out.chosen_later[score, kept_rank, row] = chosen_later[kept]
    out.chosen_position[score, kept_rank, row] = chosen_position[kept]
    return out


def _rank_in_group(group: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Each key's rank in its group (0 = largest `size`; ties: the smaller feature code first).

    Keys come sorted by (group, feature code) and a group holds a customer's reasons of one
    score in two runs (a dozen at most), so the rank is counted against neighbours up to the
    largest group's size away: linear, no sort.
    """
    rank = np.zeros(len(group), dtype=np.int64)
    if not len(group):
        return rank
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    widest = int(np.diff(np.append(starts, len(group))).max())
    for d in range(1, widest):
        same = group[d:] == group[:-d]
        # an earlier key (smaller code) outranks a later one of equal size; a later one only a smaller
        rank[d:] += same & (size[:-d] >= size[d:])
        rank[:-d] += same & (size[d:] > size[:-d])
    return rank


# ---------------------------------------------------------------------- the sentences of the stated features


@dataclass
class StatedTexts:
    """Sentences of the why-features the change sentences state: per stated entry, an index into `en` / `zh`."""

    text: np.ndarray  # int64, one per stated entry
    en: pa.Array
    zh: pa.Array


def stated_texts(features: np.ndarray, later: np.ndarray, position: np.ndarray, before: RunReasons, after: RunReasons,
                 names: np.ndarray) -> StatedTexts:
    """Each stated why-feature said with the project's sentence builder, from its value in the later run (else the earlier).

    `features`, `later`, `position`: one entry per stated why-feature (code in name order, which
    run its value is read from, and where). Only these values are read: the `value` column of
    each run once, part by part.
    """
    values = pa.concat_arrays([_values_at(before, position[~later]), _values_at(after, position[later])])
    entry = np.concatenate([np.flatnonzero(~later), np.flatnonzero(later)])  # the entry each value belongs to
    text = np.zeros(len(features), dtype=np.int64)
    en_parts, zh_parts, offset = [], [], 0
    for code in np.unique(features):
        mine = np.flatnonzero(features[entry] == code)
        codes, en_u, zh_u = sentence_codes(str(names[code]), _sentence_values(values.take(pa.array(mine))), None)
        text[entry[mine]] = offset + codes
        en_parts.append(pa.array(en_u, type=pa.string()))
        zh_parts.append(pa.array(zh_u, type=pa.string()))
        offset += len(en_u)
    empty = pa.array([], type=pa.string())
    return StatedTexts(text, pa.concat_arrays(en_parts) if en_parts else empty, pa.concat_arrays(zh_parts) if zh_parts else empty)


def _values_at(reasons: RunReasons, position: np.ndarray) -> pa.Array:
    """The run's `value` texts at these positions among its reason rows, in the order given."""
    order = np.argsort(position, kind="stable")
    wanted = position[order]
    pieces, offset = [], 0
    if len(wanted):
        for part in reason_parts(reasons.source, ["value"]):
            lo, hi = np.searchsorted(wanted, [offset, offset + part.num_rows])
            if hi > lo:
                pieces.extend(part.column("value").take(pa.array(wanted[lo:hi] - offset)).cast(pa.string()).chunks)
            offset += part.num_rows
    found = pa.concat_arrays(pieces) if pieces else pa.array([], type=pa.string())
    back = np.empty(len(order), dtype=np.int64)
    back[order] = np.arange(len(order))
    return found.take(pa.array(back))


def _sentence_values(values: pa.Array) -> np.ndarray:
    """`values_for_sentence` of these texts, each distinct text parsed once."""
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.to_pandas().to_numpy(dtype=object)
    indices = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
    missing = encoded.indices.is_null().to_numpy(zero_copy_only=False)
    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce").to_numpy(dtype=float)
    if not np.isnan(numbers).any():  # every value a number: floats, so their sentence rounds them as at scoring
        return np.where(missing, np.nan, numbers[indices] if len(numbers) else np.nan)
    out = np.empty(len(values), dtype=object)
    out[~missing] = distinct[indices[~missing]]
    out[missing] = np.nan  # as pandas reads a missing text
    return out
