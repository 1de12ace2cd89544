"""The score table's reason columns: per customer a `reasons` JSON (numbers and keys) and one
text per language, built from the long reason tables of a chunk.

`reasons` holds, per score and direction, each reason's rank, value, contribution, feature
and family key; the sentences are stored once per language, in `reason_text_en` and
`reason_text_zh` (a sentence is recomputed from feature and value by serving.sentences).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.catalog import family_key
from serving.reasons import DIRECTIONS, SCORE_KINDS, decode_dictionaries
from serving.sentences import HEADERS

# The columns of a long reason table the texts are made of.
ENCODED_COLUMNS: tuple[str, ...] = (
    "row", "score", "direction", "rank", "feature", "value", "contribution", "sentence_en", "sentence_zh",
)  # fmt: skip


def reason_columns(
    reasons: pd.DataFrame | pa.Table | Sequence[pd.DataFrame | pa.Table],
    n_rows: int,
    *,
    k: int | None = None,
) -> pd.DataFrame:
    """Return per-row `reasons` (JSON text), `reason_text_en`, `reason_text_zh` (see reason_columns_table)."""
    return reason_columns_table(reasons, n_rows, k=k).to_pandas()


def reason_columns_table(
    reasons: pd.DataFrame | pa.Table | Sequence[pd.DataFrame | pa.Table],
    n_rows: int,
    *,
    k: int | None = None,
    block_rows: int = 20_000,
) -> pa.Table:
    """Return per-row `reasons` (JSON text), `reason_text_en`, `reason_text_zh` as an Arrow table.

    Fastest with the Arrow tables of `reasons_table` (sentences stay dictionary-encoded).

    `reasons` is the output of `reasons_for_chunk`/`reasons_table` for the chunk's n_rows rows,
    one per score kind (a list, or already concatenated). JSON shape: {"churn": {"raises":
    [{rank, value, contribution, feature, family}, ...], "lowers": [...]}, "value": {...}}:
    numbers and keys only; the sentences are stored once per language, in the text columns
    "Raises churn risk: a; b; c. Lowers churn risk: ... Raises value: ...".

    How: every piece a text is made of (fixed JSON punctuation and headers, each reason's
    value and contribution text, each distinct sentence) sits once in a pool; numpy works out
    which pool pieces each row's text lists, in order, and one Arrow take + one join per column
    builds the texts, `block_rows` chunk rows at a time so the intermediate pieces stay small.
    The result keeps one Arrow chunk per block (no copy into one buffer).
    """
    per_score = _reason_tables_by_score(reasons)
    for score, table in per_score.items():
        rows = table.column("row").to_numpy()
        if len(rows) and (rows.max() >= n_rows or rows.min() < 0):
            raise ValueError(f"reason_columns: {score} reasons have row positions up to {rows.max()} but the chunk has {n_rows} rows")
    if k is None:
        k = max((int(pc.max(t.column("rank")).as_py() or 1) for t in per_score.values() if t.num_rows), default=1)
    if not per_score:
        return _no_reason_columns(n_rows)
    layout = _ReasonLayout.build(per_score, k)
    blocks = [layout.block(start, min(start + block_rows, n_rows)) for start in range(0, n_rows, block_rows)]
    return pa.concat_tables(blocks) if blocks else layout.block(0, 0)


def _no_reason_columns(n_rows: int) -> pa.Table:
    """The text columns of rows without any reason table: empty JSON object, empty texts."""
    empty = pa.array([""] * n_rows, type=pa.string())
    return pa.table({"reasons": pa.array(["{}"] * n_rows, type=pa.string()), "reason_text_en": empty, "reason_text_zh": empty})


# Pieces of one JSON reason object: '{"rank":R,"value":' V ',"contribution":' C ',"feature":...}'.
_JSON_PIECES_PER_REASON = 5


@dataclass
class _ReasonGroup:
    """The reasons of one (score, direction) in reading order, as pool positions per piece."""

    rows: np.ndarray  # chunk row of each reason, ascending
    rank: np.ndarray
    value: np.ndarray  # position of the JSON value text in the JSON pool
    contribution: np.ndarray
    head: np.ndarray  # ',"feature":...,"family":...}' in the JSON pool
    en: np.ndarray  # sentence in the English pool
    zh: np.ndarray

    def between(self, start: int, stop: int) -> _ReasonGroup:
        """The reasons of chunk rows start..stop-1, rows renumbered from 0."""
        lo, hi = np.searchsorted(self.rows, [start, stop])
        return _ReasonGroup(self.rows[lo:hi] - start, *(getattr(self, f)[lo:hi] for f in ("rank", "value", "contribution", "head", "en", "zh")))


class _Pool:
    """Strings gathered into one array; `add` returns the position of the first one added."""

    def __init__(self) -> None:
        self.arrays: list[pa.Array] = []
        self.size = 0

    def add(self, texts: pa.Array | Sequence[str]) -> int:
        array = texts if isinstance(texts, pa.Array) else pa.array(list(texts), type=pa.string())
        self.arrays.append(array.cast(pa.string()) if array.type != pa.string() else array)
        self.size += len(array)
        return self.size - len(array)

    def array(self) -> pa.Array:
        return pa.concat_arrays(self.arrays)


@dataclass
class _ReasonLayout:
    """Pools of text pieces of one chunk and the reason groups pointing into them."""

    groups: list[_ReasonGroup]
    json_pool: pa.Array
    en_pool: pa.Array
    zh_pool: pa.Array
    json_between: int  # first of len(groups) + 1 fixed JSON texts around and between the groups
    rank_prefix: int  # '{"rank":R,"value":' for rank min_rank.., two per rank (first of its list, or after a comma)
    min_rank: int
    contribution_label: int
    headers: int  # one header per group, in the text pools
    separator: int  # between the sentences of one group, in the text pools
    group_end: int  # after a group followed by another, in the text pools
    text_end: int  # after the last group

    @classmethod
    def build(cls, per_score: dict[str, pa.Table], k: int) -> _ReasonLayout:
        """Pool the pieces of every reason of the chunk (each distinct sentence once)."""
        json_pool, en_pool, zh_pool = _Pool(), _Pool(), _Pool()
        json_between = json_pool.add(_json_between(list(per_score)))
        contribution_label = json_pool.add([',"contribution":'])
        headers = en_pool.add([HEADERS[(s, d)][0] for s in per_score for d in DIRECTIONS])
        zh_pool.add([HEADERS[(s, d)][1] for s in per_score for d in DIRECTIONS])
        separator = en_pool.add(["; ", ". ", "."])  # separator, group end, text end: same places in both pools
        zh_pool.add(["；", "。", "。"])
        groups: list[_ReasonGroup] = []
        for table in per_score.values():
            table = _in_reading_order(table, k)
            value = json_pool.add(_json_string(table.column("value")))
            contribution = json_pool.add(pc.cast(pc.round(table.column("contribution").combine_chunks(), 6), pa.string()))
            head_texts, head_codes = _json_heads(table)
            head = json_pool.add(head_texts)
            en_texts, en_codes = _sentence_pieces(table.column("sentence_en"))
            zh_texts, zh_codes = _sentence_pieces(table.column("sentence_zh"))
            en, zh = en_pool.add(en_texts), zh_pool.add(zh_texts)
            rows = table.column("row").to_numpy()
            rank = table.column("rank").to_numpy().astype(np.int64)
            raises = pc.equal(table.column("direction"), "raises").to_numpy(zero_copy_only=False)
            for direction_rows in (raises, ~raises):
                sel = np.nonzero(direction_rows & (rank <= k))[0]
                groups.append(_ReasonGroup(rows[sel], rank[sel], value + sel, contribution + sel, head + head_codes[sel],
                                           en + en_codes[sel], zh + zh_codes[sel]))
        ranks = np.concatenate([g.rank for g in groups])
        min_rank = int(ranks.min(initial=1))
        prefixes = [f'{sep}{{"rank":{r},"value":' for r in range(min_rank, int(ranks.max(initial=1)) + 1) for sep in ("", ",")]
        rank_prefix = json_pool.add(prefixes)
        return cls(groups, json_pool.array(), en_pool.array(), zh_pool.array(), json_between, rank_prefix, min_rank,
                   contribution_label, headers, separator, separator + 1, separator + 2)

    def block(self, start: int, stop: int) -> pa.Table:
        """The three text columns of chunk rows start..stop-1."""
        n = stop - start
        groups = [g.between(start, stop) for g in self.groups]
        counts = np.stack([np.bincount(g.rows, minlength=n) for g in groups])  # reasons per group and row
        ordinals = [np.arange(len(g.rows)) - _exclusive_cumsum(c)[g.rows] for g, c in zip(groups, counts, strict=True)]
        json_offsets, json_index = self._json_index(groups, counts, ordinals)
        text_offsets, en_index, zh_index = self._text_index(groups, counts, ordinals)
        return pa.table({
            "reasons": _join_pieces(self.json_pool, json_offsets, json_index),
            "reason_text_en": _join_pieces(self.en_pool, text_offsets, en_index),
            "reason_text_zh": _join_pieces(self.zh_pool, text_offsets, zh_index),
        })  # fmt: skip

    def _json_index(self, groups: list[_ReasonGroup], counts: np.ndarray, ordinals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per row: fixed text, the reasons of group 0, fixed text, ... fixed text (pool positions)."""
        per = _JSON_PIECES_PER_REASON
        before = np.cumsum(counts, axis=0) - counts  # reasons of earlier groups in the row
        offsets = _offsets(len(groups) + 1 + per * counts.sum(axis=0))
        row_start = offsets[:-1]
        index = np.empty(offsets[-1], dtype=np.int64)
        for c in range(len(groups) + 1):
            index[row_start + c + per * (before[c] if c < len(groups) else counts.sum(axis=0))] = self.json_between + c
        for g, (group, ordinal) in enumerate(zip(groups, ordinals, strict=True)):
            at = row_start[group.rows] + g + 1 + per * (before[g][group.rows] + ordinal)
            index[at] = self.rank_prefix + 2 * (group.rank - self.min_rank) + (ordinal > 0)
            index[at + 1] = group.value
            index[at + 2] = self.contribution_label
            index[at + 3] = group.contribution
            index[at + 4] = group.head
        return offsets, index

    def _text_index(self, groups: list[_ReasonGroup], counts: np.ndarray, ordinals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row, for each group with reasons: header, sentences with separators, end mark (pool positions)."""
        present = counts > 0
        pieces = np.where(present, 2 * counts + 1, 0)
        before = np.cumsum(pieces, axis=0) - pieces
        last = len(groups) - 1 - np.argmax(present[::-1], axis=0)  # last group with reasons, per row
        offsets = _offsets(pieces.sum(axis=0))
        row_start = offsets[:-1]
        en = np.empty(offsets[-1], dtype=np.int64)
        zh = np.empty(offsets[-1], dtype=np.int64)
        for g, (group, ordinal) in enumerate(zip(groups, ordinals, strict=True)):
            rows = np.nonzero(present[g])[0]
            start = row_start[rows] + before[g][rows]
            en[start] = zh[start] = self.headers + g
            end = start + 2 * counts[g][rows]
            en[end] = zh[end] = np.where(last[rows] == g, self.text_end, self.group_end)
            at = row_start[group.rows] + before[g][group.rows] + 1 + 2 * ordinal
            en[at], zh[at] = group.en, group.zh
            after_first = at[ordinal > 0] - 1
            en[after_first] = zh[after_first] = self.separator
        return offsets, en, zh


def _json_between(scores: list[str]) -> list[str]:
    """The fixed JSON texts before, between and after the reason lists of each (score, direction)."""
    texts, pending = [], "{"
    for number, score in enumerate(scores):
        texts.append(pending + ("," if number else "") + f'"{score}":{{"raises":[')
        texts.append('],"lowers":[')
        pending = "]}"
    texts.append(pending + "}")
    return texts


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=out[1:])
    return out


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _join_pieces(pool: pa.Array, offsets: np.ndarray, index: np.ndarray) -> pa.Array:
    """Per row: the pool pieces index[offsets[i]:offsets[i+1]] joined into one string.

    `take` already lays the pieces' bytes out in row order, so the joined strings are the same
    bytes with one offset per row: no second copy as a join kernel would make.
    """
    pieces = pool.take(pa.array(index, type=pa.int64()))
    if pieces.null_count or pieces.offset:
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pieces), "")
    _, piece_offsets, data = pieces.buffers()
    row_offsets = np.frombuffer(piece_offsets, dtype=np.int32, count=len(pieces) + 1)[offsets]
    return pa.Array.from_buffers(pa.string(), len(offsets) - 1, [None, pa.py_buffer(row_offsets.astype(np.int32)), data])


def _sentence_pieces(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Distinct texts of a sentence column and each row's position among them (dictionaries kept as they are)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type) and array.null_count == 0:
        return array.dictionary, array.indices.to_numpy().astype(np.int64)
    return _plain(array), np.arange(len(array), dtype=np.int64)


def _json_heads(table: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """',"feature":...,"family":...}' texts, one per distinct feature, and each row's position among them."""
    features = _plain(table.column("feature")).dictionary_encode()
    names = features.dictionary
    families = pa.array([family_key(name) for name in names.to_pylist()], type=pa.string())
    heads = pc.binary_join_element_wise(',"feature":', _json_string(names), ',"family":', _json_string(families), "}", "")
    return heads, features.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _in_reading_order(table: pa.Table, k: int) -> pa.Table:
    """The reasons sorted by row, direction (raises first) and rank, as the texts list them."""
    rows = table.column("row").to_numpy()
    rank = table.column("rank").to_numpy().astype(np.int64)
    lowers = pc.equal(table.column("direction"), "lowers").to_numpy(zero_copy_only=False)
    span = max(k, int(rank.max(initial=0))) + 1
    key = (rows * 2 + lowers) * span + rank
    if len(key) < 2 or np.all(key[1:] >= key[:-1]):
        return table  # reasons_table already gives this order
    return table.take(pa.array(np.argsort(key, kind="stable")))


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A string column as one plain (not dictionary) string array; dictionaries decode cheaply."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _reason_tables_by_score(reasons) -> dict[str, pa.Table]:
    """Split reason tables by score kind (SCORE_KINDS order), keeping dictionary-encoded sentences."""
    if isinstance(reasons, (pa.Table, pd.DataFrame)):
        reasons = [reasons]
    out: dict[str, list[pa.Table]] = {}
    for item in reasons:
        table = item if isinstance(item, pa.Table) else pa.Table.from_pandas(item, preserve_index=False)
        missing = [c for c in ENCODED_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"reason_columns: reason table lacks column(s) {missing}; pass the output of reasons_for_chunk")
        table = _small_strings(table.select(list(ENCODED_COLUMNS)))
        score_col = _plain(table.column("score"))
        for score in pc.unique(score_col).to_pylist():
            if score not in SCORE_KINDS:
                raise ValueError(f"reason_columns: score {score!r} is not one of {SCORE_KINDS}")
            same = pc.equal(score_col, score)
            out.setdefault(score, []).append(table if pc.all(same).as_py() else table.filter(same))
    return {
        s: out[s][0].combine_chunks() if len(out[s]) == 1 else pa.concat_tables([decode_dictionaries(t) for t in out[s]]).combine_chunks()
        for s in SCORE_KINDS
        if s in out
    }


def _small_strings(table: pa.Table) -> pa.Table:
    """Cast large_string columns (pandas 3 str) to string, which the Arrow join kernels mix with constants."""
    fields = []
    for field in table.schema:
        typ = field.type
        if pa.types.is_large_string(typ):
            typ = pa.string()
        elif pa.types.is_dictionary(typ) and pa.types.is_large_string(typ.value_type):
            typ = pa.dictionary(typ.index_type, pa.string())
        fields.append(pa.field(field.name, typ))
    return table.cast(pa.schema(fields))


def _json_string(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """JSON string literal of each value (null -> null); dictionary columns are escaped once per text."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(values.type):
        quoted = _quote_json(values.dictionary)
        return pa.DictionaryArray.from_arrays(values.indices, quoted).dictionary_decode().fill_null("null")
    return _quote_json(values).fill_null("null")


def _quote_json(texts: pa.Array) -> pa.Array:
    if pc.any(pc.match_substring_regex(texts, r'[\x00-\x1f"\\]')).as_py():
        for raw, esc in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            texts = pc.replace_substring(texts, raw, esc)
        texts = pc.replace_substring_regex(texts, r"[\x00-\x1f]", " ")  # other control characters: blank
    return pc.binary_join_element_wise('"', texts, '"', "")
