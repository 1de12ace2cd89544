"""The catalog of feature families: the one list the column names, the reason sentences and the
docs table (docs/FEATURES.md) come from.

Each family module (features/families/) declares its columns (name, unit, window), which names
a feature set has, its expressions and its sentence templates in English and Chinese. Here they
are put in table order. A column that an expression builds but no family lists stops the build
(`select_listed`): it is never dropped silently.

`python -m features.catalog --write docs/FEATURES.md` writes the docs table; a test checks that
the file equals the catalog.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from pathlib import Path

import ibis.expr.types as ir

from features.families import (
    attributes,
    breadth,
    btyd,
    cadence,
    cost_to_serve,
    discounts,
    payments,
    prospects,
    recency,
    returns,
    season,
    season_share,
    service,
    tenure_ratios,
    trend,
    volume,
)
from features.families.wording import Family, Template

# The families built from the transaction rows in shared passes (features/transactions.py),
# in the order of their columns in the feature table.
TRANSACTION_FAMILIES: tuple[Family, ...] = (
    recency.FAMILY, volume.FAMILY, cadence.FAMILY, trend.FAMILY, season.FAMILY, breadth.FAMILY, returns.FAMILY, discounts.FAMILY,
)
FAMILIES: tuple[Family, ...] = (
    *TRANSACTION_FAMILIES,
    tenure_ratios.FAMILY, season_share.FAMILY, payments.FAMILY, service.FAMILY, cost_to_serve.FAMILY, attributes.FAMILY,
    btyd.FAMILY, prospects.FAMILY,
)
# The family key of a reason whose feature no family lists (never the case for a built column).
UNLISTED = "unlisted"


class UnlistedColumnError(ValueError):
    """An expression built a column that no family of the catalog lists."""


def transaction_columns(spec, columns: Collection[str]) -> list[str]:
    """Names of the transaction features of `spec`, given the transaction columns present."""
    available = {"transactions": columns}
    return [name for family in TRANSACTION_FAMILIES for name in family.names(spec, available)]


def feature_columns(spec, available: Mapping[str, Collection[str]]) -> list[str]:
    """Feature columns (without customer_id) produced from the given {table: columns present}."""
    if "transactions" not in available:
        raise ValueError(f"feature_columns: the transactions table is required; tables given: {sorted(available)}")
    return [name for family in FAMILIES for name in family.names(spec, available)]


def select_listed(table: ir.Table, names: list[str], *, where: str) -> ir.Table:
    """customer_id + `names`; a built column that is neither listed nor a helper (`_name`) is an error."""
    unlisted = [c for c in table.columns if c != "customer_id" and not c.startswith("_") and c not in set(names)]
    if unlisted:
        raise UnlistedColumnError(
            f"{where}: column(s) {unlisted} are built but no family of features/catalog.py lists them; "
            "add them to their family's names() (or prefix a helper column with '_')")
    return table.select("customer_id", *names)


@lru_cache(maxsize=4096)
def template_of(feature: str) -> tuple[Family, Template, dict] | None:
    """The family and sentence template of a column name, and the groups its pattern captured."""
    for family in FAMILIES:
        for template in family.templates:
            match = re.fullmatch(template.pattern, feature)
            if match:
                return family, template, {k: v for k, v in match.groupdict().items() if v is not None}
    return None


def family_key(feature: str) -> str:
    """The key of the family a column belongs to (stored with each reason)."""
    found = template_of(feature)
    return UNLISTED if found is None else found[0].key


# --------------------------------------------------------------------------- docs


def docs_page() -> str:
    """docs/FEATURES.md: every family, its columns with unit and window, and where it is computed."""
    lines = [
        "# Feature families",
        "",
        "Generated from features/catalog.py by `python -m features.catalog --write docs/FEATURES.md`;",
        "tests/features/test_catalog.py checks that this page equals the catalog. `{W}` is each window",
        "(`features.windows_days`), `{P}` each window (`{W}d`) or `lifetime`, `{H}` each season or BTYD",
        "horizon, `{col}` a kept customers column.",
        "Every column has an English and a Chinese reason sentence (the family module's `TEMPLATES`).",
        "",
        "| family | column | unit | window | meaning | module |",
        "|---|---|---|---|---|---|",
    ]
    for family in FAMILIES:
        module = family.names.__module__.replace(".", "/") + ".py"
        for column in family.columns:
            lines.append(f"| {family.key} | `{column.name}` | {column.unit} | {column.window} | {column.meaning} | `{module}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m features.catalog", description="Write the feature families table.")
    parser.add_argument("--write", type=Path, help="file to write (default: print)")
    args = parser.parse_args(argv)
    if args.write is None:
        print(docs_page(), end="")
    else:
        args.write.write_text(docs_page(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
