"""What changed between two scoring runs, and why: segment transitions and the customers who moved most.

Two runs of a sink are compared customer by customer (the runs may have different as-of dates):

- the segment transition matrix: customers per (segment before, segment after), customers new
  in the later run counted from `(new)`, customers gone from it counted into `(gone)`;
- per customer, p_churn and CLV before and after, and WHY each score moved: the features whose
  SHAP contributions changed most between the runs.

The why is exact by SHAP additivity: a booster's raw score is its base value plus the sum of
every feature's contribution, so between two runs of the same model (same base value) the change
of the raw score is the sum of the contributions' changes. A run keeps only each customer's
top reasons (serving/reasons.py), so a feature counts with its contribution in each run where
it was a reason and 0 where it was not; every other change is one `other features` remainder,
which is the raw change minus the listed changes (and minus the model part): the parts always
add up to the raw change, nothing is hidden. When the model version changed, the difference
of the two base values (the average raw score of each model's training population) is shown
apart as the model's part; what a new model does differently for one customer beyond that
average stays mixed into the features' changes and the remainder (docs/CHANGES.md).

The raw scores and base values come from scoring (serving.scoring.RAW_SCORE_COLUMNS); the store
keeps only the contract's score columns, so each run's `score_changes` table carries its own
raw scores (`*_raw_after`, `*_base_after`) for the next comparison.

At a million customers each run has about 12M reason rows: they are read part by part as small
integer codes, the why is computed and the sentences built one range of customers at a time
(`PARTITION_ROWS`), and the feature values are read only for the why-features a sentence states,
those of the customers whose score moved as shown (serving/changes_why.py,
serving/changes_sentences.py). The table is the same, number for number and text for text, as
comparing the runs in one piece.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.changes_sentences import SHOWN_SCORES, StatedWhy, change_sentences, moved_rows, shown_scores
from serving.changes_why import (
    FeatureNames,
    PartitionWhy,
    ReasonSource,
    RunReasons,
    StatedTexts,
    encoded_reasons,
    file_reasons,
    partition_why,
    recoded,
    stated_texts,
    window_rows,
)
from serving.scored_run import ScoredRun
from serving.scoring import RAW_SCORE_COLUMNS

CHANGES_TABLE = "score_changes"
TRANSITIONS_TABLE = "segment_transitions"
NEW, GONE = "(new)", "(gone)"
STATUSES = ("both", "new", "gone")
LANGUAGES = ("en", "zh")
SCORES = ("churn", "value")
# Why-features kept per customer and score: three fit a sentence an account manager reads.
WHY_FEATURES = 3
# Customers compared at a time: the why of 100,000 customers (about 2.4M reason rows of two runs)
# takes a few hundred MB of intermediate arrays, and ten partitions at 1M cost no measurable overhead.
PARTITION_ROWS = 100_000

SCORE_INPUT_COLUMNS = ["customer_id", "p_churn", "clv", "segment", "value_tier"]
REASON_INPUT_COLUMNS = ["customer_id", "score", "feature", "value", "contribution"]


class ChangesError(LookupError):
    """Two runs cannot be compared (fewer than two runs, or a run id that does not exist)."""


@dataclass(frozen=True)
class RunSide:
    """What one run brings to a comparison: its scores, raw scores where known, and its reasons."""

    run_id: str
    as_of: dt.date | None
    churn_model_version: str | None
    value_model_version: str | None
    scores: pd.DataFrame  # SCORE_INPUT_COLUMNS, plus RAW_SCORE_COLUMNS when the run's raw scores are known
    reasons: ReasonSource  # REASON_INPUT_COLUMNS: the run's top reasons (explanations), whole or part by part

    def describe(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "as_of": None if self.as_of is None else str(self.as_of),
                "churn_model_version": self.churn_model_version, "value_model_version": self.value_model_version}


def side_of_scored(scored: ScoredRun, as_of: dt.date | None = None) -> RunSide:
    """A run being published: numbers (raw scores included) as scoring left them, its explanations read part by part."""
    numbers = scored.numbers
    columns = [c for c in [*SCORE_INPUT_COLUMNS, *RAW_SCORE_COLUMNS] if c in numbers.column_names]
    scores = numbers.select(columns).to_pandas()
    versions = {c: _first(numbers, c) for c in ("churn_model_version", "value_model_version")}
    day = as_of if as_of is not None else _first(numbers, "as_of")
    return RunSide(str(scored.run_id), day, versions["churn_model_version"], versions["value_model_version"], scores,
                   file_reasons(list(scored.explanation_parts)))


def side_of_sink(sink, run_id: str) -> RunSide:
    """A published run; its raw scores come from its own `score_changes` table when it has one.

    A sink that keeps a run's explanations in files (the store) gives them part by part; another
    sink's are read whole, in the columns the comparison needs.
    """
    meta = sink.run_metadata(run_id)
    scores = sink.read_scores(run_id, columns=SCORE_INPUT_COLUMNS)
    raw_after = [f"{c}_after" for c in RAW_SCORE_COLUMNS]
    # Only the columns the comparison reads: at 1M customers the tables' sentences are gigabytes.
    own = _raw_scores_of(sink, run_id, raw_after)
    if own is not None:
        raw = own.loc[own["status"] != "gone", ["customer_id", *raw_after]]
        scores = scores.merge(raw.rename(columns=dict(zip(raw_after, RAW_SCORE_COLUMNS, strict=True))), on="customer_id", how="left")
    files = getattr(sink, "explanation_files", None)
    reasons = file_reasons(files(run_id)) if files is not None else sink.read_explanations(run_id, columns=REASON_INPUT_COLUMNS)
    return RunSide(meta.run_id, meta.as_of, meta.churn_model_version, meta.value_model_version, scores, reasons)


def _raw_scores_of(sink, run_id: str, raw_after: list[str]) -> pd.DataFrame | None:
    """A run's own raw scores from its `score_changes` table; None for a run published before they were kept."""
    try:
        return sink.read_table(CHANGES_TABLE, run_id, columns=["customer_id", "status", *raw_after])
    except (KeyError, ValueError, pa.ArrowInvalid):  # an older table without these columns
        return None


# ---------------------------------------------------------------------- the comparison


def score_changes(before: RunSide | None, after: RunSide, *, why_features: int = WHY_FEATURES,
                  partition_rows: int = PARTITION_ROWS) -> pd.DataFrame:
    """One row per customer of either run: scores before and after, their changes, the why and sentences.

    With no run before, every customer of `after` is new (the table still carries the run's raw
    scores, which the next comparison reads).
    """
    return changes_table(before, after, why_features=why_features, partition_rows=partition_rows).to_pandas()


def changes_table(before: RunSide | None, after: RunSide, *, why_features: int = WHY_FEATURES,
                  partition_rows: int = PARTITION_ROWS, spill_to: Path | None = None) -> pa.Table:
    """`score_changes` as the Arrow table a run is published with, computed `partition_rows` customers at a time.

    The scores of both runs are joined whole (a few numbers per customer); the reasons are read
    as codes, their why computed and their sentences built one range of customers at a time, the
    feature values read only for the why-features a sentence states (serving/changes_why.py).
    `spill_to`: a file each partition's rows are written to as they are built, the table returned
    mapped from it (at 1M customers the sentences alone are most of a GB; mapped pages are the
    file's, which the system can drop and read again, not the process's own memory).
    """
    if partition_rows < 1:
        raise ValueError(f"partition_rows {partition_rows}: compare at least 1 customer at a time")
    before = before if before is not None else _empty_side()
    table = _joined_scores(before.scores, after.scores)
    for score in SCORES:
        _raw_parts(table, score, _model_changed(before, after, score))
    status = table["status"].to_numpy(dtype=object)
    numbers = {c: table[c].to_numpy(dtype=float) for c in _SENTENCE_NUMBERS}
    texts = shown_scores(numbers)
    names, why, stated = _why_of_partitions(before, after, table, status, numbers, texts, why_features, partition_rows)
    for s, score in enumerate(SCORES):
        numbers[f"{score}_other"] = numbers[f"{score}_raw_delta"] - np.nan_to_num(numbers[f"{score}_model_part"], nan=0.0) - why.listed[:, s]
    bounds = [(lo, min(lo + partition_rows, len(table))) for lo in range(0, max(len(table), 1), partition_rows)]
    parts = (_partition_table(table.iloc[lo:hi], before.run_id or None, why, stated, numbers, texts, names, lo, hi)
             for lo, hi in bounds)
    return pa.concat_tables(parts) if spill_to is None else _spilled(parts, spill_to)


def _spilled(parts: Iterator[pa.Table], path: Path) -> pa.Table:
    """The parts written one by one to an Arrow file at `path`, read back as one table mapped from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    first = next(parts)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, first.schema) as writer:
        writer.write_table(first)
        for part in parts:
            writer.write_table(part)
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def segment_transitions(changes: pd.DataFrame) -> pd.DataFrame:
    """Customers per (segment before, segment after), with shares of the row (`from`) and of everyone.

    New customers come from `(new)`, customers gone from the later run go to `(gone)`.
    """
    moves = pd.DataFrame({"from_segment": changes["segment_before"].fillna(NEW).astype(str),
                          "to_segment": changes["segment_after"].fillna(GONE).astype(str)})
    counts = moves.value_counts().rename("customers").reset_index()
    counts["customers"] = counts["customers"].astype("int64")
    counts["share_of_from"] = counts["customers"] / counts.groupby("from_segment")["customers"].transform("sum")
    counts["share_of_all"] = counts["customers"] / max(int(counts["customers"].sum()), 1)
    return counts.sort_values(["from_segment", "to_segment"], ignore_index=True)


def changes_tables(before: RunSide | None, after: RunSide, *, partition_rows: int = PARTITION_ROWS,
                   workdir: Path | None = None) -> dict[str, pa.Table]:
    """The two tables a run is published with: `score_changes` and `segment_transitions`.

    `workdir`: the run's scratch folder, where the changes table is kept while the run is published (`changes_table`).
    """
    spill = None if workdir is None else workdir / f"{CHANGES_TABLE}.arrow"
    changes = changes_table(before, after, partition_rows=partition_rows, spill_to=spill)
    segments = changes.select(["segment_before", "segment_after"]).to_pandas()
    return {CHANGES_TABLE: changes, TRANSITIONS_TABLE: _arrow(segment_transitions(segments))}


def with_changes(scored: ScoredRun, previous: RunSide | None, as_of: dt.date | None = None,
                 workdir: Path | None = None) -> ScoredRun:
    """The scored run with its changes since `previous` among its tables (published with it, all or nothing).

    `workdir`: the run's scratch folder, kept until the run is published (see `changes_tables`); None: in memory.
    """
    scored.tables.update(changes_tables(previous, side_of_scored(scored, as_of), workdir=workdir))
    return scored


def previous_run_id(sink, run_id: str, as_of: dt.date) -> str | None:
    """The run a new run is compared with: the latest published one, other than itself, as of no later date."""
    runs = sink.list_runs()
    if runs.empty:
        return None
    earlier = runs[(runs["run_id"] != run_id) & (pd.to_datetime(runs["as_of"]).dt.date <= as_of)]
    return None if earlier.empty else str(earlier["run_id"].iloc[-1])


# ---------------------------------------------------------------------- reading the changes


def changes_between(sink, from_run: str | None = None, to_run: str | None = None, *, segment: str | None = None,
                    top: int = 10, lang: str = "en") -> dict[str, Any]:
    """The transition matrix and the top movers between two runs, JSON-ready (the API and the CLI read this).

    Default: the latest run and the one published before it. The later run's `score_changes`
    table is used when it was computed against `from_run`; otherwise the two runs are compared now.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"lang {lang!r}: choose one of {', '.join(LANGUAGES)}")
    if top < 1:
        raise ValueError(f"top {top}: ask for at least 1 mover")
    to_id, from_id = _pair(sink, from_run, to_run)
    stored = sink.read_table(CHANGES_TABLE, to_id)
    if stored is not None and "from_run_id" in stored.columns and (stored["from_run_id"] == from_id).all() and len(stored):
        changes = stored
    else:
        changes = score_changes(side_of_sink(sink, from_id), side_of_sink(sink, to_id))
    before, after = sink.run_metadata(from_id), sink.run_metadata(to_id)
    return changes_report(changes, _meta(before), _meta(after), segment=segment, top=top, lang=lang)


def changes_report(changes: pd.DataFrame, before: dict, after: dict, *, segment: str | None = None,
                   top: int = 10, lang: str = "en") -> dict[str, Any]:
    """The report of a `score_changes` table: matrix, movers by p_churn and by CLV, with their why."""
    if segment is not None:
        changes = changes[(changes["segment_before"] == segment) | (changes["segment_after"] == segment)]
    both = changes[changes["status"] == "both"]
    return {
        "from": before, "to": after,
        "model_changed": {s: before.get(f"{s}_model_version") != after.get(f"{s}_model_version") for s in SCORES},
        "customers": {status: int((changes["status"] == status).sum()) for status in STATUSES},
        "transitions": _records(segment_transitions(changes)),
        "movers": {
            "p_churn": _records(most_moved(both, "p_churn_delta", top), lang),
            "clv": _records(most_moved(both, "clv_delta", top), lang),
        },
    }


MOVER_COLUMNS = ["customer_id", "segment_before", "segment_after", "p_churn_before", "p_churn_after", "p_churn_delta",
                 "clv_before", "clv_after", "clv_delta"]


def most_moved(both: pd.DataFrame, column: str, top: int) -> pd.DataFrame:
    """The `top` customers of a changes table whose `column` (a delta) moved most, either way; unmoved ones left out."""
    moved = both[both[column].notna() & (both[column] != 0)]
    order = moved[column].abs().sort_values(ascending=False, kind="stable").index[:top]
    return moved.loc[order]


def _records(frame: pd.DataFrame, lang: str | None = None) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> None); movers carry their why per score and their sentence."""
    rows = []
    for record in frame.to_dict("records"):
        if lang is None:
            rows.append({k: _plain(v) for k, v in record.items()})
            continue
        row = {k: _plain(record.get(k)) for k in MOVER_COLUMNS}
        for score in SCORES:
            row[f"{score}_why"] = _why_of(record, score)
        row["sentence"] = record.get(f"sentence_{lang}")
        rows.append(row)
    return rows


def _why_of(record: dict, score: str) -> dict[str, Any]:
    features = []
    for rank in range(1, 100):
        name = record.get(f"{score}_why_{rank}")
        if f"{score}_why_{rank}" not in record:
            break
        if name is not None and not (isinstance(name, float) and math.isnan(name)):
            features.append({"feature": name, "change": _plain(record.get(f"{score}_why_{rank}_change"))})
    return {"raw_before": _plain(record.get(f"{score}_raw_before")), "raw_after": _plain(record.get(f"{score}_raw_after")),
            "raw_change": _plain(record.get(f"{score}_raw_delta")), "features": features,
            "other_features": _plain(record.get(f"{score}_other")), "model": _plain(record.get(f"{score}_model_part"))}


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (dt.date, pd.Timestamp)):
        return str(value)
    return value


def _pair(sink, from_run: str | None, to_run: str | None) -> tuple[str, str]:
    runs = sink.list_runs()
    ids = [str(r) for r in runs["run_id"]] if not runs.empty else []
    for name, given in (("from", from_run), ("to", to_run)):
        if given is not None and given not in ids:
            raise ChangesError(f"{name} run {given}: no such published run; published runs: {ids or 'none'}")
    to_id = to_run or (ids[-1] if ids else None)
    if to_id is None:
        raise ChangesError("no published run yet: `custscore run` publishes one")
    if from_run == to_id:
        raise ChangesError(f"from run and to run are both {to_id}: a run compared with itself has no changes; "
                           "name an earlier run to compare with")
    if from_run is not None:
        return to_id, from_run
    earlier = ids[: ids.index(to_id)]
    if not earlier:
        raise ChangesError(f"run {to_id} has no run published before it to compare with (a rerun of the same as-of, "
                           "data and models replaces its run); publish a run of another date, or name one to compare with")
    return to_id, earlier[-1]


def _meta(run) -> dict[str, Any]:
    return {"run_id": run.run_id, "as_of": str(run.as_of), "churn_model_version": run.churn_model_version,
            "value_model_version": run.value_model_version}


# ---------------------------------------------------------------------- the pieces


def _empty_side() -> RunSide:
    scores = pd.DataFrame({c: pd.Series(dtype=object if c in ("customer_id", "segment", "value_tier") else float)
                           for c in SCORE_INPUT_COLUMNS})
    reasons = pd.DataFrame({c: pd.Series(dtype=float if c == "contribution" else object) for c in REASON_INPUT_COLUMNS})
    return RunSide("", None, None, None, scores, reasons)


def _joined_scores(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Both runs' scores side by side on customer_id, with the status and the changes."""
    keep = [*SCORE_INPUT_COLUMNS, *RAW_SCORE_COLUMNS]
    b = _with_columns(before, keep).astype({"customer_id": str})
    a = _with_columns(after, keep).astype({"customer_id": str})
    table = b.merge(a, on="customer_id", how="outer", suffixes=("_before", "_after"), indicator=True)
    status = table.pop("_merge").map({"both": "both", "right_only": "new", "left_only": "gone"}).astype(str)
    table.insert(1, "status", status.to_numpy())
    for column in ("p_churn", "clv"):
        table[f"{column}_delta"] = table[f"{column}_after"] - table[f"{column}_before"]
    return table.sort_values("customer_id", ignore_index=True)


def _with_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frame.reindex(columns=columns)
    for column in RAW_SCORE_COLUMNS:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return out


def _model_changed(before: RunSide, after: RunSide, score: str) -> bool:
    attr = f"{score}_model_version"
    return bool(before.run_id) and getattr(before, attr) != getattr(after, attr)


def _raw_parts(table: pd.DataFrame, score: str, model_changed: bool) -> None:
    """The raw change and the model's part of it (base-value difference when the model changed, else 0)."""
    table[f"{score}_raw_delta"] = table[f"{score}_raw_after"] - table[f"{score}_raw_before"]
    base_shift = table[f"{score}_base_after"] - table[f"{score}_base_before"]
    table[f"{score}_model_part"] = base_shift if model_changed else np.where(table[f"{score}_raw_delta"].notna(), 0.0, np.nan)


# The numbers a change sentence reads, per customer.
_SENTENCE_NUMBERS = ("p_churn_before", "p_churn_after", "p_churn_delta", "clv_before", "clv_after", "clv_delta",
                     "churn_raw_delta", "churn_model_part", "value_raw_delta", "value_model_part")


@dataclass
class _Stated:
    """The why-features the sentences state: per score and rank, an index into the texts (-1: not stated)."""

    index: np.ndarray  # (2, k, rows) int64
    texts: StatedTexts


def _why_of_partitions(before: RunSide, after: RunSide, table: pd.DataFrame, status: np.ndarray, numbers: dict[str, np.ndarray],
                       texts: dict[str, tuple[pa.Array, pa.Array]], k: int, partition_rows: int) -> tuple[np.ndarray, PartitionWhy, _Stated]:
    """Both runs' reasons read as codes, their why computed a partition of rows at a time, the stated features' sentences.

    Only customers present in both runs have a why. The reason codes are dropped before the
    caller builds the sentences.
    """
    n = len(table)
    ids = pa.array(table["customer_id"], type=pa.string())
    in_both = status == "both"
    codes = FeatureNames({})
    earlier = encoded_reasons(before.reasons, ids, in_both, codes)
    later = encoded_reasons(after.reasons, ids, in_both, codes)
    names, recode = codes.in_name_order()
    earlier, later = recoded(earlier, recode), recoded(later, recode)
    why = PartitionWhy(np.zeros((n, 2)), np.full((2, k, n), -1, dtype=np.int32), np.full((2, k, n), np.nan),
                       np.zeros((2, k, n), dtype=bool), np.zeros((2, k, n), dtype=np.int64))
    rows = window_rows(len(names), partition_rows)
    earlier, later = earlier.windowed(rows, n), later.windowed(rows, n)
    for w, lo in enumerate(range(0, n, rows)):
        hi = min(lo + rows, n)
        part = partition_why(earlier, later, w, lo, hi, k, len(names))
        why.listed[lo:hi] = part.listed
        for target, source in ((why.feature, part.feature), (why.change, part.change), (why.chosen_later, part.chosen_later),
                               (why.chosen_position, part.chosen_position)):
            target[:, :, lo:hi] = source
    stated = _stated(why, numbers, texts, status, earlier, later, names)
    return names, why, stated


def _stated(why: PartitionWhy, numbers: dict[str, np.ndarray], texts: dict[str, tuple[pa.Array, pa.Array]],
            status: np.ndarray, earlier: RunReasons, later: RunReasons, names: np.ndarray) -> _Stated:
    """Which why-features a sentence states (those of customers whose score moved as shown, pushing the way it moved)
    and their sentences, from the values read for them alone."""
    stated = np.zeros(why.feature.shape, dtype=bool)
    for s, (_score, column, _kind) in enumerate(SHOWN_SCORES):
        moved = moved_rows(status, numbers[f"{column}_before"], numbers[f"{column}_after"], texts[column])
        delta = numbers[f"{column}_delta"]
        stated[s] = moved & (why.feature[s] >= 0) & (np.sign(why.change[s]) == np.sign(delta))
    at = np.flatnonzero(stated.ravel())
    said = stated_texts(why.feature.ravel()[at], why.chosen_later.ravel()[at], why.chosen_position.ravel()[at],
                        earlier, later, names)
    index = np.full(why.feature.size, -1, dtype=np.int64)
    index[at] = said.text
    return _Stated(index.reshape(why.feature.shape), said)


def _partition_table(frame: pd.DataFrame, from_run_id: str | None, why: PartitionWhy, stated: _Stated,
                     numbers: dict[str, np.ndarray], texts: dict[str, tuple[pa.Array, pa.Array]], names: np.ndarray,
                     lo: int, hi: int) -> pa.Table:
    """The changes table's rows [lo, hi): the joined scores, the why per score, the sentences."""
    out = _arrow(frame)
    out = out.add_column(1, pa.field("from_run_id", pa.string()), pa.array([from_run_id] * len(frame), type=pa.string()))
    name_texts = pa.array(names, type=pa.string())
    k = why.feature.shape[1]
    status = frame["status"].to_numpy(dtype=object)
    window = {c: v[lo:hi] for c, v in numbers.items()}
    said = {}
    for s, score in enumerate(SCORES):
        window[f"{score}_other"] = numbers[f"{score}_other"][lo:hi]
        out = out.append_column(f"{score}_other", pa.array(window[f"{score}_other"], from_pandas=True))
        for r in range(k):
            feature = why.feature[s, r, lo:hi]
            out = out.append_column(f"{score}_why_{r + 1}", name_texts.take(pa.array(feature, mask=feature < 0)))
            out = out.append_column(f"{score}_why_{r + 1}_change", pa.array(why.change[s, r, lo:hi], from_pandas=True))
        index = stated.index[s, :, lo:hi]
        said[score] = StatedWhy({lang: [texts.take(pa.array(index[r], mask=index[r] < 0)) for r in range(k)]
                                 for lang, texts in (("en", stated.texts.en), ("zh", stated.texts.zh))},
                                [why.change[s, r, lo:hi] for r in range(k)])
    shown = {column: (b.slice(lo, hi - lo), a.slice(lo, hi - lo)) for column, (b, a) in texts.items()}
    en, zh = change_sentences(window, shown, status, said)
    return out.append_column("sentence_en", en).append_column("sentence_zh", zh)


def _first(table: pa.Table, column: str) -> Any:
    if column not in table.column_names or table.num_rows == 0:
        return None
    return table.column(column)[0].as_py()


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as Arrow with plain `string` text columns: a column with no value at all (the first run's
    `from_run_id`) is text too, not Arrow's null type, so every run's table has the same schema wherever it is published."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False).replace_schema_metadata(None)
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(i, pa.field(field.name, pa.string()), table.column(i).cast(pa.string()))
    return table
