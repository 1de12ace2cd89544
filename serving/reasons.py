"""Reasons: SHAP contributions turned into facts an account manager reads at a glance.

A reason is (feature, value, contribution). `reasons_table` picks the strongest raising and
lowering features of each row (serving/reason_selection.py) and states each as a sentence in
English and Chinese (serving/sentences.py, from the feature families' templates in
features/catalog.py). Whether the fact raises or lowers a score is told by the reason's
direction (sign of the contribution), not by the sentence, so one sentence serves both scores.
serving/reason_encoding.py turns a chunk's reasons into the score table's columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from features.catalog import family_key
from models.column_kinds import is_numeric
from serving.reason_selection import fact_groups, plainly_read, strongest_per_fact, top_k_contributions
from serving.sentences import sentence_codes, template_for, value_text
from serving.unusual import ReasonReference, unusual_only

ScoreKind = Literal["churn", "value", "payment"]
SCORE_KINDS: tuple[str, ...] = ("churn", "value", "payment")
# Scores explained outside the score table's reason columns (a run's prospects table).
TABLE_SCORE_KINDS: tuple[str, ...] = ("prospect",)
DIRECTIONS: tuple[str, ...] = ("raises", "lowers")
REASON_COLUMNS: tuple[str, ...] = (
    "row", "score", "direction", "rank", "feature", "family", "value", "contribution",
    "sentence_en", "sentence_zh",
)  # fmt: skip



def reasons_for_chunk(
    contrib: np.ndarray,
    X: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    score: ScoreKind,
    k: int = 3,
) -> pd.DataFrame:
    """Return the top-k raising and top-k lowering reasons of every row as a long table.

    `contrib` is n x (f + 1) SHAP contributions with the bias in the last column (LightGBM
    `pred_contrib=True`); `X` holds the feature values of the same rows (by name). Columns:
    REASON_COLUMNS; `row` is the 0-based position of the row in the chunk. Rows are sorted by
    row, direction (raises first) and rank; a row has fewer than k reasons in a direction
    when fewer features push that way (a zero contribution is no reason).
    """
    table = reasons_table(contrib, X, feature_names, score=score, k=k)
    return decode_dictionaries(table).to_pandas()


def reasons_table(
    contrib: np.ndarray,
    X: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    score: ScoreKind,
    k: int = 3,
    distinct_facts: bool = False,
    reference: ReasonReference | None = None,
    unusual_percentile: int | None = None,
    plain_reading: bool = False,
) -> pa.Table:
    """`reasons_for_chunk` as an Arrow table (sentences dictionary-encoded; no pandas round trip).

    With `distinct_facts`, a fact stated by several features (spend in 90, 180 and 365 days;
    days since the last order and its ratio to the usual gap) gives at most one reason per
    direction: the feature that pushes hardest. With a `reference` population and an
    `unusual_percentile`, a feature is a reason only where the customer's value is unusual in
    the direction it pushes (serving/unusual.py). With `plain_reading`, a feature is no reason
    where its sentence plainly says the opposite of its direction ("spend rose 279%" raising
    churn risk; serving/reason_selection.py). The filters apply in that order, so the next
    window of a fact, or the next fact, takes the place of a reason left out.
    """
    contrib = _check_chunk(contrib, X, feature_names, score=score, k=k)
    candidates, scratch = contrib[:, :-1], False
    if reference is not None and unusual_percentile is not None:
        candidates, scratch = unusual_only(candidates, X, reference.aligned(feature_names), unusual_percentile), True
    if plain_reading:
        candidates = plainly_read(candidates, X, feature_names, score, in_place=scratch)
    if distinct_facts:
        candidates = strongest_per_fact(candidates, fact_groups(tuple(feature_names)))
    raise_idx, raise_val, lower_idx, lower_val = top_k_contributions(candidates, k)
    parts = [_long_part(raise_idx, raise_val, 0), _long_part(lower_idx, lower_val, 1)]
    rows, ranks, feats, contribs, dirs = (np.concatenate([p[i] for p in parts]) for i in range(5))
    order = np.lexsort((ranks, dirs, rows))
    rows, ranks, feats, contribs, dirs = rows[order], ranks[order], feats[order], contribs[order], dirs[order]
    values, en, zh = _render_reasons(X, list(feature_names), rows, feats)
    names = pa.array(list(feature_names), type=pa.string())
    families = pa.array([family_key(name) for name in feature_names], type=pa.string())
    return pa.table(
        {
            "row": pa.array(rows, type=pa.int64()),
            "score": pa.repeat(pa.scalar(score, pa.string()), len(rows)),
            "direction": pa.DictionaryArray.from_arrays(pa.array(dirs, type=pa.int32()), pa.array(DIRECTIONS)).dictionary_decode(),
            "rank": pa.array(ranks.astype(np.int16)),
            "feature": pa.DictionaryArray.from_arrays(pa.array(feats, type=pa.int32()), names).dictionary_decode(),
            "family": pa.DictionaryArray.from_arrays(pa.array(feats, type=pa.int32()), families).dictionary_decode(),
            "value": values,
            "contribution": pa.array(contribs, type=pa.float64()),
            "sentence_en": en,
            "sentence_zh": zh,
        }
    )


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """Return the table with dictionary-encoded string columns as plain strings."""
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


def _check_chunk(contrib: np.ndarray, X: pd.DataFrame, feature_names: Sequence[str], *, score: str, k: int) -> np.ndarray:
    contrib = np.asarray(contrib, dtype=float)
    if score not in SCORE_KINDS + TABLE_SCORE_KINDS:
        raise ValueError(f"reasons_for_chunk: score={score!r} is not one of {SCORE_KINDS + TABLE_SCORE_KINDS}")
    if k < 1:
        raise ValueError(f"reasons_for_chunk: k={k} must be at least 1")
    if contrib.ndim != 2 or contrib.shape[1] != len(feature_names) + 1:
        raise ValueError(
            f"reasons_for_chunk: contributions have shape {contrib.shape}, expected (rows, "
            f"{len(feature_names) + 1}) = one column per feature name plus the bias as the last column"
        )
    if contrib.shape[0] != len(X):
        raise ValueError(f"reasons_for_chunk: {contrib.shape[0]} contribution rows but {len(X)} feature rows in X")
    missing = [name for name in feature_names if name not in X.columns]
    if missing:
        raise ValueError(f"reasons_for_chunk: feature(s) {missing[:5]} not among the columns of X; pass the matrix the model scored")
    return contrib


def _long_part(idx: np.ndarray, val: np.ndarray, direction: int):
    rows, slots = np.nonzero(idx >= 0)
    return rows, slots + 1, idx[rows, slots], val[rows, slots], np.full(len(rows), direction, dtype=np.int64)


def _render_reasons(X: pd.DataFrame, names: list[str], rows: np.ndarray, feats: np.ndarray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Value text and sentences of each long reason row, one feature at a time."""
    n = len(rows)
    if n == 0:
        empty = pa.array([], type=pa.string())
        no_sentences = pa.DictionaryArray.from_arrays(pa.array([], type=pa.int32()), empty)
        return empty, no_sentences, no_sentences
    by_feature = np.argsort(feats, kind="stable")
    uniq, starts = np.unique(feats[by_feature], return_index=True)
    bounds = np.append(starts, n)
    codes = np.empty(n, dtype=np.int64)  # in by_feature order
    value_parts, en_parts, zh_parts, offset = [], [], [], 0
    for j, lo, hi in zip(uniq, bounds[:-1], bounds[1:], strict=True):
        name = names[j]
        at = rows[by_feature[lo:hi]]
        raw = _column_values(X, name)[at]
        family, _ = template_for(name)
        context = None
        if family.context is not None and family.context in X.columns:
            context = _column_values(X, family.context)[at]
        value_parts.append(value_text(raw))
        feature_codes, en_u, zh_u = sentence_codes(name, raw, context)
        codes[lo:hi] = feature_codes + offset
        offset += len(en_u)
        en_parts.append(en_u)
        zh_parts.append(zh_u)
    back = np.empty(n, dtype=np.int64)
    back[by_feature] = np.arange(n)  # position in by_feature order of each long row
    order = pa.array(back)
    values = pa.concat_arrays(value_parts).take(order)
    long_codes = pa.array(codes[back], type=pa.int32())
    # Sentences stay dictionary-encoded (few distinct texts): cheap to escape for JSON and to write.
    en = pa.DictionaryArray.from_arrays(long_codes, pa.array(np.concatenate(en_parts), type=pa.string()))
    zh = pa.DictionaryArray.from_arrays(long_codes, pa.array(np.concatenate(zh_parts), type=pa.string()))
    return values, en, zh


def _column_values(X: pd.DataFrame, name: str) -> np.ndarray:
    col = X[name]
    if is_numeric(col):
        return col.to_numpy(dtype=float, na_value=np.nan)
    return col.astype(object).to_numpy()

