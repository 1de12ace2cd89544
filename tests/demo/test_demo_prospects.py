"""The demo world's leads: conversion that depends on attributes, sales contacts before it, and its recorded truth."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from demo import first_order_probability, generate_demo_data, generate_demo_truth
from demo.parameters import FIRST_ORDER_LAG_DAYS

END = date(2026, 9, 30)
N = 6000


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    return generate_demo_data(N, seed=11, end=END)


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return generate_demo_truth(N, seed=11, end=END)


def _first_orders(transactions: pd.DataFrame) -> pd.Series:
    return transactions.loc[transactions["amount"] > 0].groupby("customer_id")["ts"].min()


def _prospects_at(world: dict[str, pd.DataFrame], t: pd.Timestamp) -> pd.DataFrame:
    """Customers signed up before t without any transaction line before t, with their attributes."""
    tx = world["transactions"]
    seen = set(tx.loc[tx["ts"] < t, "customer_id"])
    customers = world["customers"]
    return customers.loc[(customers["signup_date"] < t) & ~customers["customer_id"].isin(seen)]


def test_the_recorded_chance_of_a_first_order_matches_what_prospects_then_did(world, truth):
    """Calibration of the truth: prospects at T order within 90 days about as often as their rates say."""
    first = _first_orders(world["transactions"])
    rows = []
    for days_before in (120, 210, 300, 390):
        t = pd.Timestamp(END) + pd.Timedelta(days=1 - days_before)
        prospects = _prospects_at(world, t).merge(truth, on="customer_id")
        prospects = prospects.loc[prospects["first_order_rate_per_day"].notna()]
        ordered = prospects["customer_id"].map(first).between(t, t + pd.Timedelta(days=90), inclusive="left")
        rows.append((ordered.sum(), first_order_probability(prospects["first_order_rate_per_day"], 90).sum(),
                     len(prospects)))
    observed, expected, n = (sum(x) for x in zip(*rows, strict=True))
    assert n > 600
    assert abs(observed - expected) < 3 * np.sqrt(expected) + 0.03 * n, (observed, expected, n)


def test_leads_convert_faster_through_direct_sales_than_through_marketplaces(world, truth):
    prospects = _prospects_at(world, pd.Timestamp(END) - pd.Timedelta(days=200)).merge(truth, on="customer_id")
    p = first_order_probability(prospects["first_order_rate_per_day"], 90)
    by_channel = pd.Series(p, index=prospects.index).groupby(prospects["channel"]).mean()
    assert by_channel["direct_sales"] > 1.5 * by_channel["marketplace"], by_channel


def test_a_lead_hears_from_sales_by_visits_and_calls_only_before_its_first_order(world, truth):
    leads = truth.loc[truth["first_order_rate_per_day"].between(0, 1 / FIRST_ORDER_LAG_DAYS, inclusive="neither"),
                      "customer_id"]
    first = _first_orders(world["transactions"])
    interactions = world["interactions"].loc[world["interactions"]["customer_id"].isin(leads)]
    # By day: an event's time of day is drawn apart from its day, so service on the day of the first order may come first.
    first_order = interactions["customer_id"].map(first).dt.normalize()
    before = interactions.loc[first_order.isna() | (interactions["ts"] < first_order)]
    assert len(before) > 100
    assert set(before["kind"]) == {"visit", "call"}
    # Service (tickets, complaints) comes only once the lead has ordered.
    assert {"ticket", "complaint"} <= set(interactions.loc[interactions["ts"] >= first_order, "kind"])


def test_prospects_without_any_contact_are_fewer_than_those_with_some(world):
    prospects = _prospects_at(world, pd.Timestamp(END) + pd.Timedelta(days=1))
    contacted = prospects["customer_id"].isin(set(world["interactions"]["customer_id"]))
    assert 0.3 < contacted.mean() < 1.0


def test_dormant_accounts_never_order_and_their_rate_is_zero(world, truth):
    dormant = truth.loc[truth["first_order_rate_per_day"] == 0, "customer_id"]
    assert len(dormant) > 0
    assert not dormant.isin(set(world["transactions"]["customer_id"])).any()
    assert (first_order_probability(np.zeros(3), 90) == 0).all()
