"""The catalog of feature families: every column it lists has a family, a documented row and a
sentence in both languages, and a column built outside it stops the build."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from features.build import FeatureSpec, build_features
from features.catalog import FAMILIES, UnlistedColumnError, docs_page, feature_columns, template_of
from features.contract import TABLES
from features.families import btyd, prospects, volume
from features.families.wording import DISPLAY_KINDS, column_pattern
from features.tables import tables_from_frames
from models.btyd import btyd_output_columns
from serving.sentences import sentence
from tests.features.conftest import random_frames

ROOT = Path(__file__).resolve().parents[2]
# Every option on: each window, the year-ago comparison, season features for two horizons.
FULL_SPEC = FeatureSpec(windows_days=(30, 90, 365), season_horizons_days=(30, 90))
BTYD_HORIZONS = (90, 365)
# Customers columns whose attribute sentences the catalog words in Chinese (others keep their code).
ATTRIBUTES = ("industry", "region")
# Acronyms a Chinese finance text writes in Latin letters.
ACRONYMS = {"DSO"}
VALUES = (0.0, 1.0, -3.0, 2.5, 0.42, 1234.5, math.nan)


def every_table_and_column() -> dict[str, list[str]]:
    """Each table of the input contract with all its columns, and two attributes."""
    available = {name: list(spec.column_names) for name, spec in TABLES.items()}
    available["customers"] = [*available["customers"], *ATTRIBUTES]
    return available


def catalog_columns() -> list[str]:
    """Every column a model can see: the full feature set and the BTYD columns of two horizons."""
    names = feature_columns(FULL_SPEC, every_table_and_column())
    names += [c for h in BTYD_HORIZONS for c in btyd.btyd_columns(h) if c not in names]
    names += [c for c in prospect_only_columns() if c not in names]
    return names


def prospect_only_columns() -> list[str]:
    """The columns only the prospect table builds (features/prospects.py), of the full spec's windows."""
    return [c for c in prospects.prospect_contact_columns(FULL_SPEC.windows_days) if not c.startswith("interaction_count")]


def test_every_column_belongs_to_the_family_that_lists_it_and_to_exactly_one_template():
    available = every_table_and_column()
    for family in FAMILIES:
        listed = family.names(FULL_SPEC, available) or (
            [c for h in BTYD_HORIZONS for c in btyd.btyd_columns(h)] if family is btyd.FAMILY else
            prospect_only_columns() if family is prospects.FAMILY else [])
        assert listed, f"{family.key}: no column with every table and option"
        for name in listed:
            matches = [(f.key, t.pattern) for f in FAMILIES for t in f.templates if re.fullmatch(t.pattern, name)]
            assert len(matches) == 1, f"{name}: templates {matches}"
            assert matches[0][0] == family.key, f"{name} is listed by {family.key} but worded by {matches[0][0]}"
            documented = [c.name for c in family.columns if re.fullmatch(column_pattern(c.name), name)]
            assert documented, f"{name}: no row of {family.key}.COLUMNS documents it"
        assert all(t.kind in DISPLAY_KINDS for t in family.templates)


def test_every_model_facing_column_has_an_english_and_a_chinese_sentence_without_english_words():
    names = catalog_columns()
    assert len(names) > 100
    for name in names:
        assert template_of(name) is not None, f"{name}: no template in features/catalog.py"
        for value in ("retail", math.nan) if name.startswith("attr_") else VALUES:
            en, zh = sentence(name, value)
            assert en and zh, f"{name}={value}"
            assert re.search(r"[\u4e00-\u9fff]", zh), f"{name}={value}: {zh!r} has no Chinese"
            words = set(re.findall(r"[A-Za-z]{2,}", zh)) - ACRONYMS - ({"retail"} if name.startswith("attr_") else set())
            assert not words, f"{name}={value}: Chinese sentence {zh!r} has English words {sorted(words)}"


def test_every_column_any_family_or_the_btyd_step_can_produce_reads_in_english_without_its_code():
    """No reason may read "btyd p alive: 0.42": each sentence is words, with no underscore and no column name."""
    names = feature_columns(FULL_SPEC, {**every_table_and_column(), "customers": ["customer_id", "industry", "loyalty_points"]})
    names += [c for h in BTYD_HORIZONS for c in btyd_output_columns(h) if c not in names]  # as models/btyd_columns.py adds them
    assert "btyd_p_alive" in names and "recency_over_tenure" in names and "attr_loyalty_points" in names
    for name in names:
        assert template_of(name) is not None, f"{name}: no template in features/catalog.py; add one to its family's TEMPLATES"
        for value in ("retail", 3.0, math.nan) if name.startswith("attr_") else VALUES:
            en, zh = sentence(name, value)
            assert "_" not in en and "_" not in zh, f"{name}={value}: {en!r} / {zh!r} has an underscore"
            assert name not in en, f"{name}={value}: {en!r} names the column"
            spaced = name.replace("_", " ")
            assert spaced not in en, f"{name}={value}: {en!r} is the column name in words, not a sentence"


def test_ratio_and_btyd_columns_are_stated_as_sentences():
    assert sentence("recency_over_tenure", 0.42) == ("time since the last order is 42% of the time as a customer", "距上次下单的时间占合作时长的42%")
    assert sentence("recency_over_tenure", 0.004)[0] == "time since the last order is under 1% of the time as a customer"
    assert sentence("order_days_per_month_lifetime", 0.134) == (
        "orders about once every 7.5 months since the first order", "首单以来平均每7.5个月下单一次")
    assert sentence("order_days_per_month_lifetime", 2.26)[0] == "orders on 2.3 days a month on average since the first order"
    assert sentence("revenue_per_month_lifetime", 534.4) == (
        "spends 534 a month on average since the first order", "首单以来平均每月消费534")
    assert sentence("btyd_p_no_order_90d", 0.3) == (
        "30% chance of no order in the next 90 days (buying-cycle model)", "购买周期模型估计未来90天不下单的概率为30%")
    assert sentence("btyd_p_alive", 0.877)[0] == "88% chance the customer still buys (buying-cycle model)"
    assert sentence("btyd_expected_orders_365d", 0.461)[0] == "expected to order on about 0.5 days in the next 365 days (buying-cycle model)"
    assert sentence("btyd_expected_revenue_90d", 456.7) == (
        "expected spend of 457 in the next 90 days (buying-cycle model)", "购买周期模型预计未来90天消费额457")
    assert sentence("btyd_p_alive", math.nan) == ("chance the customer still buys (buying-cycle model): no data", "购买周期模型估计的仍活跃概率：无数据")


def test_btyd_family_names_the_columns_the_model_adds():
    for h in BTYD_HORIZONS:
        assert btyd.btyd_columns(h) == btyd_output_columns(h)


def test_the_docs_table_equals_the_catalog():
    page = (ROOT / "docs" / "FEATURES.md").read_text(encoding="utf-8")
    assert page == docs_page(), "docs/FEATURES.md is stale: run python -m features.catalog --write docs/FEATURES.md"


T = datetime(2024, 7, 1)


@pytest.fixture(scope="module")
def tables(con):
    frames = random_frames(40, seed=3, start=T - timedelta(days=800), end=T + timedelta(days=30))
    frames["customers"] = pd.DataFrame({"customer_id": [f"{i:05d}" for i in range(45)], "industry": ["retail", "trade", "food"] * 15,
                                        "signup_date": [T - timedelta(days=900 - 10 * i) for i in range(45)]})
    return tables_from_frames(frames, con)[1]


def test_a_build_gives_exactly_the_catalog_columns(tables):
    built = build_features(tables, T, FULL_SPEC, include_prospects=True)
    available = {name: list(table.columns) for name, table in tables.items()}
    assert list(built.columns) == ["customer_id", *feature_columns(FULL_SPEC, available)]


def test_a_column_built_but_left_out_of_the_catalog_stops_the_build(tables, monkeypatch):
    import features.build

    def derive_one_more(t, spec):
        return {**volume.derive(t, spec), "orders_per_category_90d": t.order_count_90d / t.distinct_categories_90d}

    families = tuple(replace(f, derive=derive_one_more) if f is volume.FAMILY else f for f in features.build.TRANSACTION_FAMILIES)
    monkeypatch.setattr(features.build, "TRANSACTION_FAMILIES", families)
    with pytest.raises(UnlistedColumnError, match="orders_per_category_90d.*no family of features/catalog.py lists"):
        build_features(tables, T, FULL_SPEC)
