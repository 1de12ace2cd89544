"""Returns: rows with a negative amount per window, their amount and their share of gross sales.

Return amount is the positive sum of -amount; return_share = return amount / gross sales (the
sum of positive amounts), null without sales in the window.
"""

from __future__ import annotations

import ibis.expr.types as ir
import numpy as np

from features.families.wording import (
    Column,
    Family,
    Reading,
    count_template,
    money_template,
    share_template,
    some_is_bad,
    stating,
    w_zh,
)
from features.transactions import safe_ratio

COLUMNS = (
    Column("return_count_{W}d", "rows", "W days", "rows with a negative amount"),
    Column("return_amount_{W}d", "money", "W days", "money returned (positive)"),
    Column("return_share_{W}d", "share", "W days", "return amount over gross sales"),
)


def names(spec, available) -> list[str]:
    return [f"{measure}_{w}d" for w in spec.windows_days for measure in ("return_count", "return_amount", "return_share")]


def derive(t: ir.Table, spec) -> dict[str, ir.Value]:
    return {f"return_share_{w}d": safe_ratio(t[f"return_amount_{w}d"], t[f"_gross_sales_{w}d"]) for w in spec.windows_days}


def _returned_is_bad(x: np.ndarray) -> np.ndarray:
    """Any return reads as bad news (the amount is shown without its sign)."""
    return some_is_bad(np.abs(x))


TEMPLATES = stating("returns",
    count_template("return_count", "return", None, lambda g, n: f"{w_zh(g)}退货{n}次", "no returns", lambda g: f"{w_zh(g)}无退货", "退货次数"),
    money_template("return_amount", "returns worth {m}", "退货金额", noun_en="returned amount", absolute=True),
    share_template("return_share", "returns", "退货额"),
    reading=Reading(_returned_is_bad),
)

FAMILY = Family("returns", "returns", COLUMNS, names, TEMPLATES, derive)
