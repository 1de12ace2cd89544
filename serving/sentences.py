"""Reason sentences: a feature value as the fact an account manager reads, in English and Chinese.

The templates are the feature families' (features/catalog.py); this module rounds each value to
what its sentence shows and formats the sentence once per distinct displayed value of a feature
in a chunk, then broadcasts it with numpy, so the cost grows with the number of distinct values,
not with rows x reasons. Sentences already rendered are kept per feature (bounded), since later
chunks of a run mostly show values seen before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.catalog import template_of
from features.families.recency import NO_ORDERS
from features.families.wording import Template, humanise, money
from serving.number_text import round_sig3

# The heading of each group of reasons in a reason text (English, Chinese): what a reader of the
# score table, and a command that cuts the texts apart (the action list), look for.
HEADERS = {
    ("churn", "raises"): ("Raises churn risk: ", "推高流失风险："),
    ("churn", "lowers"): ("Lowers churn risk: ", "降低流失风险："),
    ("value", "raises"): ("Raises value: ", "提升价值："),
    ("value", "lowers"): ("Lowers value: ", "拉低价值："),
    ("payment", "raises"): ("Raises late-payment risk: ", "推高逾期付款风险："),
    ("payment", "lowers"): ("Lowers late-payment risk: ", "降低逾期付款风险："),
}

# How each display kind rounds a value before it is shown (features/families/wording.py DISPLAY_KINDS).
_KEYS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "count": np.round,
    "days": np.round,
    "money": round_sig3,
    "pct": lambda v: np.round(v * 100.0),
    "pct_points": lambda v: np.round(v),  # already in percent (revenue_change_pct_*)
    "ratio": lambda v: np.round(v, 1),
    "number": round_sig3,
}


def _fallback(name: str) -> Template:
    """The plain statement of a column no family lists ('words of the name: value')."""
    human = humanise(name)

    def render(x, _g, _c):
        text = x if isinstance(x, str) else money(x)
        return f"{human}: {text}", f"{human}：{text}"

    return Template(re.escape(name), "number", lambda g: human, lambda g: human, render)


@lru_cache(maxsize=4096)
def template_for(feature: str) -> tuple[Template, dict]:
    """The sentence template of a feature name and the groups its pattern captured."""
    found = template_of(feature)
    if found is None:
        return _fallback(feature), {}
    return found[1], found[2]


def _is_missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _render_one(family: Template, groups: dict, x: object, context: object) -> tuple[str, str]:
    if _is_missing(x) and family.kind != "text":
        if family.pattern == "days_since_last_order":
            return NO_ORDERS
        return f"{family.noun_en(groups)}: no data", f"{family.noun_zh(groups)}：无数据"
    if family.kind != "text" and isinstance(x, str):  # a text value in a numeric family: show it as is
        return f"{family.noun_en(groups)}: {x}", f"{family.noun_zh(groups)}：{x}"
    return family.render(x, groups, context)


def sentence(feature: str, value: object, *, context: object = None) -> tuple[str, str]:
    """Return the (English, Chinese) sentence for one feature value (context: see module doc)."""
    family, groups = template_for(feature)
    values = _as_values(np.array([value], dtype=object), family.kind)
    ctx = None if context is None else float(_KEYS["ratio"](np.array([float(context)]))[0]) + 0.0
    return _render_one(family, groups, values[0], ctx)


def _as_values(raw: np.ndarray, kind: str) -> np.ndarray:
    """Round raw values to what the sentence shows (the key used to format each value once)."""
    if kind == "text":
        return raw
    try:
        numeric = raw.astype(float)
    except (TypeError, ValueError):
        return np.array([None if _is_missing(v) else str(v) for v in raw], dtype=object)
    # + 0.0 turns -0.0 into 0.0: factorize and the text cache take them for one value, and the
    # sentence must not depend on which comes first (chunks hold customers in no fixed order).
    return _KEYS[kind](numeric) + 0.0


def displayed_values(values: np.ndarray, kind: str) -> np.ndarray:
    """Numeric values as their sentence shows them (percent for `pct`, whole days, three significant figures)."""
    return _KEYS[kind](np.asarray(values, dtype=float)) + 0.0


def sentences_for_feature(feature: str, values: np.ndarray, context: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return English and Chinese sentences for many values of one feature (formatted once per distinct value)."""
    codes, en_u, zh_u = sentence_codes(feature, values, context)
    return en_u[codes], zh_u[codes]


def sentence_codes(feature: str, values: np.ndarray, context: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (codes, distinct English sentences, distinct Chinese sentences) for one feature."""
    family, groups = template_for(feature)
    keys = _as_values(np.asarray(values), family.kind)
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    ctx_uniques: np.ndarray = np.array([None], dtype=object)
    if family.context is not None and context is not None:
        ctx_codes, ctx_uniques = pd.factorize(_KEYS["ratio"](np.asarray(context, dtype=float)) + 0.0, use_na_sentinel=False)
        codes, pairs = pd.factorize(codes.astype(np.int64) * len(ctx_uniques) + ctx_codes)
        value_index, ctx_index = pairs // len(ctx_uniques), pairs % len(ctx_uniques)
        if isinstance(uniques, np.ndarray) and uniques.dtype == np.float64 and ctx_uniques.dtype == np.float64:
            en_u, zh_u = _float_sentences_with_context(feature, family, groups, uniques[value_index], ctx_uniques, ctx_index)
            return np.asarray(codes, dtype=np.int64), en_u, zh_u
    elif isinstance(uniques, np.ndarray) and uniques.dtype == np.float64:
        en_u, zh_u = _float_sentences(feature, family, groups, uniques)
        return np.asarray(codes, dtype=np.int64), en_u, zh_u
    else:
        value_index, ctx_index = np.arange(len(uniques)), np.zeros(len(uniques), dtype=np.int64)
    en_u = np.empty(len(value_index), dtype=object)
    zh_u = np.empty(len(value_index), dtype=object)
    seen = _RENDERED.setdefault(feature, {})
    if len(seen) > _RENDERED_PER_FEATURE:
        seen.clear()
    for i, (vi, ci) in enumerate(zip(value_index, ctx_index, strict=True)):
        x = uniques[vi]
        x = float(x) if isinstance(x, (np.floating, np.integer)) else x
        c = ctx_uniques[ci]
        c = None if _is_missing(c) else float(c)
        key = (_exact(x), _exact(c))
        pair = seen.get(key) if key[0] is not _UNCACHED else None
        if pair is None:
            pair = _render_one(family, groups, x, c)
            if key[0] is not _UNCACHED and key[1] is not _UNCACHED:
                seen[key] = pair
        en_u[i], zh_u[i] = pair
    return np.asarray(codes, dtype=np.int64), en_u, zh_u


# Sentences already rendered, per feature, keyed by the exact displayed value and context:
# later chunks of a run mostly show values seen before. Bounded so memory stays flat.
_RENDERED: dict[str, dict[tuple, tuple[str, str]]] = {}
_RENDERED_PER_FEATURE = 50_000
_UNCACHED = object()


@dataclass(frozen=True)
class _RenderedFloats:
    """Sentences of one feature rendered so far, keyed by the bit pattern of the displayed value."""

    keys: pd.Index  # int64 view of the float64 values: -0.0 and 0.0 differ, every NaN is one key
    en: np.ndarray
    zh: np.ndarray


_RENDERED_FLOATS: dict[str, _RenderedFloats] = {}


# Sentences of (value, context) pairs rendered so far, per feature, keyed by the bit patterns of
# both floats. A plain dict: a chunk has a few thousand distinct pairs, and one probe per pair
# costs less than one vectorised probe per distinct context value.
_RENDERED_PAIRS: dict[str, dict[tuple[int, int], tuple[str, str]]] = {}


def _float_sentences_with_context(
    feature: str, family: Template, groups: dict, values: np.ndarray, ctx_uniques: np.ndarray, ctx_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sentences of distinct (value, context) pairs, rendering only pairs not seen before."""
    cache = _RENDERED_PAIRS.setdefault(feature, {})
    if len(cache) > _RENDERED_PER_FEATURE:
        cache.clear()
    contexts = np.asarray(ctx_uniques, dtype=np.float64)[ctx_index]
    en_u, zh_u = np.empty(len(values), dtype=object), np.empty(len(values), dtype=object)
    value_bits, context_bits = values.view(np.int64).tolist(), contexts.view(np.int64).tolist()
    for i, key in enumerate(zip(value_bits, context_bits, strict=True)):
        pair = cache.get(key)
        if pair is None:
            c = contexts[i]
            pair = cache[key] = _render_one(family, groups, float(values[i]), None if math.isnan(c) else float(c))
        en_u[i], zh_u[i] = pair
    return en_u, zh_u


def _float_sentences(
    key: str, family: Template, groups: dict, uniques: np.ndarray, context: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """English and Chinese sentence of each distinct displayed value (float64), rendering only unseen ones.

    `key` names the feature the cache is for. The look-up is one hash
    probe per value in numpy, so a warm chunk costs no Python per value.
    """
    bits = uniques.view(np.int64)
    cache = _RENDERED_FLOATS.get(key)
    if cache is None or len(cache.keys) > _RENDERED_PER_FEATURE:
        cache = _RenderedFloats(pd.Index([], dtype=np.int64), np.empty(0, dtype=object), np.empty(0, dtype=object))
    position = cache.keys.get_indexer(bits)
    unseen = np.nonzero(position < 0)[0]
    if len(unseen):
        rendered = [_render_one(family, groups, float(x), context) for x in uniques[unseen]]
        en_new, zh_new = np.empty(len(unseen), dtype=object), np.empty(len(unseen), dtype=object)
        en_new[:], zh_new[:] = [en for en, _ in rendered], [zh for _, zh in rendered]
        position[unseen] = len(cache.keys) + np.arange(len(unseen))
        cache = _RenderedFloats(cache.keys.append(pd.Index(bits[unseen])), np.concatenate([cache.en, en_new]), np.concatenate([cache.zh, zh_new]))
        _RENDERED_FLOATS[key] = cache
    return cache.en[position], cache.zh[position]


def _exact(x: object) -> object:
    """A key equal only for values that render alike: NaN is not cached, and 0.0 and -0.0 differ ('-0')."""
    if isinstance(x, float):
        return _UNCACHED if math.isnan(x) else (x, math.copysign(1.0, x))
    if x is None or isinstance(x, str):
        return x
    return _UNCACHED


def value_text(values: np.ndarray) -> pa.Array:
    """Return feature values as text for the explanations table (null for missing; 3.0 -> '3').

    Numbers keep four decimals: enough to recompute a sentence, without float noise
    such as 378.16749999999996.
    """
    values = np.asarray(values)
    if values.dtype.kind not in "fiub":
        return pa.array([None if _is_missing(v) else str(v) for v in values], type=pa.string())
    rounded = np.round(values.astype(float), 4)
    whole = _small_whole_numbers(rounded)
    if not whole.any():
        return pc.cast(pa.array(rounded, from_pandas=True), pa.string())
    # Whole numbers print alike as integers, and integer-to-text is ~4x cheaper than float-to-text.
    as_int = pc.cast(pa.array(rounded[whole].astype(np.int64)), pa.string())
    if whole.all():
        return as_int
    as_float = pc.cast(pa.array(rounded[~whole], from_pandas=True), pa.string())
    order = np.concatenate([np.nonzero(whole)[0], np.nonzero(~whole)[0]])
    back = np.empty(len(order), dtype=np.int64)
    back[order] = np.arange(len(order))
    return pa.concat_arrays([as_int, as_float]).take(pa.array(back))


def _small_whole_numbers(values: np.ndarray) -> np.ndarray:
    """True where a float is a whole number that Arrow prints without exponent or sign quirk (not -0.0)."""
    with np.errstate(invalid="ignore"):
        return (np.abs(values) < 1e6) & (values == np.trunc(values)) & ~((values == 0) & np.signbit(values))

