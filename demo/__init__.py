"""Generate a realistic, deterministic demo world of customers, orders, invoices and service.

`generate_demo_data(n)` returns the four input tables of the contract (customers,
transactions, invoices, interactions) as pandas frames; `write_demo_data` writes them as
`<table>.parquet` or `<table>.csv` files that `features.validation` accepts without a
single quarantined row. Same seed and customer count: identical frames.

The world (`demo.parameters` holds every number):

- History: ``years`` (default 3) of days ending with the day ``end`` (inclusive: every
  timestamp is before ``end + 1 day``). Timestamps are naive UTC at business hours.
- Customers: ``BASE_SHARE`` (15%) were customers before the history starts (their earlier
  orders are not in the data); the rest sign up all the time over the history, sign-ups
  growing by ``SIGNUP_GROWTH_PER_YEAR`` (25%) a year, first order ``FIRST_ORDER_LAG_DAYS``
  (about 6 days) after sign-up. ``PROSPECT_SHARE`` of the customers from before the history
  are dormant accounts that never order.
- Leads: ``LEAD_SHARE`` (25%) of the sign-ups during the history do not order at once: each
  converts at its own daily rate exp(size + industry + region + channel effects + readiness)
  / ``LEAD_MEAN_DAYS_TO_CONVERT`` (150 days at the median; effects ``LEAD_*_EFFECT``,
  readiness a hidden normal(0, ``LEAD_READINESS_SD``)), so conversion depends on attributes
  and not on time since sign-up. Until it orders, sales visits and calls it
  (``LEAD_CONTACTS_PER_MONTH`` x exp(``LEAD_CONTACT_READINESS`` x readiness)): the
  interactions say what the attributes do not. Service starts with the first order. Leads
  not converted by the end are the prospects of the customers table (with the dormant ones,
  about 6%); `generate_demo_truth` gives each customer's ``first_order_rate_per_day`` and
  `first_order_probability` the true chance of a first order within a horizon.
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

The modules, in the order a world is made: `parameters`, `world` (the latent customers),
`events` (orders, lines, returns, invoices, service per chunk of customers), `tables` (the
input tables and their files), `generate` (the two entry points). The package imports no
other package of the project.
"""

from demo.generate import first_order_probability, generate_demo_data, generate_demo_truth
from demo.parameters import TRUTH_FILE
from demo.tables import SUPPORTED_FORMATS, write_demo_data, write_demo_truth

__all__ = [
    "SUPPORTED_FORMATS",
    "TRUTH_FILE",
    "first_order_probability",
    "generate_demo_data",
    "generate_demo_truth",
    "write_demo_data",
    "write_demo_truth",
]
