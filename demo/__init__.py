"""Generate a realistic, deterministic demo world of customers, orders, invoices and service.

`generate_demo_data(n)` returns the four input tables of the contract (customers,
transactions, invoices, interactions) as pandas frames; `write_demo_data` writes them as
`<table>.parquet` or `<table>.csv` files that `features.validation` accepts without a
single quarantined row. Same seed and customer count: identical frames.

The world (the constants below hold every number):

- History: ``years`` (default 3) of days ending with the day ``end`` (inclusive: every
  timestamp is before ``end + 1 day``). Timestamps are naive UTC at business hours.
- Customers: ``BASE_SHARE`` (15%) were customers before the history starts (their earlier
  orders are not in the data); the rest sign up all the time over the history, sign-ups
  growing by ``SIGNUP_GROWTH_PER_YEAR`` (25%) a year, first order ``FIRST_ORDER_LAG_DAYS``
  (about 6 days) after sign-up. About 3-5% of the customers table are prospects with no
  order (recent sign-ups whose first order is still to come, and ``PROSPECT_SHARE`` lost
  leads).
- Attributes: size band (small/medium/large/enterprise, ``SIZE_SHARES``), industry (8),
  region (5), channel (4). Size band scales purchase rate, order value, lines per order,
  payment terms (net 30 small/medium, net 60 large/enterprise), service needs and churn
  hazard; industry scales purchase rate and which categories come first.
- Purchase rate: gamma-distributed per customer (shape ``RATE_SHAPE``, mean
  ``RATE_MEAN_PER_MONTH`` orders a month) times size and industry multipliers, times
  ``SEASONALITY`` by month (November/December peak up to 1.4x, July/August dip to 0.75x),
  times a growth curve: ``GROWER_SHARE`` grow (rate x e^(g t), g 0.25-0.8 a year, capped at
  ``GROWTH_CAP``; order value grows with rate^0.3), ``DECLINER_SHARE`` decline slowly.
  Orders come from a non-homogeneous Poisson process, drawn by thinning.
- Orders: 1 + Poisson extra lines (more for larger customers), one line per product per
  order; order value lognormal per customer (sigma ``ORDER_VALUE_CUSTOMER_SIGMA``, median by
  size band) and per order (``ORDER_VALUE_ORDER_SIGMA``), split over the lines; quantity =
  value / unit price. Each customer ranks the categories (industry affinity + noise) and
  favours a few products; ``WIDENER_SHARE`` widen their category range over time.
  ``CATEGORY_MARGIN`` (18%-62%) differs by category.
- Discounts: per-customer propensity (about 17% of lines, 3-25% off); ``discount`` is the
  money given away, ``amount`` is net of it and ``margin`` = gross x margin rate - discount.
- Returns: about 3% of lines come back 1 day to a few weeks later as their own order line
  (own order id, negative amount, quantity and margin, same product and category).
- Churn: a latent hazard per customer (``MONTHLY_CHURN_HAZARD``, higher for small and
  rarely-buying customers, halved for growers) draws a departure day, after which the
  customer never orders again. Churners leave in one of three ways
  (``CHURN_MECHANISM_SHARES``): payments slip (days late rise by 20-75 days over the
  75-210 days before they stop, their last invoices may stay unpaid), complaints pile up
  (complaints rise to 1.5-4 a month over that lead window), or quietly. Every churner's
  order rate fades before it stops (to 10-60% for quiet leavers, 40-100% for the others).
  Noise keeps it from being trivial: ``PAYMENT_EPISODE_SHARE`` of customers have a
  temporary payment slip and ``COMPLAINT_EPISODE_SHARE`` a temporary complaint burst
  without leaving, and ``CHRONIC_LATE_SHARE`` always pay 25 days late or so.
  The mechanism is the truth behind the tables: `generate_demo_truth` gives each customer's
  churn driver (payment, service for complaints, demand for the quiet fade; none for those
  who stay and for leavers without an order in their lead window) and departure date,
  apart from the tables so that no model can read it.
- Invoices: one per sales order, issued with the order, due after the terms; payment
  delay = the customer's habit + noise + slips; invoices paid after the end are open
  (``paid_at`` and ``paid_amount`` null); 3% are paid partially.
- Service: tickets, calls, complaints and visits (median costs ``INTERACTION_COST``);
  ``HIGH_MAINTENANCE_SHARE`` of customers (mostly small/medium, half the usual order
  value) need 1.5-4 interactions a month.

What comes out (seed 7, 20,000 customers): about 20 transaction rows and 10 orders per
customer (1.9 lines per order), 2.9% return rows, 3.5% prospects, the top 5% of customers
bring about 43% of net revenue (top 20%: 74%), about 12% of the customers who ordered in
the last year have negative net value over that year (margin - service cost; 14% over
the whole history), and about a quarter of the customers with 4+ orders stopped ordering
more than 180 days before the end.

Everything is vectorised over customers, orders and lines: the only Python loops run over
chunks of ``CHUNK_CUSTOMERS`` customers (which bound the working memory) and over digit
positions of the ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS: tuple[str, ...] = ("parquet", "csv")

# --- world parameters (see the module docstring) ---------------------------------------
BASE_SHARE = 0.15
SIGNUP_GROWTH_PER_YEAR = 0.25
FIRST_ORDER_LAG_DAYS = 6.0
PROSPECT_SHARE = 0.015

SIZE_BANDS = ("small", "medium", "large", "enterprise")
SIZE_SHARES = (0.55, 0.28, 0.13, 0.04)
SIZE_RATE = np.array([0.8, 1.0, 1.3, 1.7])  # purchase-rate multiplier
SIZE_ORDER_VALUE = np.array([150.0, 280.0, 500.0, 900.0])  # median order value
SIZE_EXTRA_LINES = np.array([0.5, 0.9, 1.6, 2.4])  # mean extra lines per order
SIZE_TERMS_DAYS = np.array([30, 30, 60, 60])
SIZE_HAZARD = np.array([1.3, 1.0, 0.7, 0.5])
SIZE_SERVICE = np.array([0.8, 1.0, 1.5, 2.5])
SIZE_VISIT_SHARE = np.array([0.05, 0.10, 0.22, 0.35])

INDUSTRIES = (
    "retail", "manufacturing", "construction", "hospitality",
    "healthcare", "technology", "logistics", "education",
)  # fmt: skip
INDUSTRY_SHARES = (0.22, 0.18, 0.12, 0.12, 0.1, 0.1, 0.09, 0.07)
INDUSTRY_RATE = np.array([1.2, 1.0, 0.8, 1.3, 0.9, 0.9, 1.1, 0.7])
REGIONS = ("north", "south", "east", "west", "central")
REGION_SHARES = (0.22, 0.24, 0.26, 0.14, 0.14)
CHANNELS = ("direct_sales", "online", "distributor", "marketplace")
CHANNEL_SHARES = (0.3, 0.35, 0.2, 0.15)

CATEGORIES = (
    "consumables", "equipment", "spare_parts", "software",
    "services", "packaging", "chemicals", "furniture",
)  # fmt: skip
CATEGORY_MARGIN = np.array([0.32, 0.18, 0.42, 0.62, 0.48, 0.22, 0.28, 0.25])
CATEGORY_PRICE = np.array([15.0, 220.0, 45.0, 120.0, 90.0, 8.0, 30.0, 160.0])
PRODUCTS_PER_CATEGORY = 60
# Industry x category affinity: which categories each industry tends to buy first.
INDUSTRY_CATEGORY_AFFINITY = np.array(
    [
        [5, 1, 1, 1, 1, 4, 1, 2],  # retail
        [3, 4, 5, 1, 1, 2, 3, 1],  # manufacturing
        [2, 5, 3, 1, 1, 1, 2, 1],  # construction
        [5, 2, 1, 1, 1, 3, 2, 3],  # hospitality
        [4, 3, 1, 2, 2, 1, 4, 1],  # healthcare
        [1, 3, 1, 5, 4, 1, 1, 2],  # technology
        [2, 2, 4, 2, 2, 5, 1, 1],  # logistics
        [3, 1, 1, 3, 2, 1, 1, 5],  # education
    ],
    dtype=float,
)

# Month-of-year order-rate multiplier: summer dip, Q4 peak.
SEASONALITY = np.array([0.95, 0.95, 1.05, 1.0, 1.0, 0.95, 0.8, 0.75, 1.0, 1.1, 1.3, 1.4])
RATE_SHAPE = 2.0
RATE_MEAN_PER_MONTH = 0.55  # before size/industry multipliers and seasonality
ORDER_VALUE_CUSTOMER_SIGMA = 0.4
ORDER_VALUE_ORDER_SIGMA = 0.45

GROWER_SHARE = 0.22
DECLINER_SHARE = 0.15
WIDENER_SHARE = 0.3
GROWTH_CAP = 4.0

MONTHLY_CHURN_HAZARD = 0.028
CHURN_MECHANISMS = ("none", "payment", "complaint", "quiet")
# What the demo truth calls each mechanism: the cause an account manager would act on.
CHURN_DRIVERS = ("none", "payment", "service", "demand")
TRUTH_FILE = "_truth.parquet"  # not named after a table: validation never reads it
TRUTH_VISIBLE_LAG_DAYS = 30  # an order shows its driver once its invoice (net 30 at least) has fallen due
CHURN_MECHANISM_SHARES = (0.35, 0.30, 0.35)  # of churners: payment, complaint, quiet
PAYMENT_EPISODE_SHARE = 0.15
COMPLAINT_EPISODE_SHARE = 0.12
CHRONIC_LATE_SHARE = 0.10

RETURN_RATE_MEAN = 0.03
HIGH_MAINTENANCE_SHARE = 0.045
SERVICE_RATE_PER_MONTH = 0.07
INTERACTION_KINDS = ("ticket", "complaint", "visit", "call")
INTERACTION_COST = np.array([25.0, 70.0, 160.0, 12.0])  # median cost per kind

BUSINESS_DAY_START_S = 8 * 3600
BUSINESS_DAY_LENGTH_S = 10 * 3600
CHUNK_CUSTOMERS = 100_000
SECONDS_PER_DAY = 86_400
ID_BLOCK_ROWS = 5_000_000


@dataclass
class _World:
    """Latent per-customer parameters, one array element per customer."""

    number: np.ndarray  # customer number (1-based), the id's digits
    signup_day: np.ndarray  # days since history start (negative: before the history)
    size: np.ndarray
    industry: np.ndarray
    region: np.ndarray
    channel: np.ndarray
    first_order_day: np.ndarray  # forced first order (nan: none in the history)
    active_start: np.ndarray  # day the order process starts
    departure_day: np.ndarray  # inf: stays
    mechanism: np.ndarray  # index into CHURN_MECHANISMS
    lead_days: np.ndarray
    fade_floor: np.ndarray
    rate_per_day: np.ndarray
    growth_per_year: np.ndarray
    order_value: np.ndarray
    extra_lines: np.ndarray
    category_rank: np.ndarray  # (n, n_categories) preferred categories first
    breadth: np.ndarray
    widen_per_year: np.ndarray
    product_offset: np.ndarray
    discount_propensity: np.ndarray
    return_propensity: np.ndarray
    late_base: np.ndarray
    late_sd: np.ndarray
    slip_days: np.ndarray
    pay_episode_start: np.ndarray
    pay_episode_len: np.ndarray
    pay_episode_days: np.ndarray
    complaint_episode_start: np.ndarray
    complaint_episode_len: np.ndarray
    service_rate_per_day: np.ndarray
    visit_share: np.ndarray

    def slice(self, lo: int, hi: int) -> _World:
        """The customers lo..hi-1 as a smaller world."""
        return _World(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})


# --- public API -------------------------------------------------------------------------


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
    world = _draw_world(n_customers, np.random.default_rng(world_seq), horizon_days)
    prices = _draw_product_prices(np.random.default_rng(prices_seq))
    chunk_count = (n_customers + CHUNK_CUSTOMERS - 1) // CHUNK_CUSTOMERS
    chunks = []
    for i, chunk_seq in enumerate(events_seq.spawn(chunk_count)):
        lo, hi = i * CHUNK_CUSTOMERS, min(n_customers, (i + 1) * CHUNK_CUSTOMERS)
        rng = np.random.default_rng(chunk_seq)
        chunks.append(
            _draw_chunk_events(
                world.slice(lo, hi), lo, rng, horizon_days, prices, np.datetime64(start, "D")
            )
        )
    tables = _assemble_tables(world, chunks, start, n_customers)
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
) -> pd.DataFrame:
    """Each customer's true churn driver in the world `generate_demo_data` draws with the same arguments.

    Columns: customer_id; churn_driver; departure_date (first day without the customer, NaT
    for those who stay through the history). The driver is the cause that acted through the
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
    world = _draw_world(n_customers, np.random.default_rng(world_seq), horizon_days)
    chunk_count = (n_customers + CHUNK_CUSTOMERS - 1) // CHUNK_CUSTOMERS
    acted = np.zeros(n_customers, dtype=bool)
    for i, chunk_seq in enumerate(events_seq.spawn(chunk_count)):
        lo, hi = i * CHUNK_CUSTOMERS, min(n_customers, (i + 1) * CHUNK_CUSTOMERS)
        part = world.slice(lo, hi)
        # The same first draws as _draw_chunk_events makes: the very order days of the tables.
        order_cust, order_day = _draw_order_days(part, np.random.default_rng(chunk_seq), horizon_days, np.datetime64(start, "D"))
        in_lead = order_day >= part.departure_day[order_cust] - part.lead_days[order_cust]
        in_lead &= order_day < seen_day - TRUTH_VISIBLE_LAG_DAYS
        acted[lo:hi] = np.bincount(order_cust[in_lead], minlength=hi - lo) > 0
    customer_ids = _fixed_width_ids("C", world.number, _id_width(n_customers, 7)).combine_chunks()
    leaves = np.isfinite(world.departure_day)
    departure = np.datetime64(start, "D") + np.ceil(np.where(leaves, world.departure_day, 0)).astype("timedelta64[D]")
    driver = np.where(acted, world.mechanism, 0)
    return pd.DataFrame({
        "customer_id": _text(customer_ids),
        "churn_driver": _text(_labels(CHURN_DRIVERS, driver)),
        "departure_date": np.where(leaves, departure, np.datetime64("NaT")).astype("datetime64[us]"),
    })


def write_demo_truth(truth: pd.DataFrame, out_dir: Path) -> Path:
    """Write the demo truth to `out_dir/_truth.parquet` (a name validation does not read)."""
    path = Path(out_dir) / TRUTH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(truth, preserve_index=False), path)
    return path


def write_demo_data(
    tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "parquet"
) -> dict[str, Path]:
    """Write each table to `out_dir/<table>.<fmt>` (parquet or csv); return the paths."""
    if fmt not in SUPPORTED_FORMATS:
        raise ValueError(
            f"unsupported demo data format {fmt!r}; use one of {', '.join(SUPPORTED_FORMATS)}."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.{fmt}"
        arrow_table = pa.Table.from_pandas(frame, preserve_index=False)
        if fmt == "parquet":
            pq.write_table(arrow_table, path)
        else:
            pa_csv.write_csv(_timestamps_as_iso_text(arrow_table), path)
        paths[name] = path
        logger.info("wrote %s (%s rows) to %s", name, f"{len(frame):,}", path)
    return paths


# --- the latent world -------------------------------------------------------------------


def _choice(rng: np.random.Generator, shares: tuple[float, ...], n: int) -> np.ndarray:
    """Draw n category codes with the given shares."""
    return rng.choice(len(shares), size=n, p=np.asarray(shares) / np.sum(shares)).astype(
        np.int8
    )


def _draw_signup_days(rng: np.random.Generator, n: int, horizon_days: int) -> np.ndarray:
    """Sign-up days: a base before the history, then arrivals growing exponentially."""
    k = np.log1p(SIGNUP_GROWTH_PER_YEAR) / 365.25
    u = rng.random(n)
    # Inverse CDF of density proportional to exp(k t) on [0, horizon).
    arrivals = np.log1p(u * np.expm1(k * horizon_days)) / k
    is_base = rng.random(n) < BASE_SHARE
    before = -rng.uniform(1, 3 * 365, n)
    return np.where(is_base, before, arrivals)


def _draw_world(n: int, rng: np.random.Generator, horizon_days: int) -> _World:
    """Draw every customer's attributes and latent behaviour."""
    size = _choice(rng, SIZE_SHARES, n)
    industry = _choice(rng, INDUSTRY_SHARES, n)
    signup_day = _draw_signup_days(rng, n, horizon_days)
    first_order_day = np.where(
        signup_day >= 0, signup_day + rng.exponential(FIRST_ORDER_LAG_DAYS, n), np.nan
    )
    is_prospect = rng.random(n) < PROSPECT_SHARE
    first_order_day[is_prospect | (first_order_day >= horizon_days)] = np.nan
    active_start = np.where(signup_day >= 0, first_order_day, 0.0)
    active_start[is_prospect] = np.nan

    growth = _draw_growth(rng, n)
    rate = _draw_rates(rng, size, industry)
    departure, mechanism, lead, floor = _draw_departures(
        rng, active_start, size, rate, growth, horizon_days
    )
    service_rate, visit_share, high_maintenance = _draw_service_needs(rng, size)
    order_value = SIZE_ORDER_VALUE[size] * rng.lognormal(0.0, ORDER_VALUE_CUSTOMER_SIGMA, n)
    order_value[high_maintenance] *= 0.5
    late_base, late_sd = _draw_payment_habits(rng, n)
    span = np.maximum(np.nan_to_num(np.minimum(departure, horizon_days) - active_start), 1.0)
    return _World(
        number=np.arange(1, n + 1, dtype=np.int64),
        signup_day=signup_day,
        size=size,
        industry=industry,
        region=_choice(rng, REGION_SHARES, n),
        channel=_choice(rng, CHANNEL_SHARES, n),
        first_order_day=first_order_day,
        active_start=active_start,
        departure_day=departure,
        mechanism=mechanism,
        lead_days=lead,
        fade_floor=floor,
        rate_per_day=rate,
        growth_per_year=growth,
        order_value=order_value,
        extra_lines=SIZE_EXTRA_LINES[size] * rng.lognormal(0.0, 0.3, n),
        category_rank=_draw_category_ranks(rng, industry),
        breadth=1.0 + rng.gamma(1.2, 0.9, n),
        widen_per_year=np.where(rng.random(n) < WIDENER_SHARE, rng.uniform(0.7, 2.5, n), 0.0),
        product_offset=rng.integers(0, PRODUCTS_PER_CATEGORY, n),
        discount_propensity=np.clip(rng.beta(1.2, 6.0, n) * (0.8 + 0.2 * size), 0, 0.9),
        return_propensity=rng.beta(1.0, 1.0 / RETURN_RATE_MEAN - 1.0, n),
        late_base=late_base,
        late_sd=late_sd,
        slip_days=rng.uniform(20, 75, n),
        pay_episode_start=_episode_starts(rng, active_start, span, PAYMENT_EPISODE_SHARE),
        pay_episode_len=rng.uniform(60, 150, n),
        pay_episode_days=rng.uniform(10, 40, n),
        complaint_episode_start=_episode_starts(
            rng, active_start, span, COMPLAINT_EPISODE_SHARE
        ),
        complaint_episode_len=rng.uniform(45, 120, n),
        service_rate_per_day=service_rate,
        visit_share=visit_share,
    )


def _draw_growth(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-customer yearly growth of the order rate: growers, decliners, the steady rest."""
    kind = rng.random(n)
    growth = rng.normal(0.0, 0.05, n)
    growers = kind < GROWER_SHARE
    decliners = (kind >= GROWER_SHARE) & (kind < GROWER_SHARE + DECLINER_SHARE)
    growth[growers] = rng.uniform(0.25, 0.8, growers.sum())
    growth[decliners] = rng.uniform(-0.5, -0.15, decliners.sum())
    return growth


def _draw_rates(rng: np.random.Generator, size: np.ndarray, industry: np.ndarray) -> np.ndarray:
    """Orders per day: gamma-distributed, scaled by size band and industry."""
    per_month = rng.gamma(RATE_SHAPE, RATE_MEAN_PER_MONTH / RATE_SHAPE, len(size))
    return per_month * SIZE_RATE[size] * INDUSTRY_RATE[industry] / 30.4


def _draw_departures(
    rng: np.random.Generator,
    active_start: np.ndarray,
    size: np.ndarray,
    rate: np.ndarray,
    growth: np.ndarray,
    horizon_days: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Departure day, churn mechanism, lead window and order-rate fade of each customer."""
    n = len(size)
    # Rare buyers and small firms leave more often; growing ones less.
    rate_factor = np.clip((np.median(rate) / np.maximum(rate, 1e-9)) ** 0.35, 0.5, 2.5)
    hazard = (
        MONTHLY_CHURN_HAZARD / 30.4 * SIZE_HAZARD[size] * rate_factor * rng.gamma(2.0, 0.5, n)
    )
    hazard = np.where(growth > 0.2, hazard * 0.5, hazard)
    departure = active_start + rng.exponential(1.0, n) / hazard
    # A departure too close to the first order would leave nothing to learn from.
    departure = np.where(departure - active_start < 45, active_start + 45, departure)
    churns = np.nan_to_num(departure, nan=np.inf) < horizon_days
    departure = np.where(churns, departure, np.inf)
    mechanism = np.where(churns, 1 + _choice(rng, CHURN_MECHANISM_SHARES, n), 0).astype(np.int8)
    lead = rng.uniform(75, 210, n)
    quiet = mechanism == 3
    floor = np.where(quiet, rng.uniform(0.1, 0.6, n), rng.uniform(0.4, 1.0, n))
    return departure, mechanism, lead, floor


def _draw_service_needs(
    rng: np.random.Generator, size: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Service interactions per day, share of visits and the high-maintenance flag."""
    n = len(size)
    small_or_medium = size <= 1
    share = np.where(small_or_medium, HIGH_MAINTENANCE_SHARE * 1.2, HIGH_MAINTENANCE_SHARE * 0.4)
    high_maintenance = rng.random(n) < share
    per_month = SERVICE_RATE_PER_MONTH * SIZE_SERVICE[size] * rng.lognormal(0.0, 0.6, n)
    per_month = np.where(high_maintenance, rng.uniform(1.5, 4.0, n), per_month)
    visit_share = np.where(high_maintenance, 0.3, SIZE_VISIT_SHARE[size])
    return per_month / 30.4, visit_share, high_maintenance


def _draw_payment_habits(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Usual days late (negative: early) and its spread; some customers always pay late."""
    kind = rng.random(n)
    base = rng.normal(-2.0, 3.0, n)
    moderate = (kind >= 0.6) & (kind < 1.0 - CHRONIC_LATE_SHARE)
    chronic = kind >= 1.0 - CHRONIC_LATE_SHARE
    base[moderate] = rng.normal(7.0, 5.0, moderate.sum())
    base[chronic] = rng.normal(25.0, 10.0, chronic.sum())
    return base, rng.uniform(1.5, 7.0, n)


def _episode_starts(
    rng: np.random.Generator, active_start: np.ndarray, span: np.ndarray, share: float
) -> np.ndarray:
    """Start day of a temporary episode for `share` of customers (nan for the rest)."""
    n = len(span)
    start = active_start + rng.random(n) * span  # nan for customers who never order
    return np.where(rng.random(n) < share, start, np.nan)


def _draw_category_ranks(rng: np.random.Generator, industry: np.ndarray) -> np.ndarray:
    """Each customer's categories in order of preference (industry affinity plus noise)."""
    affinity = np.log(INDUSTRY_CATEGORY_AFFINITY[industry])
    # Gumbel-max trick: sorting log-weights + Gumbel noise samples a weighted permutation.
    keys = affinity + rng.gumbel(size=affinity.shape)
    return np.argsort(-keys, axis=1).astype(np.int8)


def _draw_product_prices(rng: np.random.Generator) -> np.ndarray:
    """Unit price of every product, indexed by category * PRODUCTS_PER_CATEGORY + k."""
    base = np.repeat(CATEGORY_PRICE, PRODUCTS_PER_CATEGORY)
    return np.round(base * rng.lognormal(0.0, 0.6, base.size), 2)


# --- events of one chunk of customers ---------------------------------------------------


@dataclass
class _ChunkEvents:
    """Orders, lines, invoices and interactions of one chunk, as plain arrays."""

    order_customer: np.ndarray  # global customer index
    order_s: np.ndarray  # seconds since history start
    line_order: np.ndarray  # chunk-local order index
    line_product: np.ndarray
    line_category: np.ndarray
    line_quantity: np.ndarray
    line_amount: np.ndarray
    line_discount: np.ndarray
    line_margin: np.ndarray
    line_channel: np.ndarray
    invoice_order: np.ndarray  # chunk-local order index
    invoice_due_s: np.ndarray
    invoice_amount: np.ndarray
    invoice_paid_s: np.ndarray  # -1: unpaid
    invoice_paid_amount: np.ndarray  # nan: unpaid
    interaction_customer: np.ndarray
    interaction_s: np.ndarray
    interaction_kind: np.ndarray
    interaction_cost: np.ndarray


def _month_of_day(days: np.ndarray, start: np.datetime64) -> np.ndarray:
    """Month of year (0-11) of day offsets from the history start."""
    dates = start + np.floor(days).astype("timedelta64[D]")
    return (dates.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int8)


def _growth_multiplier(w: _World, idx: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Order-rate multiplier from each customer's growth since its order process began."""
    years = (days - w.active_start[idx]) / 365.25
    return np.clip(np.exp(w.growth_per_year[idx] * years), 1.0 / GROWTH_CAP, GROWTH_CAP)


def _ramp_to_departure(w: _World, idx: np.ndarray, days: np.ndarray) -> np.ndarray:
    """0 before the lead window, rising linearly to 1 at departure (0 for stayers)."""
    to_go = w.departure_day[idx] - days
    ramp = 1.0 - to_go / w.lead_days[idx]
    return np.where(np.isfinite(to_go), np.clip(ramp, 0.0, 1.0), 0.0)


def _time_of_day_s(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """Seconds since history start: the day of `days` at a random business-hours time."""
    tod = BUSINESS_DAY_START_S + rng.integers(0, BUSINESS_DAY_LENGTH_S, len(days))
    return np.floor(days).astype(np.int64) * SECONDS_PER_DAY + tod


def _draw_order_days(
    w: _World, rng: np.random.Generator, horizon_days: int, start: np.datetime64
) -> tuple[np.ndarray, np.ndarray]:
    """Order days per customer: forced first orders plus a thinned Poisson process."""
    a0 = np.nan_to_num(w.active_start, nan=0.0)
    a1 = np.minimum(w.departure_day, horizon_days)
    duration = np.where(np.isnan(w.active_start), 0.0, np.maximum(a1 - a0, 0.0))
    growth_max = np.clip(
        np.exp(np.maximum(w.growth_per_year, 0) * duration / 365.25), 1, GROWTH_CAP
    )
    season_max = SEASONALITY.max()
    counts = rng.poisson(w.rate_per_day * season_max * growth_max * duration)
    idx = np.repeat(np.arange(len(a0), dtype=np.int32), counts)
    days = a0[idx] + rng.random(len(idx)) * duration[idx]
    accept = (
        SEASONALITY[_month_of_day(days, start)]
        * _growth_multiplier(w, idx, days)
        * (w.fade_floor[idx] + (1 - w.fade_floor[idx]) * (1 - _ramp_to_departure(w, idx, days)))
        / (season_max * growth_max[idx])
    )
    keep = rng.random(len(idx)) < accept
    first = np.flatnonzero(np.isfinite(w.first_order_day)).astype(np.int32)
    return (
        np.concatenate([first, idx[keep]]),
        np.concatenate([w.first_order_day[first], days[keep]]),
    )


def _draw_lines(
    w: _World, rng: np.random.Generator, order_cust: np.ndarray, order_day: np.ndarray,
    prices: np.ndarray,
) -> dict[str, np.ndarray]:
    """Order lines: distinct products per order, value split across lines, discounts."""
    n_lines = 1 + rng.poisson(w.extra_lines[order_cust])
    growth = _growth_multiplier(w, order_cust, order_day)
    order_value = (
        w.order_value[order_cust]
        * rng.lognormal(0.0, ORDER_VALUE_ORDER_SIGMA, len(order_cust))
        * growth**0.3
    )
    line_order = np.repeat(np.arange(len(order_cust), dtype=np.int64), n_lines)
    lc = order_cust[line_order]
    years = (order_day[line_order] - np.nan_to_num(w.active_start[lc])) / 365.25
    n_categories = len(CATEGORIES)
    breadth = np.minimum(w.breadth[lc] + w.widen_per_year[lc] * np.maximum(years, 0), n_categories)
    # Skewed draws favour the customer's first-ranked categories and its usual products.
    rank = np.minimum((breadth * rng.random(len(lc)) ** 1.7).astype(np.int64), n_categories - 1)
    category = w.category_rank[lc, rank].astype(np.int64)
    k = w.product_offset[lc] + 7 * category + (25 * rng.random(len(lc)) ** 2.5).astype(np.int64)
    product = category * PRODUCTS_PER_CATEGORY + k % PRODUCTS_PER_CATEGORY
    # One row per (order, product): the input contract's key for an order line.
    # Keys are sorted by order already, so a stable sort only shuffles within orders.
    key = line_order * prices.size + product
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    is_first = np.ones(len(key), dtype=bool)
    is_first[1:] = sorted_key[1:] != sorted_key[:-1]
    first = by_key[is_first]
    first.sort()
    line_order, product, category = line_order[first], product[first], category[first]
    lc = lc[first]

    weight = rng.gamma(2.0, 1.0, len(lc))
    weight_sum = np.bincount(line_order, weights=weight, minlength=len(order_cust))
    target = order_value[line_order] * weight / weight_sum[line_order]
    price = prices[product]
    quantity = np.maximum(1.0, np.round(target / price))
    gross = quantity * price
    discounted = rng.random(len(lc)) < w.discount_propensity[lc]
    discount = np.where(discounted, np.round(gross * rng.uniform(0.03, 0.25, len(lc)), 2), 0.0)
    margin_rate = np.clip(
        CATEGORY_MARGIN[category] * rng.lognormal(0.0, 0.15, len(lc)), 0.02, 0.9
    )
    own_channel = rng.random(len(lc)) < 0.85
    channel = np.where(own_channel, w.channel[lc], rng.integers(0, len(CHANNELS), len(lc)))
    return {
        "order": line_order,
        "product": product.astype(np.int32),
        "category": category.astype(np.int8),
        "quantity": quantity,
        "amount": np.round(gross - discount, 2),
        "discount": discount,
        "margin": np.round(gross * margin_rate - discount, 2),
        "channel": channel.astype(np.int8),
    }


def _draw_returns(
    w: _World, rng: np.random.Generator, lines: dict[str, np.ndarray],
    order_cust: np.ndarray, order_day: np.ndarray, horizon_days: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Returned lines: each its own order (customer, day) with one negative line."""
    lc = order_cust[lines["order"]]
    returned = np.flatnonzero(rng.random(len(lc)) < w.return_propensity[lc])
    day = order_day[lines["order"][returned]] + 1 + rng.exponential(12.0, len(returned))
    returned, day = returned[day < horizon_days], day[day < horizon_days]
    quantity = lines["quantity"][returned]
    returned_qty = np.ceil(quantity * rng.uniform(0.2, 1.0, len(returned)))
    share = returned_qty / quantity
    return_lines = {
        "order": np.arange(len(returned), dtype=np.int64),
        "product": lines["product"][returned],
        "category": lines["category"][returned],
        "quantity": -returned_qty,
        "amount": -np.round(lines["amount"][returned] * share, 2),
        "discount": np.zeros(len(returned)),
        "margin": -np.round(lines["margin"][returned] * share, 2),
        "channel": lines["channel"][returned],
    }
    return order_cust[lines["order"][returned]], day, return_lines


def _draw_invoices(
    w: _World, rng: np.random.Generator, order_cust: np.ndarray, order_day: np.ndarray,
    order_s: np.ndarray, order_amount: np.ndarray, horizon_days: int,
) -> dict[str, np.ndarray]:
    """One invoice per order; payment delay = habit + noise + slips before leaving."""
    n = len(order_cust)
    terms = SIZE_TERMS_DAYS[w.size[order_cust]]
    ramp = _ramp_to_departure(w, order_cust, order_day)
    paying_churner = w.mechanism[order_cust] == 1
    slip = np.where(paying_churner, w.slip_days[order_cust] * ramp, 0.0)
    episode_start = w.pay_episode_start[order_cust]
    in_episode = (order_day >= episode_start) & (
        order_day < episode_start + w.pay_episode_len[order_cust]
    )
    delay = (
        w.late_base[order_cust]
        + rng.normal(0.0, 1.0, n) * w.late_sd[order_cust]
        + slip
        + np.where(in_episode, w.pay_episode_days[order_cust], 0.0)
    )
    paid_day = order_day + np.maximum(terms + delay, 0.5)
    paid_s = np.maximum(_time_of_day_s(rng, paid_day), order_s + 3600)
    bad_debt = paying_churner & (rng.random(n) < 0.5 * ramp)
    unpaid = bad_debt | (paid_s >= horizon_days * SECONDS_PER_DAY)
    partial = rng.random(n) < 0.03
    partial_amount = np.round(order_amount * rng.uniform(0.5, 0.95, n), 2)
    paid_amount = np.where(partial, partial_amount, order_amount)
    return {
        "due_s": order_s + terms.astype(np.int64) * SECONDS_PER_DAY,
        "amount": order_amount,
        "paid_s": np.where(unpaid, -1, paid_s),
        "paid_amount": np.where(unpaid, np.nan, paid_amount),
    }


def _draw_interactions(
    w: _World, rng: np.random.Generator, horizon_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Service interactions: steady service, complaint build-ups before leaving, episodes."""
    n = len(w.size)
    has_orders = np.isfinite(w.active_start)
    s0 = np.maximum(np.nan_to_num(w.signup_day), 0.0)
    s1 = np.minimum(w.departure_day + 20, horizon_days)
    span = np.where(has_orders, np.maximum(s1 - s0, 0.0), 0.0)
    base_idx = np.repeat(np.arange(n), rng.poisson(w.service_rate_per_day * span))
    base_day = s0[base_idx] + rng.random(len(base_idx)) * span[base_idx]
    base_kind = _steady_interaction_kinds(rng, w.visit_share[base_idx])

    lead = w.lead_days
    complainer = (w.mechanism == 2) & has_orders
    burst_mean = np.where(complainer, rng.uniform(1.5, 4.0, n) / 30.4 * lead / 2, 0.0)
    burst_idx = np.repeat(np.arange(n), rng.poisson(burst_mean))
    # Density rising linearly to the departure day: t = dep - L (1 - sqrt(u)).
    burst_day = w.departure_day[burst_idx] - lead[burst_idx] * (
        1 - np.sqrt(rng.random(len(burst_idx)))
    )
    burst_kind = rng.choice(len(INTERACTION_KINDS), len(burst_idx), p=[0.25, 0.65, 0.0, 0.10])

    ep_start = w.complaint_episode_start
    ep_rate = rng.uniform(1.0, 2.5, n) / 30.4
    ep_mean = np.where(np.isfinite(ep_start), ep_rate * w.complaint_episode_len, 0.0)
    ep_idx = np.repeat(np.arange(n), rng.poisson(ep_mean))
    ep_day = ep_start[ep_idx] + rng.random(len(ep_idx)) * w.complaint_episode_len[ep_idx]
    ep_kind = rng.choice(len(INTERACTION_KINDS), len(ep_idx), p=[0.4, 0.6, 0.0, 0.0])

    idx = np.concatenate([base_idx, burst_idx, ep_idx])
    day = np.concatenate([base_day, burst_day, ep_day])
    kind = np.concatenate([base_kind, burst_kind, ep_kind]).astype(np.int8)
    valid = (day >= s0[idx]) & (day < np.minimum(s1[idx], horizon_days))
    idx, day, kind = idx[valid], day[valid], kind[valid]
    cost = np.round(INTERACTION_COST[kind] * rng.lognormal(0.0, 0.4, len(kind)), 2)
    return idx, _time_of_day_s(rng, day), kind, cost


def _steady_interaction_kinds(rng: np.random.Generator, visit_share: np.ndarray) -> np.ndarray:
    """Kinds of everyday interactions: visits by share, a few complaints, calls, tickets."""
    u = rng.random(len(visit_share))
    kind = np.full(len(u), 0, dtype=np.int8)  # ticket
    kind[u < visit_share + 0.06 + 0.3] = 3  # call
    kind[u < visit_share + 0.06] = 1  # complaint
    kind[u < visit_share] = 2  # visit
    return kind


def _draw_chunk_events(
    w: _World,
    offset: int,
    rng: np.random.Generator,
    horizon_days: int,
    prices: np.ndarray,
    start: np.datetime64,
) -> _ChunkEvents:
    """All events of the customers in one chunk (global index = offset + local index)."""
    order_cust, order_day = _draw_order_days(w, rng, horizon_days, start)
    order_s = _time_of_day_s(rng, order_day)
    lines = _draw_lines(w, rng, order_cust, order_day, prices)
    n_orders = len(order_cust)
    order_amount = np.round(
        np.bincount(lines["order"], weights=lines["amount"], minlength=n_orders), 2
    ).astype(np.float64)  # bincount of nothing is int64
    invoices = _draw_invoices(
        w, rng, order_cust, order_day, order_s, order_amount, horizon_days
    )
    ret_cust, ret_day, ret_lines = _draw_returns(
        w, rng, lines, order_cust, order_day, horizon_days
    )
    # Each return is an order of its own, numbered after the chunk's sales orders.
    ret_lines["order"] = ret_lines["order"] + n_orders
    all_lines = {k: np.concatenate([lines[k], ret_lines[k]]) for k in lines}
    ia_cust, ia_s, ia_kind, ia_cost = _draw_interactions(w, rng, horizon_days)
    return _ChunkEvents(
        order_customer=np.concatenate([order_cust, ret_cust]).astype(np.int64) + offset,
        order_s=np.concatenate([order_s, _time_of_day_s(rng, ret_day)]),
        line_order=all_lines["order"],
        line_product=all_lines["product"],
        line_category=all_lines["category"],
        line_quantity=all_lines["quantity"],
        line_amount=all_lines["amount"],
        line_discount=all_lines["discount"],
        line_margin=all_lines["margin"],
        line_channel=all_lines["channel"],
        invoice_order=np.arange(n_orders, dtype=np.int64),
        invoice_due_s=invoices["due_s"],
        invoice_amount=invoices["amount"],
        invoice_paid_s=invoices["paid_s"],
        invoice_paid_amount=invoices["paid_amount"],
        interaction_customer=ia_cust.astype(np.int64) + offset,
        interaction_s=ia_s,
        interaction_kind=ia_kind,
        interaction_cost=ia_cost,
    )


# --- from arrays to the input tables ----------------------------------------------------

# "000".."999" as bytes: ids are written three digits at a time.
_DIGIT_TRIPLES = np.array([list(f"{i:03d}".encode()) for i in range(1000)], dtype=np.uint8)


def _fixed_width_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.ChunkedArray:
    """Ids like 'C0000123': prefix + zero-padded numbers, built without Python strings."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    groups = -(-width // 3)
    padded = 3 * groups
    row_len = len(head) + width
    blocks = []
    for lo in range(0, max(len(numbers), 1), ID_BLOCK_ROWS):
        rest = np.array(numbers[lo : lo + ID_BLOCK_ROWS], dtype=np.int64)
        digits = np.empty((len(rest), padded), dtype=np.uint8)
        for group in range(groups - 1, -1, -1):  # over digit triples, not rows
            rest, triple = np.divmod(rest, 1000)
            digits[:, 3 * group : 3 * group + 3] = _DIGIT_TRIPLES[triple]
        chars = np.empty((len(digits), row_len), dtype=np.uint8)
        chars[:, : len(head)] = head
        chars[:, len(head) :] = digits[:, padded - width :]
        del digits
        offsets = np.arange(0, (len(chars) + 1) * row_len, row_len, dtype=np.int32)
        blocks.append(
            pa.Array.from_buffers(
                pa.string(), len(chars), [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
            )
        )
    return pa.chunked_array(blocks, type=pa.string())


def _id_width(largest: int, minimum: int) -> int:
    """Digits needed for ids up to `largest`, at least `minimum`."""
    return max(minimum, len(str(max(largest, 1))))


def _labels(vocabulary: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """Text labels of category codes."""
    return pa.array(vocabulary, type=pa.string()).take(pa.array(codes.astype(np.int32)))


def _text(values: pa.Array | pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    """Arrow strings as a pandas text column (pandas' default `str` dtype)."""
    return pd.array(values, dtype="str")


def _timestamps(start_us: np.datetime64, seconds: np.ndarray) -> np.ndarray:
    """Naive UTC timestamps (microseconds) from seconds since the history start."""
    return start_us + (seconds.astype(np.int64) * 1_000_000).astype("timedelta64[us]")


def _merge_chunks(chunks: list[_ChunkEvents]) -> dict[str, np.ndarray]:
    """Concatenate every field over the chunks, releasing each chunk's copy as it goes."""
    order_offsets = np.cumsum([0] + [len(c.order_s) for c in chunks[:-1]])
    for chunk, offset in zip(chunks, order_offsets):
        chunk.line_order = chunk.line_order + offset
        chunk.invoice_order = chunk.invoice_order + offset
    merged = {}
    for field in fields(_ChunkEvents):
        merged[field.name] = np.concatenate([getattr(c, field.name) for c in chunks])
        for chunk in chunks:
            setattr(chunk, field.name, None)
    return merged


def _customers_frame(w: _World, start_us: np.datetime64, customer_ids: pa.Array) -> pd.DataFrame:
    """The customers table."""
    signup = start_us + np.floor(w.signup_day).astype("timedelta64[D]").astype("timedelta64[us]")
    return pd.DataFrame(
        {
            "customer_id": _text(customer_ids),
            "signup_date": signup,
            "industry": _text(_labels(INDUSTRIES, w.industry)),
            "region": _text(_labels(REGIONS, w.region)),
            "size_band": _text(_labels(SIZE_BANDS, w.size)),
            "channel": _text(_labels(CHANNELS, w.channel)),
        }
    )


def _orders_by_time(order_s: np.ndarray, order_customer: np.ndarray) -> np.ndarray:
    """Order indices sorted by time (then customer): order number k is element k-1."""
    return np.argsort(order_s * (int(order_customer.max(initial=0)) + 1) + order_customer)


def _lines_in_order_sequence(line_order: np.ndarray, by_time: np.ndarray) -> np.ndarray:
    """Positions of the lines with orders taken in `by_time` sequence.

    Lines are stored grouped by order index, so each order is one contiguous block that
    moves as a whole: no sort needed.
    """
    counts = np.bincount(line_order, minlength=len(by_time))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    moved_counts = counts[by_time]
    new_starts = np.concatenate([[0], np.cumsum(moved_counts)[:-1]])
    return np.repeat(starts[by_time] - new_starts, moved_counts) + np.arange(len(line_order))


def _transactions_frame(
    m: dict[str, np.ndarray], by_time: np.ndarray, customer_ids: pa.Array,
    start_us: np.datetime64,
) -> pd.DataFrame:
    """The transactions table, one row per order line, in order-number sequence."""
    position = _lines_in_order_sequence(m["line_order"], by_time)
    line_order = m.pop("line_order")[position]
    number = np.empty(len(by_time), dtype=np.int64)
    number[by_time] = np.arange(1, len(by_time) + 1)
    line_customer = m["order_customer"][line_order]
    columns = {
        "customer_id": _text(customer_ids.take(pa.array(line_customer))),
        "order_id": _text(
            _fixed_width_ids("O", number[line_order], _id_width(len(by_time), 9))
        ),
        "ts": _timestamps(start_us, m["order_s"][line_order]),
    }
    del line_customer, line_order, number
    columns["amount"] = m.pop("line_amount")[position]
    columns["quantity"] = m.pop("line_quantity")[position]
    columns["product_id"] = _text(_fixed_width_ids("P", m.pop("line_product")[position] + 1, 5))
    columns["category"] = _text(_labels(CATEGORIES, m.pop("line_category")[position]))
    columns["margin"] = m.pop("line_margin")[position]
    columns["discount"] = m.pop("line_discount")[position]
    columns["channel"] = _text(_labels(CHANNELS, m.pop("line_channel")[position]))
    return pd.DataFrame(columns)


def _invoices_frame(
    m: dict[str, np.ndarray], by_time: np.ndarray, customer_ids: pa.Array,
    start_us: np.datetime64,
) -> pd.DataFrame:
    """The invoices table, one invoice per order, numbered like its order."""
    # invoice_order[i] is the order of invoice i; invoices exist only for sales orders.
    invoice_of_order = np.full(len(by_time), -1, dtype=np.int64)
    invoice_of_order[m["invoice_order"]] = np.arange(len(m["invoice_order"]))
    sequence = invoice_of_order[by_time]
    order_numbers = np.flatnonzero(sequence >= 0) + 1
    sequence = sequence[sequence >= 0]
    order = m["invoice_order"][sequence]
    paid_s = m.pop("invoice_paid_s")[sequence]
    paid_at = _timestamps(start_us, np.maximum(paid_s, 0))
    paid_at[paid_s < 0] = np.datetime64("NaT")
    return pd.DataFrame(
        {
            "customer_id": _text(customer_ids.take(pa.array(m["order_customer"][order]))),
            "invoice_id": _text(
                _fixed_width_ids("INV", order_numbers, _id_width(len(by_time), 9))
            ),
            "issued_at": _timestamps(start_us, m["order_s"][order]),
            "due_at": _timestamps(start_us, m.pop("invoice_due_s")[sequence]),
            "amount": m.pop("invoice_amount")[sequence],
            "paid_at": paid_at,
            "paid_amount": m.pop("invoice_paid_amount")[sequence],
        }
    )


def _interactions_frame(
    m: dict[str, np.ndarray], customer_ids: pa.Array, start_us: np.datetime64
) -> pd.DataFrame:
    """The interactions table, sorted by time."""
    seconds = m.pop("interaction_s")
    customer = m.pop("interaction_customer")
    order = np.argsort(seconds * (int(customer.max(initial=0)) + 1) + customer)
    return pd.DataFrame(
        {
            "customer_id": _text(customer_ids.take(pa.array(customer[order]))),
            "ts": _timestamps(start_us, seconds[order]),
            "kind": _text(_labels(INTERACTION_KINDS, m.pop("interaction_kind")[order])),
            "cost": m.pop("interaction_cost")[order],
        }
    )


def _assemble_tables(
    w: _World, chunks: list[_ChunkEvents], start: date, n: int
) -> dict[str, pd.DataFrame]:
    """Turn the chunks' arrays into the four input tables."""
    start_us = np.datetime64(start, "us")
    customer_ids = _fixed_width_ids("C", w.number, _id_width(n, 7)).combine_chunks()
    merged = _merge_chunks(chunks)
    by_time = _orders_by_time(merged["order_s"], merged["order_customer"])
    tables = {"customers": _customers_frame(w, start_us, customer_ids)}
    tables["transactions"] = _transactions_frame(merged, by_time, customer_ids, start_us)
    tables["invoices"] = _invoices_frame(merged, by_time, customer_ids, start_us)
    tables["interactions"] = _interactions_frame(merged, customer_ids, start_us)
    return tables


def _iso_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as ISO 8601 text ('2026-09-30T14:05:09'), nulls kept; fractions kept too."""
    try:
        column = pc.cast(column, pa.timestamp("s"))  # whole seconds: no '.000000' tail
    except pa.ArrowInvalid:
        pass  # sub-second values: keep the microseconds
    return pc.replace_substring(pc.cast(column, pa.string()), " ", "T", max_replacements=1)


def _timestamps_as_iso_text(table: pa.Table) -> pa.Table:
    """The table with every timestamp column as ISO 8601 text, for CSV files."""
    columns = [
        _iso_text(column) if pa.types.is_timestamp(column.type) else column
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)
