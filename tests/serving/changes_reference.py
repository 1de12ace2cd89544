"""The comparison of two runs in one piece, as first written: the reference the streamed comparison must equal.

Used only by tests: both runs' reasons whole in pandas, every customer's why-features and
sentences built at once (serving/changes.py computes the same table a partition at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.families.wording import money
from serving.changes import REASON_INPUT_COLUMNS, SCORE_INPUT_COLUMNS, SCORES, WHY_FEATURES, RunSide
from serving.changes_why import reason_parts
from serving.number_text import round_sig3
from serving.scoring import RAW_SCORE_COLUMNS
from serving.sentences import sentence_codes


def reference_table(before: RunSide | None, after: RunSide) -> pa.Table:
    """The `score_changes` table as the whole-table comparison published it."""
    return _arrow(score_changes(None if before is None else whole(before), whole(after)))


def whole(side: RunSide) -> RunSide:
    """The side with its reasons read whole into pandas, as the whole-table comparison took them."""
    if isinstance(side.reasons, pd.DataFrame):
        return side
    parts = list(reason_parts(side.reasons, REASON_INPUT_COLUMNS))
    reasons = pa.concat_tables([p.cast(pa.schema([(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                                   for f in p.schema])) for p in parts]).to_pandas()
    return RunSide(side.run_id, side.as_of, side.churn_model_version, side.value_model_version, side.scores, reasons)


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


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as Arrow with plain `string` text columns: a column with no value at all (the first run's
    `from_run_id`) is text too, not Arrow's null type, so every run's table has the same schema wherever it is published."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False).replace_schema_metadata(None)
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(i, pa.field(field.name, pa.string()), table.column(i).cast(pa.string()))
    return table
