"""The change sentences of a comparison, in English and Chinese, built with Arrow's string kernels.

"p_churn rose 0.18 -> 0.61: no order for 84 days (+1.20); ...; other features +0.10." Only the
features whose change pushed the way the score moved are stated; the remainder (and the model's
part when the model changed) close the list with their signed raw change. A score that did not
move as shown reads "unchanged at"; a new or gone customer has its one value. Each distinct
number is formatted once; the texts are joined in Arrow (no Python string per customer), a
missing piece is null and pieces are joined skipping nulls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.families.wording import money
from serving.number_text import round_sig3

_WORDS = {
    "en": {"rose": "rose", "fell": "fell", "other": "other features", "model": "new model", "sep": "; ", "colon": ": ",
           "end": ".", "new": "New in this run: ", "gone": "Not in this run; was: ", "between": " "},
    "zh": {"rose": "上升", "fell": "下降", "other": "其他特征", "model": "模型更换", "sep": "；", "colon": "：",
           "end": "。", "new": "本次新增客户：", "gone": "本次已无此客户；此前：", "between": ""},
}
_SCORE_NAME = {("churn", "en"): "p_churn", ("churn", "zh"): "流失概率", ("value", "en"): "value (CLV)", ("value", "zh"): "客户价值（CLV）"}
# (score, the column the reader sees, how it is shown)
SHOWN_SCORES = (("churn", "p_churn", "p"), ("value", "clv", "money"))


@dataclass
class StatedWhy:
    """The why-features one score's sentence states, per rank: their sentence (null where not stated) and change."""

    sentences: dict[str, list[pa.Array]]  # per language, per rank
    changes: list[np.ndarray]  # per rank, NaN where none


def shown(values: np.ndarray, kind: str) -> pa.Array:
    """Values as the sentences show them (null where unknown): p_churn in hundredths, money to 3 significant figures."""
    if kind == "p":
        return _formatted(np.round(values, 2), "{:.2f}")
    return _formatted(round_sig3(values), None)


def shown_scores(columns: dict[str, np.ndarray]) -> dict[str, tuple[pa.Array, pa.Array]]:
    """p_churn and CLV before and after as the sentences show them, formatted once for both languages."""
    return {column: (shown(columns[f"{column}_before"], kind), shown(columns[f"{column}_after"], kind))
            for _score, column, kind in SHOWN_SCORES}


def moved_rows(status: np.ndarray, before: np.ndarray, after: np.ndarray, texts: tuple[pa.Array, pa.Array]) -> np.ndarray:
    """Customers in both runs whose score, as shown (`texts`), differs: only their sentence lists why-features."""
    differs = pc.fill_null(pc.not_equal(*texts), False).to_numpy(zero_copy_only=False)
    return (status == "both") & ~np.isnan(before) & ~np.isnan(after) & differs


def change_sentences(columns: dict[str, np.ndarray], texts: dict[str, tuple[pa.Array, pa.Array]], status: np.ndarray,
                     why: dict[str, StatedWhy]) -> tuple[pa.Array, pa.Array]:
    """Per customer, in English and Chinese: how each score moved and the features that moved it.

    `columns`: p_churn_before/after/delta, clv_before/after/delta, {score}_other and
    {score}_model_part, one value per customer; `texts`: the scores as shown (`shown_scores`).
    """
    n = len(status)
    signed = {score: _signed_changes(columns, why[score], score) for score, _column, _kind in SHOWN_SCORES}
    out = {}
    for lang in ("en", "zh"):
        words = _WORDS[lang]
        clauses = []
        for score, column, _kind in SHOWN_SCORES:
            reasons = _reason_list(why[score], signed[score], lang)
            clauses.append(_score_clause(_SCORE_NAME[(score, lang)], lang, columns[f"{column}_before"],
                                         columns[f"{column}_after"], texts[column], reasons, status))
        text = pc.fill_null(_join_present(clauses, words["between"]), "")
        prefix = pa.array(np.where(status == "new", words["new"], np.where(status == "gone", words["gone"], "")), type=pa.string())
        out[lang] = pc.binary_join_element_wise(prefix, text, "") if n else pa.array([], type=pa.string())
    return out["en"], out["zh"]


def _score_clause(name: str, lang: str, before: np.ndarray, after: np.ndarray, texts: tuple[pa.Array, pa.Array],
                  reasons: pa.Array, status: np.ndarray) -> pa.Array:
    """"p_churn rose 0.18 -> 0.61: reasons." / "unchanged at", or the one value of a new or gone customer; null: no clause."""
    words = _WORDS[lang]
    b, a = texts
    known = ~np.isnan(before) & ~np.isnan(after)
    same = known & pc.fill_null(pc.equal(b, a), False).to_numpy(zero_copy_only=False)
    moved = known & ~same
    word = pa.array(np.where(after > before, words["rose"], words["fell"]), type=pa.string())
    if lang == "en":
        head = _concat(name + " ", word, " ", b, " -> ", a)
        unchanged = _concat(name + " unchanged at ", a, words["end"])
    else:
        head = _concat(name + "由 ", b, " ", word, "至 ", a)
        unchanged = _concat(name + "不变（", a, "）" + words["end"])
    listed = pc.if_else(pc.is_null(reasons), "", _concat(words["colon"], reasons))
    moved_text = _concat(head, listed, words["end"])
    one = pc.if_else(pa.array(status == "new"), a, b)
    single = _concat(name + " ", one, words["end"])
    both = status == "both"
    empty = pa.nulls(len(status), type=pa.string())
    text = pc.if_else(pa.array(~both), single, pc.if_else(pa.array(same), unchanged, pc.if_else(pa.array(moved), moved_text, empty)))
    return text


def _signed_changes(columns: dict[str, np.ndarray], why: StatedWhy, score: str) -> dict[str, list[pa.Array]]:
    """The signed numbers of a reason list, the same in both languages: " (+0.95)" per rank, the remainder's and the model's."""
    rest = {}
    for part in ("other", "model_part"):
        values = columns[f"{score}_{part}"]
        present = ~np.isnan(values) & (np.round(values, 2) != 0)
        rest[part] = _signed_texts(np.where(present, values, np.nan))
    return {"ranks": [_concat(" (", _signed_texts(change), ")") for change in why.changes], "other": [rest["other"]],
            "model": [rest["model_part"]]}


def _reason_list(why: StatedWhy, signed: dict[str, list[pa.Array]], lang: str) -> pa.Array:
    """The stated why-features, then the remainder and the model part; null where none.

    Stated: the features that pushed the way the score the reader sees moved (p_churn, CLV). The
    blend with BG/NBD and the calibration act after the booster, so in rare cases the raw score
    moved the other way; the features are then those of the reader's direction, and the
    remainder with its sign still closes the list.
    """
    words = _WORDS[lang]
    pieces = [_concat(sentence, number) for sentence, number in zip(why.sentences[lang], signed["ranks"], strict=True)]
    pieces.append(_concat(words["other"] + " ", signed["other"][0]))
    pieces.append(_concat(words["model"] + " ", signed["model"][0]))
    return _join_present(pieces, words["sep"])


def _signed_texts(values: np.ndarray) -> pa.Array:
    return _formatted(np.round(values, 2), "{:+.2f}")


def _formatted(values: np.ndarray, pattern: str | None) -> pa.Array:
    """Each distinct value formatted once (null for NaN); `pattern` None: money as the reasons show it."""
    values = np.asarray(values, dtype=float)
    known = ~np.isnan(values)
    index = np.zeros(len(values), dtype=np.int64)
    texts: list[str] = []
    if known.any():
        distinct, inverse = np.unique(values[known] + 0.0, return_inverse=True)
        texts = [money(float(v)) if pattern is None else pattern.format(v) for v in distinct]
        index[known] = inverse
    return pa.array(texts, type=pa.string()).take(pa.array(index, mask=~known)) if texts else pa.nulls(len(values), type=pa.string())


def _concat(*pieces) -> pa.Array:
    """Element-wise concatenation; null where any piece is null."""
    return pc.binary_join_element_wise(*pieces, "")


def _join_present(pieces: list[pa.Array], sep: str) -> pa.Array:
    """Element-wise join of the non-null pieces with `sep`; null where every piece is null.

    A fold with coalesce: both present -> joined, one missing -> the other. (Arrow's own
    null_handling="skip" drops the rows where every piece is null.)
    """
    out = pieces[0]
    for piece in pieces[1:]:
        out = pc.coalesce(_concat(out, sep, piece), out, piece)
    return out
