"""What a family declares: its columns (name, unit, window) and the sentences that state them.

A sentence states the fact behind a feature value ("spend in the last 90 days fell 62% against
the 90 days before" / "近90天消费额比前90天下降62%"), in English and Chinese. Whether the fact
raises or lowers a score is told by the reason's direction, not by the sentence, so one sentence
serves both scores.

Units (the convention every family follows):
- `*_pct_*` are percentages, as the features compute them: -62 means a fall of 62%.
- `*_share_*`, `*_rate_*` are fractions: 0.62 means 62%.
- money columns are in the data's one currency and are shown with three significant figures
  (12,437 -> "12,400").
- `days_*`, `*_days`, counts are shown as whole numbers; ratios such as `recency_over_gap_mean`
  with one decimal ("3.1x").

A template's `kind` says how a value is rounded before it is shown (serving/sentences.py): the
sentence is formatted once per displayed value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import ibis.expr.types as ir

# (value, groups of the name pattern, context value) -> (English, Chinese)
Render = Callable[[Any, dict, Any], tuple[str, str]]
# How a value is rounded for display; serving/sentences.py holds the rounding of each.
DISPLAY_KINDS = ("count", "days", "money", "pct", "pct_points", "ratio", "number", "text")
# A window in a column name: `_{W}d` or `_lifetime`.
W = r"(?:(?P<w>\d+)d|(?P<life>lifetime))"


@dataclass(frozen=True)
class Reading:
    """How a stated value reads to someone who knows nothing of the model.

    `news` maps displayed values (in the units the sentence shows them: percent for `pct`) to +1
    where the sentence reads as good news about the customer (spend rose, paid on time, no
    complaint), -1 as bad news (spend fell, paid late, no order) and 0 where it reads as neither
    (a level such as "orders every 40 days"). Good news plainly lowers churn risk and raises
    value; `scores` names the scores for which that plain reading holds (service cost is bad news
    for value, but a customer who calls a lot is not plainly leaving).
    """

    news: Callable[[np.ndarray], np.ndarray]
    scores: tuple[str, ...] = ("churn", "value")


@dataclass(frozen=True)
class Template:
    """The sentences of the columns whose name matches `pattern` (a full-match regex)."""

    pattern: str
    kind: str  # one of DISPLAY_KINDS
    noun_en: Callable[[dict], str]  # what the column measures, for a missing value
    noun_zh: Callable[[dict], str]
    render: Render
    context: str | None = None  # another feature of the same row the sentence uses
    # The fact the sentence states, shared by the templates that state one fact in other words
    # (days since the last order and its ratio to the usual gap): a customer's reasons name each
    # fact once per score and direction (serving/reason_selection.py). None: its own pattern.
    fact: str | None = None
    reading: Reading | None = None  # None: the sentence reads as neither good nor bad news


def stating(fact: str, *templates: Template, reading: Reading | None = None) -> tuple[Template, ...]:
    """The templates, marked as stating one `fact` (and read alike, when `reading` is given)."""
    return tuple(replace(t, fact=fact, reading=reading or t.reading) for t in templates)


def read_as(template: Template, reading: Reading) -> Template:
    return replace(template, reading=reading)


# --------------------------------------------------------------------------- plain readings
# Each takes displayed values (NaN reads as nothing) and returns +1 good news, -1 bad, 0 neither.


def rise_is_good(x: np.ndarray) -> np.ndarray:
    """A change: up is good news, down bad, none neither ("spend rose 40%")."""
    return np.nan_to_num(np.sign(x)).astype(np.int8)


def rise_is_bad(x: np.ndarray) -> np.ndarray:
    """A change of something unwelcome: more complaints, paying later."""
    return -rise_is_good(x)


def some_is_bad(x: np.ndarray) -> np.ndarray:
    """A count or amount of something unwelcome: none is good news, any bad ("2 complaints", "paid 5 days late")."""
    with np.errstate(invalid="ignore"):
        return np.where(x > 0, -1, np.where(x <= 0, 1, 0)).astype(np.int8)


def none_is_bad(x: np.ndarray) -> np.ndarray:
    """A level of business: none (or less, net of returns) is bad news ("no orders", "spend of 0"), any amount neither."""
    with np.errstate(invalid="ignore"):
        return np.where(x <= 0, -1, 0).astype(np.int8)


def levels(good_at: float, bad_at: float) -> Callable[[np.ndarray], np.ndarray]:
    """Good news at or beyond `good_at`, bad at or beyond `bad_at` on the other side, neither between."""
    higher_is_good = good_at > bad_at

    def news(x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            good, bad = (x >= good_at, x <= bad_at) if higher_is_good else (x <= good_at, x >= bad_at)
        return np.where(good, 1, np.where(bad, -1, 0)).astype(np.int8)

    return news


@dataclass(frozen=True)
class Column:
    """One column (or one column per window) of a family, as the docs table lists it."""

    name: str  # with {W} for each window (days), {P} for each window or lifetime, {H} for each horizon, {col} for a customers column
    unit: str
    window: str
    meaning: str


# (spec, {table: columns present}) -> the family's column names, in table order
Names = Callable[[Any, Mapping[str, Collection[str]]], list[str]]
# (table holding the aggregates, spec) -> {column: expression} computed after the shared passes
Derive = Callable[["ir.Table", Any], dict[str, "ir.Value"]]


@dataclass(frozen=True)
class Family:
    """A feature family: its key (stored with each reason), columns, names, templates, expressions."""

    key: str
    title: str
    columns: tuple[Column, ...]
    names: Names
    templates: tuple[Template, ...]
    derive: Derive | None = None  # for transaction families: expressions over the shared aggregates
    built_by: str = "features.build"  # where the columns are computed


# --------------------------------------------------------------------------- formatting


def whole(x: float) -> str:
    return f"{x:,.0f}"


def money(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def decimal(x: float) -> str:
    return f"{x:g}"


def plural(n: float, word: str, many: str | None = None) -> str:
    return f"{whole(n)} {word if abs(n) == 1 else (many or word + 's')}"


def w_en(g: dict) -> str:
    return "in total" if g.get("life") else f"in the last {g['w']} days"


def w_zh(g: dict) -> str:
    return "累计" if g.get("life") else f"近{g['w']}天"


def fixed(en: str, zh: str) -> tuple[Callable[[dict], str], Callable[[dict], str]]:
    return (lambda g: en), (lambda g: zh)


def humanise(name: str) -> str:
    """Return a feature code as words: 'loyalty_points_90d' -> 'loyalty points (90 days)'."""
    words = []
    for token in name.split("_"):
        if re.fullmatch(r"\d+d", token):
            words.append(f"({token[:-1]} days)")
        elif re.fullmatch(r"\d+m", token):
            words.append(f"({token[:-1]} months)")
        else:
            words.append({"pct": "%", "prev": "previous", "vs": "vs", "attr": ""}.get(token, token))
    return " ".join(w for w in words if w) or name


# --------------------------------------------------------------------------- template makers


def count_template(
    stem: str, word: str, many: str | None, zh: Callable[[dict, str], str], none_en: str, none_zh: Callable[[dict], str],
    noun_zh: str, *, verb_en: str = "",
) -> Template:
    """`{stem}_{W}`: 'no returns in the last 90 days' / '3 returns in the last 90 days'."""
    def render(x, g, _):
        if x == 0:
            return f"{none_en} {w_en(g)}", none_zh(g)
        return f"{verb_en}{plural(x, word, many)} {w_en(g)}", zh(g, whole(x))

    return Template(rf"{stem}_{W}", "count", lambda g: f"{many or word + 's'} {w_en(g)}", lambda g: f"{w_zh(g)}{noun_zh}", render)


def money_template(stem: str, en: str, zh: str, *, noun_en: str | None = None, absolute: bool = False) -> Template:
    """`{stem}_{W}`; `en` holds {m} where the amount goes: 'spend of {m}'."""

    def render(x, g, _):
        m = money(abs(x) if absolute else x)
        return f"{en.format(m=m)} {w_en(g)}", f"{w_zh(g)}{zh}{m}"

    noun = noun_en or en.replace(" of {m}", "").replace(" {m}", "")
    return Template(rf"{stem}_{W}", "money", lambda g: f"{noun} {w_en(g)}", lambda g: f"{w_zh(g)}{zh}", render)


def share_template(stem: str, en: str, zh: str) -> Template:
    """`{stem}_{W}`, a fraction of spend: 'returns were 12% of spend in the last 90 days'."""
    return Template(
        rf"{stem}_{W}",
        "pct",
        lambda g: f"{en} share of spend {w_en(g)}",
        lambda g: f"{w_zh(g)}{zh}占比",
        lambda x, g, _: (f"{en} were {whole(x)}% of spend {w_en(g)}", f"{w_zh(g)}{zh}占消费额{whole(x)}%"),
    )


def amount_or_none(en: str, zh: str, none_en: str, none_zh: str) -> Render:
    def render(x, _g, _c):
        if x == 0:
            return none_en, none_zh
        return f"{en} of {money(x)}", f"{zh}{money(x)}"

    return render


def column_pattern(name: str) -> str:
    """The regex of a documented column name: '{W}' a number of days, '{P}' that or 'lifetime', ..."""
    parts = re.split(r"(\{W\}|\{P\}|\{H\}|\{col\})", name)
    holes = {"{W}": r"\d+", "{H}": r"\d+", "{P}": r"(?:\d+d|lifetime)", "{col}": r".+"}
    return "".join(holes.get(part, re.escape(part)) for part in parts)
