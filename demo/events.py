"""Events of one chunk of customers: order days, order lines, returns, invoices and service contacts.

Orders come from each customer's non-homogeneous Poisson process (drawn by thinning); lines,
returns, invoices and interactions follow from the orders and the customer's habits. A chunk
draws from its own random stream, so the result does not depend on how many chunks there are
before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo.parameters import (
    BUSINESS_DAY_LENGTH_S,
    BUSINESS_DAY_START_S,
    CATEGORIES,
    CATEGORY_MARGIN,
    CHANNELS,
    GROWTH_CAP,
    INTERACTION_COST,
    INTERACTION_KINDS,
    LEAD_VISIT_SHARE,
    ORDER_VALUE_ORDER_SIGMA,
    PRODUCTS_PER_CATEGORY,
    SEASONALITY,
    SECONDS_PER_DAY,
    SIZE_TERMS_DAYS,
)
from demo.world import World


@dataclass
class ChunkEvents:
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


def _growth_multiplier(w: World, idx: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Order-rate multiplier from each customer's growth since its order process began."""
    years = (days - w.active_start[idx]) / 365.25
    return np.clip(np.exp(w.growth_per_year[idx] * years), 1.0 / GROWTH_CAP, GROWTH_CAP)


def _ramp_to_departure(w: World, idx: np.ndarray, days: np.ndarray) -> np.ndarray:
    """0 before the lead window, rising linearly to 1 at departure (0 for stayers)."""
    to_go = w.departure_day[idx] - days
    ramp = 1.0 - to_go / w.lead_days[idx]
    return np.where(np.isfinite(to_go), np.clip(ramp, 0.0, 1.0), 0.0)


def _time_of_day_s(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """Seconds since history start: the day of `days` at a random business-hours time."""
    tod = BUSINESS_DAY_START_S + rng.integers(0, BUSINESS_DAY_LENGTH_S, len(days))
    return np.floor(days).astype(np.int64) * SECONDS_PER_DAY + tod


def draw_order_days(
    w: World, rng: np.random.Generator, horizon_days: int, start: np.datetime64
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
    w: World, rng: np.random.Generator, order_cust: np.ndarray, order_day: np.ndarray,
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
    w: World, rng: np.random.Generator, lines: dict[str, np.ndarray],
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
    w: World, rng: np.random.Generator, order_cust: np.ndarray, order_day: np.ndarray,
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
    w: World, rng: np.random.Generator, horizon_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Service interactions: steady service, complaint build-ups before leaving, episodes."""
    n = len(w.size)
    has_orders = np.isfinite(w.active_start)
    s0 = np.maximum(np.nan_to_num(w.signup_day), 0.0)
    # A lead is served from its first order on; before it, sales contacts it (_draw_lead_contacts).
    s0 = np.where(w.lead_contact_rate > 0, np.nan_to_num(w.first_order_day, nan=horizon_days), s0)
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


def _draw_lead_contacts(
    w: World, rng: np.random.Generator, horizon_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sales visits and calls to each lead from sign-up until its first order (or the end)."""
    start = np.maximum(np.nan_to_num(w.signup_day), 0.0)
    end = np.minimum(np.nan_to_num(w.first_order_day, nan=horizon_days), horizon_days)
    span = np.where(w.lead_contact_rate > 0, np.maximum(end - start, 0.0), 0.0)
    idx = np.repeat(np.arange(len(span)), rng.poisson(w.lead_contact_rate * span))
    day = start[idx] + rng.random(len(idx)) * span[idx]
    kind = np.where(rng.random(len(idx)) < LEAD_VISIT_SHARE[w.size[idx]], 2, 3).astype(np.int8)
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


def draw_chunk_events(
    w: World,
    offset: int,
    rng: np.random.Generator,
    horizon_days: int,
    prices: np.ndarray,
    start: np.datetime64,
) -> ChunkEvents:
    """All events of the customers in one chunk (global index = offset + local index)."""
    order_cust, order_day = draw_order_days(w, rng, horizon_days, start)
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
    # Leads' contacts from a stream of their own: other customers' events stay as they were.
    lead = _draw_lead_contacts(w, rng.spawn(1)[0], horizon_days)
    ia_cust, ia_s, ia_kind, ia_cost = (np.concatenate(pair) for pair in zip((ia_cust, ia_s, ia_kind, ia_cost), lead, strict=True))
    return ChunkEvents(
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
