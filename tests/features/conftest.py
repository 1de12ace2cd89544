"""Shared helpers for the feature tests: one DuckDB connection per module and random logs."""

from __future__ import annotations

from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def con() -> ibis.BaseBackend:
    """One embedded DuckDB per test module keeps the tests fast."""
    backend = ibis.duckdb.connect()
    yield backend
    backend.disconnect()


def random_timestamps(rng: np.random.Generator, n: int, start: datetime, end: datetime) -> pd.Series:
    """n uniform timestamps in [start, end) with sub-second precision (microseconds)."""
    span_us = int((end - start).total_seconds() * 1_000_000)
    offsets = rng.integers(0, span_us, size=n)
    return pd.Series(pd.Timestamp(start) + pd.to_timedelta(offsets, unit="us"))


def random_frames(n_customers: int, seed: int, start: datetime, end: datetime) -> dict[str, pd.DataFrame]:
    """Random transactions (with returns, discounts, same-day orders), invoices and interactions."""
    rng = np.random.default_rng(seed)
    customers = [f"{i:05d}" for i in range(n_customers)]
    n_orders = n_customers * 8
    order_customer = rng.choice(customers, size=n_orders)
    order_ts = random_timestamps(rng, n_orders, start, end)
    lines = rng.integers(1, 4, size=n_orders)
    tx = pd.DataFrame(
        {
            "customer_id": np.repeat(order_customer, lines),
            "order_id": np.repeat([f"o{i}" for i in range(n_orders)], lines),
            "ts": np.repeat(order_ts.to_numpy(), lines),
        }
    )
    n = len(tx)
    tx["amount"] = np.round(rng.gamma(2.0, 50.0, size=n), 2)
    tx["margin"] = np.round(tx["amount"] * rng.uniform(0.1, 0.5, size=n), 2)
    tx["category"] = rng.choice(["a", "b", "c", "d", "e"], size=n)
    tx["product_id"] = rng.choice([f"p{i}" for i in range(30)], size=n)
    tx["discount"] = np.where(rng.random(n) < 0.2, np.round(rng.uniform(1, 20, size=n), 2), 0.0)
    # Returns: later rows under the same order id, plus a few standalone return orders.
    returned = tx.sample(frac=0.05, random_state=seed).copy()
    returned["amount"] = -returned["amount"]
    returned["margin"] = -returned["margin"]
    returned["discount"] = 0.0
    returned["ts"] = returned["ts"] + pd.to_timedelta(rng.integers(1, 60 * 86400, size=len(returned)), unit="s")
    standalone = returned.iloc[: len(returned) // 3].copy()
    standalone["order_id"] = [f"r{i}" for i in range(len(standalone))]
    tx = pd.concat([tx, returned, standalone], ignore_index=True)
    n_inv = n_customers * 4
    issued = random_timestamps(rng, n_inv, start, end)
    due = issued + pd.to_timedelta(30, unit="D")
    paid_delay = pd.to_timedelta(rng.integers(-10 * 86400, 60 * 86400, size=n_inv), unit="s")
    paid = (due + paid_delay).where(rng.random(n_inv) < 0.85)
    invoices = pd.DataFrame(
        {
            "customer_id": rng.choice(customers, size=n_inv),
            "invoice_id": [f"i{i}" for i in range(n_inv)],
            "issued_at": issued,
            "due_at": due,
            "amount": np.round(rng.gamma(2.0, 100.0, size=n_inv), 2),
            "paid_at": paid,
        }
    )
    invoices["paid_amount"] = np.where(rng.random(n_inv) < 0.1, invoices["amount"] * 0.5, np.nan)
    n_int = n_customers * 3
    interactions = pd.DataFrame(
        {
            "customer_id": rng.choice(customers, size=n_int),
            "ts": random_timestamps(rng, n_int, start, end),
            "kind": rng.choice(["ticket", "Complaint", "visit", "call"], size=n_int),
            "cost": np.round(rng.uniform(0, 80, size=n_int), 2),
        }
    )
    return {"transactions": tx, "invoices": invoices, "interactions": interactions}

