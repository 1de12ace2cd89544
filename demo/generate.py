"""`generate_demo_data` and `generate_demo_truth`: one seed, one world, the tables or its truth."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy.special import ndtr

from demo.events import draw_chunk_events, draw_order_days
from demo.parameters import CHUNK_CUSTOMERS, CHURN_DRIVERS, TRUTH_VISIBLE_LAG_DAYS
from demo.tables import assemble_tables, fixed_width_ids, id_width, labels, pandas_text
from demo.world import draw_product_prices, draw_world

logger = logging.getLogger(__name__)

def generate_demo_data(
    n_customers: int,
    *,
    seed: int = 7,
    end: date = date(2026, 9, 30),
    years: float = 3.0,
) -> dict[str, pd.DataFrame]:
    """Generate the four input tables (customers, transactions, invoices, interactions)."""
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}; pass a count.")
    if years <= 0:
        raise ValueError(f"years must be positive, got {years}; pass e.g. years=3.0.")
    horizon_days = int(round(years * 365.25))
    start = end + timedelta(days=1) - timedelta(days=horizon_days)
    root = np.random.SeedSequence(seed)
    world_seq, prices_seq, events_seq = root.spawn(3)
    world = draw_world(n_customers, np.random.default_rng(world_seq), horizon_days)
    prices = draw_product_prices(np.random.default_rng(prices_seq))
    chunk_count = (n_customers + CHUNK_CUSTOMERS - 1) // CHUNK_CUSTOMERS
    chunks = []
    for i, chunk_seq in enumerate(events_seq.spawn(chunk_count)):
        lo, hi = i * CHUNK_CUSTOMERS, min(n_customers, (i + 1) * CHUNK_CUSTOMERS)
        rng = np.random.default_rng(chunk_seq)
        chunks.append(
            draw_chunk_events(
                world.slice(lo, hi), lo, rng, horizon_days, prices, np.datetime64(start, "D")
            )
        )
    tables = assemble_tables(world, chunks, start, n_customers)
    logger.info(
        "generated demo data: %s",
        ", ".join(f"{name} {len(df):,} rows" for name, df in tables.items()),
    )
    return tables


def generate_demo_truth(
    n_customers: int,
    *,
    seed: int = 7,
    end: date = date(2026, 9, 30),
    years: float = 3.0,
    seen_before: date | None = None,
    late_days: int = 30,
) -> pd.DataFrame:
    """Each customer's true churn driver in the world `generate_demo_data` draws with the same arguments.

    Columns: customer_id; churn_driver; departure_date (first day without the customer, NaT
    for those who stay through the history); first_order_rate_per_day (while the customer has
    not ordered yet: a lead's latent conversion rate, 1 / FIRST_ORDER_LAG_DAYS for a sign-up
    who buys at once, 0 for a dormant account, nan for one ordering before the history; see
    `first_order_probability`); pay_late_usual_days, the customer's habitual days
    between due date and payment (negative: early), and p_pay_late_habit, the probability that
    one of its invoices is paid more than `late_days` days after its due date by that habit alone
    (normal noise of the customer's spread; payment episodes and the slip of customers leaving
    for payment reasons come on top). The driver is the cause that acted through the
    data in the customer's last months (the lead window before leaving): payment (invoices
    paid ever later, the last ones possibly unpaid), service (complaints piling up), demand
    (orders fading away), or none: the customer stays, or left without any order in the lead
    window, so nothing in the data says why (a rare buyer whose departure fell in a silence).
    With `seen_before` (a scoring date), only what the data before that date can show counts:
    the driver is named where an order of the lead window came at least
    TRUTH_VISIBLE_LAG_DAYS before it (time for its invoice to fall due), else none.
    It is the latent cause behind the tables, never an input: kept out of the customers table
    so that it cannot become an `attr_*` feature, and written apart (`write_demo_truth`).
    Only the latent world and the order days are redrawn (the first draws of their random
    streams), not lines, invoices or service, so this is cheap.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}; pass a count.")
    horizon_days = int(round(years * 365.25))
    start = end + timedelta(days=1) - timedelta(days=horizon_days)
    seen_day = horizon_days if seen_before is None else (seen_before - start).days
    world_seq, _, events_seq = np.random.SeedSequence(seed).spawn(3)
    world = draw_world(n_customers, np.random.default_rng(world_seq), horizon_days)
    chunk_count = (n_customers + CHUNK_CUSTOMERS - 1) // CHUNK_CUSTOMERS
    acted = np.zeros(n_customers, dtype=bool)
    for i, chunk_seq in enumerate(events_seq.spawn(chunk_count)):
        lo, hi = i * CHUNK_CUSTOMERS, min(n_customers, (i + 1) * CHUNK_CUSTOMERS)
        part = world.slice(lo, hi)
        # The same first draws as draw_chunk_events makes: the very order days of the tables.
        order_cust, order_day = draw_order_days(
            part, np.random.default_rng(chunk_seq), horizon_days, np.datetime64(start, "D")
        )
        in_lead = order_day >= part.departure_day[order_cust] - part.lead_days[order_cust]
        in_lead &= order_day < seen_day - TRUTH_VISIBLE_LAG_DAYS
        acted[lo:hi] = np.bincount(order_cust[in_lead], minlength=hi - lo) > 0
    customer_ids = fixed_width_ids("C", world.number, id_width(n_customers, 7)).combine_chunks()
    leaves = np.isfinite(world.departure_day)
    departure = np.datetime64(start, "D") + np.ceil(np.where(leaves, world.departure_day, 0)).astype("timedelta64[D]")
    driver = np.where(acted, world.mechanism, 0)
    return pd.DataFrame({
        "customer_id": pandas_text(customer_ids),
        "churn_driver": pandas_text(labels(CHURN_DRIVERS, driver)),
        "departure_date": np.where(leaves, departure, np.datetime64("NaT")).astype("datetime64[us]"),
        "pay_late_usual_days": world.late_base,
        "p_pay_late_habit": habitual_late_probability(world.late_base, world.late_sd, late_days),
        "first_order_rate_per_day": world.first_order_rate,
    })


def habitual_late_probability(late_base: np.ndarray, late_sd: np.ndarray, late_days: int) -> np.ndarray:
    """P(an invoice is paid more than `late_days` after its due date) when the delay is habit + normal noise.

    The invoices of demo/events.py are paid `late_base + noise x late_sd` days after their due date.
    """
    return ndtr((late_base - late_days) / late_sd)


def first_order_probability(rate_per_day: np.ndarray | pd.Series, horizon_days: int) -> np.ndarray:
    """The true chance that a customer still without an order at T orders within [T, T + horizon_days).

    A prospect's first order comes at a constant daily rate (the truth's
    `first_order_rate_per_day`), so the chance is 1 - exp(-rate x horizon) whatever T is; 0 for
    dormant accounts; nan for customers who ordered before the history (never prospects in it).
    """
    return -np.expm1(-np.asarray(rate_per_day, dtype=float) * horizon_days)
