"""The numbers of the demo world, in one place (the package docstring says what each one does)."""

from __future__ import annotations

import numpy as np

BASE_SHARE = 0.15
SIGNUP_GROWTH_PER_YEAR = 0.25
FIRST_ORDER_LAG_DAYS = 6.0
PROSPECT_SHARE = 0.015
# Leads: this share of the customers signing up during the history do not order at once. Each
# converts at its own daily rate exp(attribute effects + readiness) / LEAD_MEAN_DAYS_TO_CONVERT,
# readiness a hidden normal(0, LEAD_READINESS_SD); sales contacts (visits, calls) come more
# often to readier leads, so the interactions table tells what the attributes do not.
LEAD_SHARE = 0.25
LEAD_MEAN_DAYS_TO_CONVERT = 150.0
LEAD_READINESS_SD = 0.9
LEAD_SIZE_EFFECT = np.array([-0.3, 0.0, 0.4, 0.7])  # log daily rate, by SIZE_BANDS
LEAD_INDUSTRY_EFFECT = np.array([0.3, 0.0, -0.5, 0.4, -0.2, 0.6, 0.1, -0.7])  # by INDUSTRIES
LEAD_REGION_EFFECT = np.array([0.0, 0.2, 0.1, -0.3, -0.1])  # by REGIONS
LEAD_CHANNEL_EFFECT = np.array([0.6, 0.0, -0.2, -0.6])  # by CHANNELS
LEAD_CONTACTS_PER_MONTH = 0.8  # at readiness 0
LEAD_CONTACT_READINESS = 0.8  # contacts a month scale with exp(this x readiness)
LEAD_VISIT_SHARE = np.array([0.15, 0.25, 0.4, 0.5])  # of contacts, by SIZE_BANDS; the rest are calls

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
