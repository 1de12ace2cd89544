"""The action list: whom to offer a retention action first, and why, from a run's score table.

A customer's expected net gain from a retention action is

    expected_gain = p_churn x save_rate x value_at_stake - offer_cost

`p_churn` is the churn model's probability; `save_rate` is the user's estimate of the share of
would-be leavers an action keeps (nothing in the data measures it, so the list is only as good as
that estimate: `sensitivity` shows how the list moves with it); `value_at_stake` is the score
table's `clv`, the margin-based customer lifetime value: expected margin minus expected cost to
serve over the value horizon, discounted to today (models/valuation.py). Not `expected_margin`,
which ignores what serving the customer costs, nor `expected_revenue`, which is not profit, and
not `net_value`, which is not discounted to today when the offer is paid. `offer_cost` is paid for
every customer offered the action, whether or not they would have left.

Customers with a positive gain are ranked by it (highest first, customer id breaking ties) and
kept within a budget: a number of customers, or money spent on offers (cumulative offer cost).
The selection is one list for the whole budget; an owner column (an account manager from the
customers table) then groups it, each owner's customers in the order of the list. Each kept
customer carries the reasons that raise its churn score, in English and Chinese, as the score
table states them: why to call.

Pure functions over pandas frames, and two readers of a published run for the report, the API and
the command (`actions_of_run`, `sensitivity_of_run`); no configuration files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.sentences import HEADERS

if TYPE_CHECKING:
    from serving.sink import ScoreSink

VALUE_AT_STAKE = "clv"  # margin-based CLV, discounted (see the module docstring for why this column)
NO_OWNER = "(no owner)"
BudgetKind = Literal["count", "money"]
BUDGET_KINDS: tuple[str, ...] = ("count", "money")

# Columns of an action list, in order (`owner` only when an owner column is given).
ACTION_COLUMNS: tuple[str, ...] = (
    "rank", "owner", "owner_rank", "customer_id", "p_churn", "value_at_stake", "save_rate", "offer_cost",
    "expected_saved_value", "expected_gain", "cumulative_offer_cost", "cumulative_gain", "value_tier", "segment",
    "churn_reason_features", "reason_to_call_en", "reason_to_call_zh",
)  # fmt: skip
SENSITIVITY_COLUMNS: tuple[str, ...] = (
    "save_rate", "customers", "total_expected_gain", "total_offer_cost", "total_expected_saved_value",
    "customers_with_gain", "gain_beyond_budget",
)  # fmt: skip
SCORE_COLUMNS_USED: tuple[str, ...] = (
    "customer_id", "p_churn", VALUE_AT_STAKE, "value_tier", "segment", "reasons", "reason_text_en", "reason_text_zh",
)  # fmt: skip


class ActionPolicy(BaseModel):
    """How the list is drawn: the save rate the user expects, what an offer costs, the budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The share of would-be leavers one action keeps: the user's estimate, not something learnt.
    save_rate: Annotated[float, Field(gt=0, le=1)] = 0.2
    # Money spent per customer offered the action (discount, call time), in the data's currency.
    offer_cost: Annotated[float, Field(ge=0)] = 50.0
    # How many customers (count) or how much money in offers (money) the list may use.
    budget: Annotated[float, Field(gt=0)] = 50
    budget_kind: BudgetKind = "count"
    # Churn reasons shown per customer (at most what the score table holds).
    reasons: Annotated[int, Field(ge=1, le=10)] = 3
    # Save rates of the sensitivity view.
    sensitivity_save_rates: Annotated[tuple[Annotated[float, Field(gt=0, le=1)], ...], Field(min_length=1)] = (
        0.05, 0.1, 0.2, 0.3, 0.4, 0.5)

    @model_validator(mode="after")
    def _whole_count(self) -> ActionPolicy:
        if self.budget_kind == "count" and self.budget != int(self.budget):
            raise ValueError(f"budget {self.budget} counts customers, so it must be a whole number "
                             "(or set budget_kind: money for an amount of money)")
        return self


def expected_gain(p_churn: np.ndarray, save_rate: float, value_at_stake: np.ndarray, offer_cost: float) -> np.ndarray:
    """p_churn x save_rate x value_at_stake - offer_cost; NaN where a score is missing (an unscored customer)."""
    return np.asarray(p_churn, dtype=float) * save_rate * np.asarray(value_at_stake, dtype=float) - offer_cost


def ranked_by_gain(scores: pd.DataFrame, save_rate: float, offer_cost: float) -> pd.DataFrame:
    """Every customer whose expected gain is above zero, highest gain first (customer id breaks ties)."""
    p_churn = scores["p_churn"].to_numpy(dtype=float)
    value = scores[VALUE_AT_STAKE].to_numpy(dtype=float)
    # Rounded to a millionth of the currency: 0.5 x 0.2 x 100 - 10 is 1.8e-15 in floating point, not a gain.
    gain = np.round(expected_gain(p_churn, save_rate, value, offer_cost), 6)
    rows = np.flatnonzero(gain > 0)  # NaN (an unscored customer) compares False: left out
    frame = pd.DataFrame({
        "customer_id": _taken(scores["customer_id"], rows).astype(str),
        "p_churn": p_churn[rows],
        "value_at_stake": value[rows],
        "save_rate": float(save_rate),
        "offer_cost": float(offer_cost),
        "expected_saved_value": p_churn[rows] * save_rate * value[rows],
        "expected_gain": gain[rows],
        "source_row": rows,
    })
    return frame.sort_values(["expected_gain", "customer_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def within_budget(ranked: pd.DataFrame, budget: float, budget_kind: BudgetKind) -> pd.DataFrame:
    """The head of a ranked list the budget pays for: `budget` customers, or offers costing at most `budget` together."""
    if budget_kind == "count":
        return ranked.head(int(budget)).reset_index(drop=True)
    if budget_kind != "money":
        raise ValueError(f"budget_kind {budget_kind!r} is not one of {', '.join(BUDGET_KINDS)}; use one of those")
    spent = ranked["offer_cost"].cumsum()
    # A little slack so that a budget of exactly n offers is not lost to float rounding of the sum.
    return ranked[spent <= budget * (1 + 1e-12)].reset_index(drop=True)


def action_list(scores: pd.DataFrame, policy: ActionPolicy, *, explanations: pd.DataFrame | None = None,
                owners: pd.Series | None = None) -> pd.DataFrame:
    """The customers to act on first within the budget, with why (ACTION_COLUMNS; `owner` only with owners).

    `owners` maps customer_id (its index) to an owner name; customers it does not name get NO_OWNER.
    With owners the rows are grouped by owner, owners in order of their total gain, each owner's
    customers in list order (`owner_rank`); `rank` stays the customer's place in the whole list.
    """
    chosen = within_budget(ranked_by_gain(scores, policy.save_rate, policy.offer_cost), policy.budget, policy.budget_kind)
    chosen.insert(0, "rank", np.arange(1, len(chosen) + 1))
    chosen["cumulative_offer_cost"] = chosen["offer_cost"].cumsum()
    chosen["cumulative_gain"] = chosen["expected_gain"].cumsum()
    rows = chosen.pop("source_row").to_numpy()
    for column in ("value_tier", "segment"):
        chosen[column] = _taken(scores[column], rows) if column in scores else None
    chosen["churn_reason_features"] = _churn_reason_features(chosen["customer_id"], scores, rows, explanations, policy.reasons)
    en, zh = _reason_texts(scores, rows, policy.reasons)
    chosen["reason_to_call_en"], chosen["reason_to_call_zh"] = en, zh
    if owners is None:
        return chosen[[c for c in ACTION_COLUMNS if c not in ("owner", "owner_rank")]]
    return _grouped_by_owner(chosen, owners)[list(ACTION_COLUMNS)]


def owner_summary(actions: pd.DataFrame) -> pd.DataFrame:
    """Per owner of an action list: customers, total expected gain and offer cost, in the list's owner order."""
    if "owner" not in actions:
        raise ValueError("owner_summary: the action list has no owner column; draw it with owners")
    grouped = actions.groupby("owner", sort=False)
    return pd.DataFrame({
        "customers": grouped.size(),
        "expected_gain": grouped["expected_gain"].sum(),
        "offer_cost": grouped["offer_cost"].sum(),
    }).reset_index()


def sensitivity(scores: pd.DataFrame, policy: ActionPolicy, save_rates: Sequence[float] | None = None) -> pd.DataFrame:
    """How the list's size and total expected gain move with the save rate, the budget and offer cost held.

    One row per save rate (SENSITIVITY_COLUMNS), for the report to plot and the command to print:
    the chosen customers and their totals, and how many customers have a positive gain at all and
    what they would add beyond the budget (what a larger budget could buy).
    """
    # Only totals are needed, and tied gains add up alike whichever customer the id order picks, so a
    # numeric sort of the gains does what ranking the whole table would (1M customers: 0.9 s, not 10 s).
    p_churn = scores["p_churn"].to_numpy(dtype=float)
    value = scores[VALUE_AT_STAKE].to_numpy(dtype=float)
    rows = []
    for rate in save_rates if save_rates is not None else policy.sensitivity_save_rates:
        if not 0 < rate <= 1:
            raise ValueError(f"save rate {rate} is outside (0, 1]; give the share of leavers an action keeps")
        gains = np.round(expected_gain(p_churn, rate, value, policy.offer_cost), 6)
        gains = -np.sort(-gains[gains > 0])
        kept = _count_within_budget(len(gains), policy)
        chosen = float(gains[:kept].sum())
        rows.append((float(rate), kept, chosen, kept * float(policy.offer_cost), chosen + kept * float(policy.offer_cost),
                     len(gains), float(gains.sum()) - chosen))
    return pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))


def read_run_inputs(sink: ScoreSink, run_id: str | None = None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """A published run's id (default: the latest), its score columns the list needs and its churn explanations.

    The run is resolved once, so the scores and explanations are of the same run even while
    another run is being published.
    """
    resolved = sink.run_metadata(run_id=run_id).run_id
    scores = sink.read_scores(run_id=resolved, columns=list(SCORE_COLUMNS_USED))
    return resolved, scores, sink.read_explanations(run_id=resolved, score="churn")


def actions_of_run(sink: ScoreSink, policy: ActionPolicy, run_id: str | None = None,
                   owners: pd.Series | None = None) -> pd.DataFrame:
    """The action list of a published run (default: the latest): `action_list` over its tables."""
    _, scores, explanations = read_run_inputs(sink, run_id)
    return action_list(scores, policy, explanations=explanations, owners=owners)


def sensitivity_of_run(sink: ScoreSink, policy: ActionPolicy, run_id: str | None = None,
                       save_rates: Sequence[float] | None = None) -> pd.DataFrame:
    """The sensitivity view of a published run (default: the latest), to plot gain against save rate."""
    return sensitivity(sink.read_scores(run_id=sink.run_metadata(run_id=run_id).run_id,
                                        columns=["customer_id", "p_churn", VALUE_AT_STAKE]), policy, save_rates)


def _count_within_budget(candidates: int, policy: ActionPolicy) -> int:
    """How many of the ranked candidates `within_budget` keeps (every offer costs the same)."""
    if policy.budget_kind == "count":
        return min(candidates, int(policy.budget))
    spent = np.cumsum(np.full(candidates, float(policy.offer_cost)))
    return int(np.count_nonzero(spent <= policy.budget * (1 + 1e-12)))


def _grouped_by_owner(chosen: pd.DataFrame, owners: pd.Series) -> pd.DataFrame:
    by_id = owners.copy()
    by_id.index = by_id.index.astype(str)
    by_id = by_id[~by_id.index.duplicated()]
    owner = chosen["customer_id"].map(by_id)
    chosen["owner"] = owner.where(owner.notna() & (owner.astype(str).str.strip() != ""), NO_OWNER).astype(str)
    gain_of_owner = chosen.groupby("owner")["expected_gain"].transform("sum")
    chosen["_owner_gain"] = gain_of_owner
    ordered = chosen.sort_values(["_owner_gain", "owner", "rank"], ascending=[False, True, True], kind="stable")
    ordered["owner_rank"] = ordered.groupby("owner").cumcount() + 1
    return ordered.drop(columns="_owner_gain").reset_index(drop=True)


def _taken(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The values of some rows of a column, taken before conversion (a column of a million texts is not copied)."""
    return column.take(rows).to_numpy()


def _churn_reason_features(ids: pd.Series, scores: pd.DataFrame, rows: np.ndarray,
                           explanations: pd.DataFrame | None, n: int) -> list[str]:
    """The features raising each customer's churn score, strongest first, joined by ', '.

    From the explanations table when given, else from the score table's `reasons` JSON.
    """
    if explanations is not None and not explanations.empty:
        raising = explanations[(explanations["score"] == "churn") & (explanations["direction"] == "raises")]
        raising = raising[raising["customer_id"].astype(str).isin(set(ids))].sort_values(["customer_id", "rank"])
        listed = raising.groupby(raising["customer_id"].astype(str))["feature"].agg(lambda f: ", ".join(list(f)[:n]))
        return [listed.get(i, "") for i in ids]
    if "reasons" not in scores:
        return [""] * len(ids)
    return [_features_in_json(text, n) for text in _taken(scores["reasons"], rows)]


def _features_in_json(text: object, n: int) -> str:
    if not isinstance(text, str) or not text:
        return ""
    try:
        raising = json.loads(text).get("churn", {}).get("raises", [])
    except (ValueError, AttributeError):
        return ""
    ranked = sorted(raising, key=lambda r: r.get("rank", 0))
    return ", ".join(str(r.get("feature", "")) for r in ranked[:n])


def _reason_texts(scores: pd.DataFrame, rows: np.ndarray, n: int) -> tuple[list[str], list[str]]:
    """Each customer's churn-raising sentences in English and Chinese, cut from the score table's texts."""
    texts = []
    for language, index in (("en", 0), ("zh", 1)):
        column = f"reason_text_{language}"
        values = pd.Series(_taken(scores[column], rows) if column in scores else [None] * len(rows), dtype=object)
        # Texts repeat (customers alike in what raises their risk): each distinct one is cut once.
        distinct = {v: churn_raising_sentences(v, index, n) for v in values.dropna().unique()}
        texts.append([distinct.get(v, "") if isinstance(v, str) else "" for v in values])
    return texts[0], texts[1]


# Separator between sentences and the end of a group, per language (serving/reason_encoding.py).
_SEPARATORS = (("; ", ". ", "."), ("；", "。", "。"))


def churn_raising_sentences(text: object, language: int, n: int) -> str:
    """The part of a reason text after "Raises churn risk:" (language 0 English, 1 Chinese): its first n sentences.

    The texts read "<header>a; b; c. <next header>..." ("；" and "。" in Chinese), as
    serving/reason_encoding.py writes them; a text without a churn-raising part gives "".
    """
    if not isinstance(text, str):
        return ""
    separator, group_end, text_end = _SEPARATORS[language]
    header = HEADERS[("churn", "raises")][language]
    start = text.find(header)
    if start < 0:
        return ""
    rest = text[start + len(header):]
    ends = [rest.find(group_end + h[language]) for key, h in HEADERS.items() if key != ("churn", "raises")]
    ends = [e for e in ends if e >= 0]
    part = rest[:min(ends)] if ends else rest.removesuffix(text_end)
    return separator.join(part.split(separator)[:n])
