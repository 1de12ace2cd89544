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
raw scores (`*_raw_after`, `*_base_after`) for the next comparison. Everything is vectorised
(pandas merges and group-bys over the long reason rows), linear in customers x reasons.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.families.wording import money
from serving.number_text import round_sig3
from serving.scored_run import ScoredRun
from serving.scoring import RAW_SCORE_COLUMNS
from serving.sentences import sentence_codes

CHANGES_TABLE = "score_changes"
TRANSITIONS_TABLE = "segment_transitions"
NEW, GONE = "(new)", "(gone)"
STATUSES = ("both", "new", "gone")
LANGUAGES = ("en", "zh")
SCORES = ("churn", "value")
# Why-features kept per customer and score: three fit a sentence an account manager reads.
WHY_FEATURES = 3
# Changes smaller than what the sentences show (p_churn in hundredths, CLV to 3 significant figures) read "unchanged".
P_CHURN_SHOWN = 0.005

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
    reasons: pd.DataFrame  # REASON_INPUT_COLUMNS: the run's top reasons (explanations)

    def describe(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "as_of": None if self.as_of is None else str(self.as_of),
                "churn_model_version": self.churn_model_version, "value_model_version": self.value_model_version}


def side_of_scored(scored: ScoredRun, as_of: dt.date | None = None) -> RunSide:
    """A run being published: numbers (raw scores included) and explanations as scoring left them."""
    numbers = scored.numbers
    columns = [c for c in [*SCORE_INPUT_COLUMNS, *RAW_SCORE_COLUMNS] if c in numbers.column_names]
    scores = numbers.select(columns).to_pandas()
    versions = {c: _first(numbers, c) for c in ("churn_model_version", "value_model_version")}
    explanations = scored.explanations(columns=REASON_INPUT_COLUMNS).to_pandas()
    day = as_of if as_of is not None else _first(numbers, "as_of")
    return RunSide(str(scored.run_id), day, versions["churn_model_version"], versions["value_model_version"], scores, explanations)


def side_of_sink(sink, run_id: str) -> RunSide:
    """A published run; its raw scores come from its own `score_changes` table when it has one."""
    meta = sink.run_metadata(run_id)
    scores = sink.read_scores(run_id, columns=SCORE_INPUT_COLUMNS)
    raw_after = [f"{c}_after" for c in RAW_SCORE_COLUMNS]
    # Only the columns the comparison reads: at 1M customers the tables' sentences are gigabytes.
    own = _raw_scores_of(sink, run_id, raw_after)
    if own is not None:
        raw = own.loc[own["status"] != "gone", ["customer_id", *raw_after]]
        scores = scores.merge(raw.rename(columns=dict(zip(raw_after, RAW_SCORE_COLUMNS, strict=True))), on="customer_id", how="left")
    reasons = sink.read_explanations(run_id, columns=REASON_INPUT_COLUMNS)
    return RunSide(meta.run_id, meta.as_of, meta.churn_model_version, meta.value_model_version, scores, reasons)


def _raw_scores_of(sink, run_id: str, raw_after: list[str]) -> pd.DataFrame | None:
    """A run's own raw scores from its `score_changes` table; None for a run published before they were kept."""
    try:
        return sink.read_table(CHANGES_TABLE, run_id, columns=["customer_id", "status", *raw_after])
    except (KeyError, ValueError, pa.ArrowInvalid):  # an older table without these columns
        return None


# ---------------------------------------------------------------------- the comparison


def score_changes(before: RunSide | None, after: RunSide, *, why_features: int = WHY_FEATURES) -> pd.DataFrame:
    """One row per customer of either run: scores before and after, their changes, the why and sentences.

    With no run before, every customer of `after` is new (the table still carries the run's raw
    scores, which the next comparison reads).
    """
    before = before if before is not None else _empty_side()
    table = _joined_scores(before.scores, after.scores)
    for score in SCORES:
        _raw_parts(table, score, _model_changed(before, after, score))
    why = _why_features(before.reasons, after.reasons, table, why_features)
    for score in SCORES:
        table[f"{score}_other"] = (table[f"{score}_raw_delta"] - table[f"{score}_model_part"].fillna(0.0) - why[score].listed)
        for rank in range(why_features):
            table[f"{score}_why_{rank + 1}"] = why[score].features[rank]
            table[f"{score}_why_{rank + 1}_change"] = why[score].changes[rank]
    table["sentence_en"], table["sentence_zh"] = change_sentences(table, why)
    table.insert(1, "from_run_id", before.run_id or None)
    return table


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


def changes_tables(before: RunSide | None, after: RunSide) -> dict[str, pa.Table]:
    """The two tables a run is published with: `score_changes` and `segment_transitions`."""
    changes = score_changes(before, after)
    return {CHANGES_TABLE: _arrow(changes), TRANSITIONS_TABLE: _arrow(segment_transitions(changes))}


def with_changes(scored: ScoredRun, previous: RunSide | None, as_of: dt.date | None = None) -> ScoredRun:
    """The scored run with its changes since `previous` among its tables (published with it, all or nothing)."""
    scored.tables.update(changes_tables(previous, side_of_scored(scored, as_of)))
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


@dataclass
class _Why:
    """The why of one score, one entry per row of the changes table."""

    listed: np.ndarray  # the sum of the listed features' changes (0 where none was a reason)
    features: list[np.ndarray]  # per rank: the feature name, or None
    changes: list[np.ndarray]  # per rank: its contribution change, or NaN
    sentences: dict[str, list[np.ndarray]]  # per language, per rank: its sentence, or ""


def _why_features(before: pd.DataFrame, after: pd.DataFrame, table: pd.DataFrame, k: int) -> dict[str, _Why]:
    """Per score: each customer's listed change and its top-k features by size of their contribution change.

    A feature counts with its contribution in each run where it was one of the customer's
    reasons, 0 where it was not; only customers present in both runs have a why. Integer keys
    (row, score, feature) and bincount sums: no string joins, linear in the reason rows.
    """
    n = len(table)
    rows, score, feature, value, signed, later = _reason_rows(before, after, table)
    names, feature_code = _sorted_codes(feature)
    key = (rows * 2 + score) * max(len(names), 1) + feature_code
    keys, inverse = np.unique(key, return_inverse=True)
    change = np.bincount(inverse, weights=signed, minlength=len(keys))
    chosen_value = np.empty(len(keys), dtype=object)
    chosen_value[inverse[~later]] = value[~later]
    chosen_value[inverse[later]] = value[later]  # the later run's value wins: it is the customer's state now
    group, code = keys // max(len(names), 1), keys % max(len(names), 1)
    listed = np.bincount(group, weights=change, minlength=2 * n).reshape(n, 2)
    order = np.lexsort((code, -np.abs(change), group))
    position = np.arange(len(order))
    starts = np.r_[True, group[order][1:] != group[order][:-1]] if len(order) else np.array([], dtype=bool)
    rank = position - np.maximum.accumulate(np.where(starts, position, 0)) if len(order) else position
    kept = order[rank < k]
    kept_rank = rank[rank < k]
    kept_en, kept_zh = _feature_sentences(names[code[kept]], chosen_value[kept])
    out = {}
    for s, name in enumerate(SCORES):
        mine = (group[kept] % 2) == s
        at_row, at_rank = group[kept][mine] // 2, kept_rank[mine]
        why = _Why(listed[:, s], [np.full(n, None, dtype=object) for _ in range(k)], [np.full(n, np.nan) for _ in range(k)],
                   {"en": [np.full(n, "", dtype=object) for _ in range(k)], "zh": [np.full(n, "", dtype=object) for _ in range(k)]})
        for r in range(k):
            sel = at_rank == r
            where = at_row[sel]
            why.features[r][where] = names[code[kept][mine][sel]]
            why.changes[r][where] = change[kept][mine][sel]
            why.sentences["en"][r][where] = kept_en[mine][sel]
            why.sentences["zh"][r][where] = kept_zh[mine][sel]
        out[name] = why
    return out


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values in sorted order (ties between features break by name) and each row's code, by hashing."""
    codes, distinct = pd.factorize(values)
    distinct = np.asarray(distinct, dtype=object).astype(str)
    order = np.argsort(distinct, kind="stable")
    recode = np.empty(len(order), dtype=np.int64)
    recode[order] = np.arange(len(order))
    return distinct[order].astype(object), recode[codes] if len(codes) else codes.astype(np.int64)


def _reason_rows(before: pd.DataFrame, after: pd.DataFrame, table: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """The reason rows of both runs for customers in both: table row, score (0 churn, 1 value), feature,
    value, contribution signed (+ later run, - earlier run), and whether the row is the later run's."""
    ids = pd.Index(table["customer_id"].astype(str))
    both = (table["status"] == "both").to_numpy()
    parts = []
    for later, frame in ((False, before), (True, after)):
        rows = ids.get_indexer(frame["customer_id"].astype(str))
        keep = (rows >= 0) & both[np.clip(rows, 0, None)] if len(both) else np.zeros(len(rows), dtype=bool)
        contribution = frame["contribution"].to_numpy(dtype=float)[keep]
        parts.append((rows[keep].astype(np.int64), (frame["score"].to_numpy(dtype=object)[keep] == "value").astype(np.int64),
                      frame["feature"].to_numpy(dtype=object)[keep], frame["value"].to_numpy(dtype=object)[keep],
                      contribution if later else -contribution, np.full(int(keep.sum()), later)))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(6))


def _feature_sentences(features: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each why-feature stated with the project's sentence builder, from its value in the later run (else the earlier)."""
    en = np.empty(len(features), dtype=object)
    zh = np.empty(len(features), dtype=object)
    for feature in pd.unique(features):
        at = np.nonzero(features == feature)[0]
        codes, en_u, zh_u = sentence_codes(str(feature), _values_for_sentence(values[at]), None)
        en[at], zh[at] = en_u[codes], zh_u[codes]
    return en, zh


def _values_for_sentence(values: np.ndarray) -> np.ndarray:
    """Explanation values are text; numbers go back to floats so their sentence rounds them as at scoring."""
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    if numbers.notna().sum() == pd.Series(values).notna().sum():
        return numbers.to_numpy(dtype=float)
    return values


# ---------------------------------------------------------------------- sentences

_WORDS = {
    "en": {"rose": "rose", "fell": "fell", "other": "other features", "model": "new model", "sep": "; ", "colon": ": ",
           "end": ".", "new": "New in this run: ", "gone": "Not in this run; was: ", "between": " "},
    "zh": {"rose": "上升", "fell": "下降", "other": "其他特征", "model": "模型更换", "sep": "；", "colon": "：",
           "end": "。", "new": "本次新增客户：", "gone": "本次已无此客户；此前：", "between": ""},
}
_SCORE_NAME = {("churn", "en"): "p_churn", ("churn", "zh"): "流失概率", ("value", "en"): "value (CLV)", ("value", "zh"): "客户价值（CLV）"}


def change_sentences(table: pd.DataFrame, why: dict[str, _Why]) -> tuple[np.ndarray, np.ndarray]:
    """Per customer, in English and Chinese: how each score moved and the features that moved it.

    "p_churn rose 0.18 -> 0.61: no order for 84 days (+1.20); ...; other features +0.10." Only
    the features whose change pushed the way the score moved are stated; the remainder
    (and the model's part when the model changed) close the list with their signed raw change.
    Vectorised over object arrays; each distinct number is formatted once.
    """
    status = table["status"].to_numpy(dtype=object)
    out = {}
    for lang in ("en", "zh"):
        words = _WORDS[lang]
        clauses = []
        for score, column, kind in (("churn", "p_churn", "p"), ("value", "clv", "money")):
            before, after = table[f"{column}_before"].to_numpy(float), table[f"{column}_after"].to_numpy(float)
            reasons = _reason_list(table, why[score], score, column, lang)
            clauses.append(_score_clause(_SCORE_NAME[(score, lang)], lang, before, after, kind, reasons, status))
        text = _join_nonempty(clauses, words["between"])
        out[lang] = np.where(status == "new", words["new"] + text, np.where(status == "gone", words["gone"] + text, text))
    return out["en"], out["zh"]


def _score_clause(name: str, lang: str, before: np.ndarray, after: np.ndarray, kind: str, reasons: np.ndarray,
                  status: np.ndarray) -> np.ndarray:
    """"p_churn rose 0.18 -> 0.61: reasons." / "unchanged at", or the one value of a new or gone customer."""
    words = _WORDS[lang]
    b, a = _shown(before, kind), _shown(after, kind)
    known = ~np.isnan(before) & ~np.isnan(after)
    same = known & (b == a)
    moved = known & ~same
    word = np.where(after > before, words["rose"], words["fell"])
    head = (name + " " + word + " " + b + " -> " + a) if lang == "en" else (name + "由 " + b + " " + word + "至 " + a)
    listed = np.where(reasons != "", words["colon"] + reasons, "")
    unchanged = (name + " unchanged at " + a) if lang == "en" else (name + "不变（" + a + "）")
    one = np.where(status == "new", a, b)
    single = np.where(one != "", name + " " + one + words["end"], "")
    both = status == "both"
    return np.select([~both, same, moved], [single, unchanged + words["end"], head + listed + words["end"]], default="").astype(object)


def _reason_list(table: pd.DataFrame, why: _Why, score: str, column: str, lang: str) -> np.ndarray:
    """The stated why-features, then the remainder and the model part.

    Stated: the features that pushed the way the score the reader sees moved (p_churn, CLV). The
    blend with BG/NBD and the calibration act after the booster, so in rare cases the raw score
    moved the other way; the features are then those of the reader's direction, and the
    remainder with its sign still closes the list.
    """
    words = _WORDS[lang]
    delta = table[f"{column}_delta"].to_numpy(float)
    pieces = []
    for feature, change, sentence in zip(why.features, why.changes, why.sentences[lang], strict=True):
        agree = (feature != None) & ((np.sign(change) == np.sign(delta)) | np.isnan(delta))  # noqa: E711 (elementwise)
        pieces.append(np.where(agree, sentence + " (" + _signed_texts(change) + ")", ""))
    for column, label in ((f"{score}_other", words["other"]), (f"{score}_model_part", words["model"])):
        values = table[column].to_numpy(float)
        shown = ~np.isnan(values) & (np.round(values, 2) != 0)
        pieces.append(np.where(shown, label + " " + _signed_texts(values), ""))
    return _join_nonempty(pieces, words["sep"])


def _shown(values: np.ndarray, kind: str) -> np.ndarray:
    """Values as the sentences show them ("" where unknown): p_churn in hundredths, money to 3 significant figures."""
    if kind == "p":
        return _formatted(np.round(values, 2), "{:.2f}")
    return _formatted(round_sig3(values), None)


def _signed_texts(values: np.ndarray) -> np.ndarray:
    return _formatted(np.round(values, 2), "{:+.2f}")


def _formatted(values: np.ndarray, pattern: str | None) -> np.ndarray:
    """Each distinct value formatted once ("" for NaN); `pattern` None: money as the reasons show it."""
    out = np.full(len(values), "", dtype=object)
    known = ~np.isnan(values)
    if known.any():
        distinct, inverse = np.unique(values[known] + 0.0, return_inverse=True)
        texts = np.array([money(float(v)) if pattern is None else pattern.format(v) for v in distinct], dtype=object)
        out[known] = texts[inverse]
    return out


def _join_nonempty(pieces: list[np.ndarray], sep: str) -> np.ndarray:
    """Element-wise join of the non-empty pieces with `sep`."""
    out = np.asarray(pieces[0], dtype=object).copy()
    for piece in pieces[1:]:
        piece = np.asarray(piece, dtype=object)
        out = np.where((out != "") & (piece != ""), out + sep + piece, out + piece)
    return out


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
