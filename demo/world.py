"""The latent world: each customer's sign-up, size, industry, purchase rate, growth, churn and habits.

One array element per customer (`World`), drawn once from the world's own random stream, so
the tables and the truth (`generate_demo_truth`) see the same customers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from demo.parameters import (
    BASE_SHARE,
    CATEGORY_PRICE,
    CHANNEL_SHARES,
    CHRONIC_LATE_SHARE,
    CHURN_MECHANISM_SHARES,
    COMPLAINT_EPISODE_SHARE,
    DECLINER_SHARE,
    FIRST_ORDER_LAG_DAYS,
    GROWER_SHARE,
    HIGH_MAINTENANCE_SHARE,
    INDUSTRY_CATEGORY_AFFINITY,
    INDUSTRY_RATE,
    INDUSTRY_SHARES,
    LEAD_CHANNEL_EFFECT,
    LEAD_CONTACT_READINESS,
    LEAD_CONTACTS_PER_MONTH,
    LEAD_INDUSTRY_EFFECT,
    LEAD_MEAN_DAYS_TO_CONVERT,
    LEAD_READINESS_SD,
    LEAD_REGION_EFFECT,
    LEAD_SHARE,
    LEAD_SIZE_EFFECT,
    MONTHLY_CHURN_HAZARD,
    ORDER_VALUE_CUSTOMER_SIGMA,
    PAYMENT_EPISODE_SHARE,
    PRODUCTS_PER_CATEGORY,
    PROSPECT_SHARE,
    RATE_MEAN_PER_MONTH,
    RATE_SHAPE,
    REGION_SHARES,
    RETURN_RATE_MEAN,
    SERVICE_RATE_PER_MONTH,
    SIGNUP_GROWTH_PER_YEAR,
    SIZE_EXTRA_LINES,
    SIZE_HAZARD,
    SIZE_ORDER_VALUE,
    SIZE_RATE,
    SIZE_SERVICE,
    SIZE_SHARES,
    SIZE_VISIT_SHARE,
    WIDENER_SHARE,
)


@dataclass
class World:
    """Latent per-customer parameters, one array element per customer."""

    number: np.ndarray  # customer number (1-based), the id's digits
    signup_day: np.ndarray  # days since history start (negative: before the history)
    size: np.ndarray
    industry: np.ndarray
    region: np.ndarray
    channel: np.ndarray
    first_order_day: np.ndarray  # forced first order (nan: none in the history)
    first_order_rate: np.ndarray  # daily rate of the first order while a prospect (nan: ordering before the history)
    lead_contact_rate: np.ndarray  # sales visits and calls a day while a lead (0: not a lead)
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

    def slice(self, lo: int, hi: int) -> World:
        """The customers lo..hi-1 as a smaller world."""
        return World(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})


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


def draw_world(n: int, rng: np.random.Generator, horizon_days: int) -> World:
    """Draw every customer's attributes and latent behaviour."""
    size = _choice(rng, SIZE_SHARES, n)
    industry = _choice(rng, INDUSTRY_SHARES, n)
    region = _choice(rng, REGION_SHARES, n)
    channel = _choice(rng, CHANNEL_SHARES, n)
    signup_day = _draw_signup_days(rng, n, horizon_days)
    first_order_day = np.where(
        signup_day >= 0, signup_day + rng.exponential(FIRST_ORDER_LAG_DAYS, n), np.nan
    )
    # Dormant accounts: signed up before the history and never ordered, nor ever will.
    is_prospect = (rng.random(n) < PROSPECT_SHARE) & (signup_day < 0)
    # Leads have their own random stream: their numbers change no other customer's behaviour.
    leads = _draw_leads(rng.spawn(1)[0], signup_day, size, industry, region, channel)
    first_order_day = np.where(leads.is_lead, signup_day + leads.days_to_convert, first_order_day)
    first_order_day[is_prospect | (first_order_day >= horizon_days)] = np.nan
    first_order_rate = np.where(leads.is_lead, leads.rate_per_day, 1.0 / FIRST_ORDER_LAG_DAYS)
    first_order_rate = np.where(signup_day < 0, np.where(is_prospect, 0.0, np.nan), first_order_rate)
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
    return World(
        number=np.arange(1, n + 1, dtype=np.int64),
        signup_day=signup_day,
        size=size,
        industry=industry,
        region=region,
        channel=channel,
        first_order_day=first_order_day,
        first_order_rate=first_order_rate,
        lead_contact_rate=np.where(leads.is_lead, leads.contact_rate_per_day, 0.0),
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


@dataclass
class Leads:
    """Which sign-ups are leads, how fast each converts and how often sales contacts it."""

    is_lead: np.ndarray
    rate_per_day: np.ndarray  # daily rate of the first order
    days_to_convert: np.ndarray  # exponential with that rate
    contact_rate_per_day: np.ndarray


def lead_log_rate_effects(
    size: np.ndarray, industry: np.ndarray, region: np.ndarray, channel: np.ndarray
) -> np.ndarray:
    """The attributes' part of a lead's log daily conversion rate (what a model can learn from them)."""
    return (
        LEAD_SIZE_EFFECT[size]
        + LEAD_INDUSTRY_EFFECT[industry]
        + LEAD_REGION_EFFECT[region]
        + LEAD_CHANNEL_EFFECT[channel]
    )


def _draw_leads(
    rng: np.random.Generator,
    signup_day: np.ndarray,
    size: np.ndarray,
    industry: np.ndarray,
    region: np.ndarray,
    channel: np.ndarray,
) -> Leads:
    """Leads among the sign-ups of the history: a latent rate from attributes and a hidden readiness."""
    n = len(size)
    is_lead = (rng.random(n) < LEAD_SHARE) & (signup_day >= 0)
    readiness = rng.normal(0.0, LEAD_READINESS_SD, n)
    rate = np.exp(lead_log_rate_effects(size, industry, region, channel) + readiness)
    rate /= LEAD_MEAN_DAYS_TO_CONVERT
    contacts = LEAD_CONTACTS_PER_MONTH / 30.4 * np.exp(LEAD_CONTACT_READINESS * readiness)
    return Leads(is_lead, rate, rng.exponential(1.0, n) / rate, contacts)


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


def draw_product_prices(rng: np.random.Generator) -> np.ndarray:
    """Unit price of every product, indexed by category * PRODUCTS_PER_CATEGORY + k."""
    base = np.repeat(CATEGORY_PRICE, PRODUCTS_PER_CATEGORY)
    return np.round(base * rng.lognormal(0.0, 0.6, base.size), 2)
