"""Tests of the demo data generator: contract, determinism and the world's behaviour."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from demo import generate_demo_data, write_demo_data
from features.contract import TABLES, LogicalType

END = date(2026, 9, 30)
END_EXCLUSIVE = pd.Timestamp(END) + pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    """A small world shared by the behaviour tests."""
    return generate_demo_data(2000, seed=7, end=END)


def _orders(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per order (positive amount): customer_id, order_id, ts."""
    sales = transactions[transactions["amount"] > 0]
    return sales.groupby(["customer_id", "order_id"], as_index=False)["ts"].min()


def _mean_days_late_change(
    invoices: pd.DataFrame, reference: pd.Series, window_days: int = 120
) -> pd.Series:
    """Per customer: mean days late of invoices issued in the window before the reference
    date minus the mean of the window before that (paid invoices only)."""
    paid = invoices.dropna(subset=["paid_at"]).merge(
        reference.rename("ref"), left_on="customer_id", right_index=True
    )
    paid["late"] = (paid["paid_at"] - paid["due_at"]).dt.total_seconds() / 86400
    before = (paid["ref"] - paid["issued_at"]).dt.days
    recent = paid[(before >= 0) & (before < window_days)].groupby("customer_id")["late"].mean()
    earlier = paid[(before >= window_days) & (before < 2 * window_days)]
    return (recent - earlier.groupby("customer_id")["late"].mean()).dropna()


def _complaint_change(
    interactions: pd.DataFrame, reference: pd.Series, window_days: int = 120
) -> pd.Series:
    """Per customer: complaints in the window before the reference date minus the window
    before that."""
    complaints = interactions[interactions["kind"] == "complaint"].merge(
        reference.rename("ref"), left_on="customer_id", right_index=True
    )
    before = (complaints["ref"] - complaints["ts"]).dt.days
    recent = complaints[(before >= 0) & (before < window_days)].groupby("customer_id").size()
    earlier = complaints[(before >= window_days) & (before < 2 * window_days)]
    earlier_count = earlier.groupby("customer_id").size()
    index = reference.index
    return recent.reindex(index, fill_value=0) - earlier_count.reindex(index, fill_value=0)


def test_same_seed_gives_identical_tables_and_other_seeds_differ() -> None:
    first = generate_demo_data(300, seed=11, end=END)
    again = generate_demo_data(300, seed=11, end=END)
    other = generate_demo_data(300, seed=12, end=END)
    for name, frame in first.items():
        pd.testing.assert_frame_equal(frame, again[name])
    assert not first["transactions"]["amount"].equals(other["transactions"]["amount"])
    assert not first["customers"]["signup_date"].equals(other["customers"]["signup_date"])


def test_tables_follow_the_input_contract(world: dict[str, pd.DataFrame]) -> None:
    expected_columns = {
        "transactions": ["customer_id", "order_id", "ts", "amount", "quantity", "product_id",
                         "category", "margin", "discount", "channel"],
        "customers": ["customer_id", "signup_date", "industry", "region", "size_band",
                      "channel"],
        "invoices": ["customer_id", "invoice_id", "issued_at", "due_at", "amount", "paid_at",
                     "paid_amount"],
        "interactions": ["customer_id", "ts", "kind", "cost"],
    }  # fmt: skip
    assert set(world) == set(TABLES)
    for name, frame in world.items():
        assert list(frame.columns) == expected_columns[name]
        spec = TABLES[name]
        assert set(spec.required_columns) <= set(frame.columns)
        for column in frame.columns:
            logical = spec.column(column).type
            series = frame[column]
            if logical is LogicalType.STRING:
                assert pd.api.types.is_string_dtype(series), (name, column, series.dtype)
                assert series.notna().all(), (name, column)
            elif logical is LogicalType.TIMESTAMP:
                assert pd.api.types.is_datetime64_dtype(series), (name, column, series.dtype)
                assert getattr(series.dt, "tz", None) is None, (name, column)
            else:
                assert pd.api.types.is_float_dtype(series), (name, column, series.dtype)


def test_history_ends_on_the_end_day_and_has_times_of_day(world: dict[str, pd.DataFrame]) -> None:
    tx = world["transactions"]
    assert tx["ts"].max() < END_EXCLUSIVE
    assert tx["ts"].max() >= END_EXCLUSIVE - pd.Timedelta(days=7)
    assert tx["ts"].min() >= END_EXCLUSIVE - pd.Timedelta(days=3 * 366)
    assert (tx["ts"].dt.hour > 0).mean() > 0.99
    for name, column in [("invoices", "issued_at"), ("invoices", "paid_at"),
                         ("interactions", "ts"), ("customers", "signup_date")]:  # fmt: skip
        assert world[name][column].max() < END_EXCLUSIVE, (name, column)


def test_ids_are_strings_with_leading_zeros_in_frames_and_files(
    world: dict[str, pd.DataFrame], tmp_path
) -> None:
    ids = world["customers"]["customer_id"]
    assert ids.str.fullmatch(r"C\d{7}").all()
    assert ids.iloc[0] == "C0000001"
    small = {name: frame.head(200) for name, frame in world.items()}
    for fmt in ("csv", "parquet"):
        paths = write_demo_data(small, tmp_path / fmt, fmt=fmt)
        assert {p.name for p in paths.values()} == {f"{n}.{fmt}" for n in small}
        reader = pd.read_csv if fmt == "csv" else pd.read_parquet
        kwargs = {"dtype": str} if fmt == "csv" else {}
        back = reader(paths["transactions"], **kwargs)
        assert back["customer_id"].tolist() == small["transactions"]["customer_id"].tolist()
        assert back["order_id"].str.startswith("O0").all()
    csv_text = (tmp_path / "csv" / "invoices.csv").read_text().splitlines()
    assert csv_text[0].replace('"', "").split(",")[:3] == ["customer_id", "invoice_id", "issued_at"]
    assert "T" in csv_text[1].split(",")[2]  # ISO 8601 timestamps


def test_write_demo_data_rejects_an_unknown_format(world, tmp_path) -> None:
    with pytest.raises(ValueError, match="unsupported demo data format 'xlsx'.*parquet, csv"):
        write_demo_data(world, tmp_path, fmt="xlsx")


def test_invoices_and_interactions_only_name_known_customers(world) -> None:
    known = set(world["customers"]["customer_id"])
    for name in ("transactions", "invoices", "interactions"):
        assert set(world[name]["customer_id"]) <= known, name


def test_rows_are_unique_under_the_contract_keys(world) -> None:
    tx = world["transactions"]
    line_key = tx.assign(is_return=tx["amount"] < 0)[["order_id", "product_id", "is_return"]]
    assert not line_key.duplicated().any()
    assert not world["invoices"]["invoice_id"].duplicated().any()
    assert not world["interactions"].duplicated().any()
    assert (world["invoices"]["paid_at"].dropna() > world["invoices"]["issued_at"].min()).all()


def test_returns_are_negative_and_follow_a_purchase_of_the_same_product(world) -> None:
    tx = world["transactions"]
    returns = tx[tx["amount"] < 0]
    assert 0.01 < len(returns) / len(tx) < 0.06
    assert (returns["quantity"] < 0).all()
    # A returned line gives its margin back (positive only where the sale lost money).
    assert returns["margin"].sum() < 0
    assert (returns["margin"] < 0).mean() > 0.9
    first_bought = (
        tx[tx["amount"] > 0].groupby(["customer_id", "product_id"])["ts"].min().rename("bought")
    )
    joined = returns.join(first_bought, on=["customer_id", "product_id"])
    assert (joined["bought"] < joined["ts"]).all()
    # A return is its own order line: no order mixes sales and returns.
    assert not returns["order_id"].isin(tx.loc[tx["amount"] > 0, "order_id"]).any()


def test_discounts_are_money_given_away_and_margins_vary_by_category(world) -> None:
    tx = world["transactions"]
    sales = tx[tx["amount"] > 0]
    assert (tx["discount"] >= 0).all()
    assert 0.05 < (sales["discount"] > 0).mean() < 0.4
    by_category = sales.groupby("category")[["margin", "amount"]].sum()
    margin_rate = by_category["margin"] / by_category["amount"]
    assert margin_rate.max() - margin_rate.min() > 0.2
    assert (sales["margin"] < sales["amount"]).all()


def test_orders_have_several_lines_and_rows_per_customer_near_twenty(world) -> None:
    tx = world["transactions"]
    lines_per_order = tx[tx["amount"] > 0].groupby("order_id").size()
    assert 1.5 < lines_per_order.mean() < 2.6
    assert lines_per_order.max() >= 4
    assert 14 < len(tx) / len(world["customers"]) < 26


def test_some_customers_are_prospects_without_orders(world) -> None:
    buyers = set(world["transactions"]["customer_id"])
    prospects = ~world["customers"]["customer_id"].isin(buyers)
    assert 0.01 < prospects.mean() < 0.10


def test_new_customers_keep_arriving_in_each_of_the_last_four_quarters(world) -> None:
    first_order = _orders(world["transactions"]).groupby("customer_id")["ts"].min()
    n = len(world["customers"])
    for quarter in range(4):
        upper = END_EXCLUSIVE - pd.Timedelta(days=91 * quarter)
        lower = upper - pd.Timedelta(days=91)
        arrivals = ((first_order >= lower) & (first_order < upper)).sum()
        assert arrivals > 0.03 * n, (quarter, arrivals)


def test_top_five_percent_of_customers_bring_a_pareto_share_of_revenue(world) -> None:
    revenue = world["transactions"].groupby("customer_id")["amount"].sum().sort_values()[::-1]
    top = revenue.head(int(0.05 * len(world["customers"]))).sum() / revenue.sum()
    assert 0.30 <= top <= 0.50, top


def test_some_active_customers_have_negative_net_value(world) -> None:
    year_ago = END_EXCLUSIVE - pd.Timedelta(days=365)
    tx, ia = world["transactions"], world["interactions"]
    margin = tx[tx["ts"] >= year_ago].groupby("customer_id")["margin"].sum()
    service = ia[ia["ts"] >= year_ago].groupby("customer_id")["cost"].sum()
    net_value = margin - service.reindex(margin.index, fill_value=0.0)
    assert 0.04 <= (net_value < 0).mean() <= 0.20


def test_orders_peak_in_q4_and_dip_in_summer(world) -> None:
    orders = _orders(world["transactions"])
    month = orders["ts"].dt.to_period("M")
    winter = month.isin(pd.period_range("2024-11", "2024-12", freq="M")).sum()
    summer = month.isin(pd.period_range("2025-07", "2025-08", freq="M")).sum()
    # The customer base grows between the two, so a dip here is seasonality.
    assert summer < winter


def test_churners_warn_through_payments_or_complaints_more_than_stayers(world) -> None:
    orders = _orders(world["transactions"])
    per_customer = orders.groupby("customer_id")["ts"].agg(["max", "size"])
    regular = per_customer["size"] >= 4
    churned = regular & (per_customer["max"] < END_EXCLUSIVE - pd.Timedelta(days=180))
    stayed = regular & (per_customer["max"] >= END_EXCLUSIVE - pd.Timedelta(days=90))
    assert churned.sum() > 0.05 * len(world["customers"])
    # Churners are seen up to their last order, stayers up to a date with settled invoices.
    reference = pd.concat(
        [
            per_customer.loc[churned, "max"],
            pd.Series(END_EXCLUSIVE - pd.Timedelta(days=180), index=per_customer.index[stayed]),
        ]
    )
    late_rise = _mean_days_late_change(world["invoices"], reference) > 10
    complaint_rise = _complaint_change(world["interactions"], reference) >= 2
    warning = complaint_rise | late_rise.reindex(reference.index, fill_value=False)
    churner_share = warning[churned[churned].index].mean()
    stayer_share = warning[stayed[stayed].index].mean()
    assert churner_share > stayer_share + 0.10, (churner_share, stayer_share)
    assert churner_share > 2.5 * stayer_share, (churner_share, stayer_share)
    # Not trivial: most churners give no such loud warning, and some stayers do.
    assert churner_share < 0.7
    assert stayer_share > 0.0


def test_churners_order_more_slowly_before_they_stop(world) -> None:
    orders = _orders(world["transactions"]).sort_values(["customer_id", "ts"])
    gaps = orders.groupby("customer_id")["ts"].diff().dt.days
    rank_from_end = orders.groupby("customer_id").cumcount(ascending=False)
    orders = orders.assign(gap=gaps, rank_from_end=rank_from_end)
    last = orders.groupby("customer_id")["ts"].transform("max")
    count = orders.groupby("customer_id")["ts"].transform("size")
    churner_rows = orders[(count >= 6) & (last < END_EXCLUSIVE - pd.Timedelta(days=180))]
    late_gaps = churner_rows.loc[churner_rows["rank_from_end"] < 2, "gap"].median()
    early_gaps = churner_rows.loc[churner_rows["rank_from_end"] >= 3, "gap"].median()
    assert late_gaps > early_gaps


def test_some_invoices_are_open_or_overdue_at_the_end(world) -> None:
    invoices = world["invoices"]
    open_ = invoices["paid_at"].isna()
    assert 0.01 < open_.mean() < 0.2
    assert (open_ & (invoices["due_at"] < END_EXCLUSIVE)).sum() > 0
    assert invoices.loc[open_, "paid_amount"].isna().all()
    assert (invoices.loc[~open_, "paid_amount"] <= invoices.loc[~open_, "amount"] + 1e-9).all()
    terms = (invoices["due_at"] - invoices["issued_at"]).dt.days
    assert set(terms.unique()) == {30, 60}


def test_some_customers_grow_their_spend_year_on_year(world) -> None:
    tx = world["transactions"]
    year = pd.Timedelta(days=365)
    last_year = tx[tx["ts"] >= END_EXCLUSIVE - year].groupby("customer_id")["amount"].sum()
    in_prior_year = (tx["ts"] < END_EXCLUSIVE - year) & (tx["ts"] >= END_EXCLUSIVE - 2 * year)
    prior_year = tx[in_prior_year].groupby("customer_id")["amount"].sum()
    prior_year = prior_year[prior_year > 0]
    change = last_year.reindex(prior_year.index, fill_value=0.0) / prior_year
    assert (change > 1.5).mean() > 0.10
    assert (change < 0.5).mean() > 0.10


def test_written_demo_data_passes_validation_without_quarantine(tmp_path) -> None:
    from datetime import datetime

    from features.validation import load_and_validate

    tables = generate_demo_data(300, seed=5, end=END)
    for fmt in ("csv", "parquet"):
        write_demo_data(tables, tmp_path / fmt, fmt=fmt)
        validated = load_and_validate(tmp_path / fmt, clock=datetime(2026, 10, 1))
        for name, report in validated.report.items():
            assert report.read == len(tables[name]), (fmt, name)
            assert report.quarantined == 0, (fmt, name, report.reasons)


def test_rejects_a_customer_count_below_one() -> None:
    with pytest.raises(ValueError, match="n_customers must be at least 1, got 0"):
        generate_demo_data(0)


@pytest.mark.slow
def test_twenty_thousand_customers_have_about_twenty_rows_each() -> None:
    # Generation speed is measured in benchmarks/, not asserted here (machines are noisy).
    tables = generate_demo_data(20_000, seed=3)
    assert 14 * 20_000 < len(tables["transactions"]) < 26 * 20_000
    assert np.isfinite(tables["transactions"]["amount"]).all()


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    from demo import generate_demo_truth

    return generate_demo_truth(2000, seed=7, end=END)


def test_truth_names_every_customer_and_is_the_same_for_the_same_seed(world, truth) -> None:
    from demo import generate_demo_truth

    assert truth["customer_id"].tolist() == world["customers"]["customer_id"].tolist()
    assert set(truth["churn_driver"]) == {"none", "payment", "service", "demand"}
    pd.testing.assert_frame_equal(truth, generate_demo_truth(2000, seed=7, end=END))
    assert not truth.equals(generate_demo_truth(2000, seed=8, end=END))
    # Every customer with a driver leaves within the history; some leave with none (no order in their last months).
    driven = truth["churn_driver"] != "none"
    assert truth.loc[driven, "departure_date"].notna().all()
    assert (truth["departure_date"].dropna() <= END_EXCLUSIVE).all()
    silent = truth.loc[~driven & truth["departure_date"].notna(), "customer_id"]
    assert 0 < len(silent) < driven.sum()
    # A silent leaver ordered nothing in the 75 days (the shortest lead window) before leaving,
    # except in the last 30 days of the history, where an invoice has not fallen due yet.
    orders = _orders(world["transactions"]).merge(truth[truth["customer_id"].isin(silent)], on="customer_id")
    in_lead = (orders["departure_date"] - orders["ts"]) < pd.Timedelta(days=74)
    assert not (in_lead & (orders["ts"] < END_EXCLUSIVE - pd.Timedelta(days=31))).any()


def test_truth_seen_before_a_date_names_only_drivers_the_data_before_it_shows(world) -> None:
    from demo import generate_demo_truth

    seen = date(2026, 7, 1)
    truth = generate_demo_truth(2000, seed=7, end=END, seen_before=seen)
    full = generate_demo_truth(2000, seed=7, end=END)
    pd.testing.assert_series_equal(truth["departure_date"], full["departure_date"])
    # Seeing less can only turn drivers into none.
    changed = truth["churn_driver"] != full["churn_driver"]
    assert changed.any() and (truth.loc[changed, "churn_driver"] == "none").all()
    # Every driver named has an order at least 30 days before the date, inside 210 days (the longest lead) of leaving.
    orders = _orders(world["transactions"]).merge(truth[truth["churn_driver"] != "none"], on="customer_id")
    early = orders["ts"] < pd.Timestamp(seen) - pd.Timedelta(days=30)
    close = (orders["departure_date"] - orders["ts"]) <= pd.Timedelta(days=211)
    assert (early & close).groupby(orders["customer_id"]).any().all()


def test_truth_is_no_input_column_and_is_written_where_validation_does_not_look(world, truth, tmp_path) -> None:
    from demo import write_demo_truth
    from features.validation import load_and_validate

    assert "churn_driver" not in world["customers"].columns
    write_demo_data(world, tmp_path, "parquet")
    path = write_demo_truth(truth, tmp_path)
    assert path.name == "_truth.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(path), truth)
    data = load_and_validate(tmp_path, clock=pd.Timestamp(END_EXCLUSIVE).to_pydatetime())
    assert set(data.tables) == {"customers", "transactions", "invoices", "interactions"}
    assert "churn_driver" not in data.tables["customers"].columns


def _lead_window(frame: pd.DataFrame, ts: str, truth: pd.DataFrame, days: int = 120) -> pd.DataFrame:
    """Rows of churners in the `days` before their departure, with their driver."""
    leavers = truth[truth["churn_driver"] != "none"]
    rows = frame.merge(leavers, on="customer_id")
    before = (rows["departure_date"] - rows[ts]).dt.days
    return rows[(before >= 0) & (before < days)]


def test_each_driver_acts_through_its_own_data(world, truth) -> None:
    # No order after the departure day.
    orders = _orders(world["transactions"]).merge(truth, on="customer_id")
    assert not (orders["ts"] >= orders["departure_date"]).any()
    # Payment trouble: invoices due in the last 120 days before leaving paid late or not at all, far more than others.
    invoices = _lead_window(world["invoices"], "due_at", truth)
    late = invoices["paid_at"].isna() | (invoices["paid_at"] - invoices["due_at"] > pd.Timedelta(days=15))
    late_share = late.groupby(invoices["churn_driver"]).mean()
    assert late_share["payment"] > 0.5 and late_share["payment"] > 2 * max(late_share["service"], late_share["demand"])
    # Complaints: complaints per leaver in the lead window, far more for service churners.
    complaints = _lead_window(world["interactions"], "ts", truth)
    complaints = complaints[complaints["kind"] == "complaint"]
    per_leaver = complaints.groupby("churn_driver").size() / truth["churn_driver"].value_counts()
    assert per_leaver["service"] > 2.0 and per_leaver["service"] > 4 * max(per_leaver["payment"], per_leaver["demand"])
    # Fading demand: orders in the 120 days before leaving against the 120 days before those, lowest for demand churners.
    orders = orders[orders["churn_driver"] != "none"]
    before = (orders["departure_date"] - orders["ts"]).dt.days
    recent = orders[before < 120].groupby("customer_id").size()
    earlier = orders[(before >= 120) & (before < 240)].groupby("customer_id").size()
    drivers = truth.set_index("customer_id").loc[earlier.index, "churn_driver"]
    # Pooled over the leavers of each driver: a mean of per-customer ratios is pulled up by the few with one
    # earlier order (one order then five reads 5x) and swung by a handful of them at this size.
    recent = recent.reindex(earlier.index, fill_value=0)
    kept = recent.groupby(drivers).sum() / earlier.groupby(drivers).sum()
    assert kept["demand"] < 0.9 and kept["demand"] < min(kept["payment"], kept["service"]) - 0.1


def test_truth_records_each_customers_habitual_lateness_and_the_invoices_follow_it(world, truth) -> None:
    from scipy.special import ndtr

    from demo.generate import habitual_late_probability

    # by hand: a habit of 25 days late +- 5 is more than 30 days late when the noise exceeds +1 sd
    assert habitual_late_probability(np.array([25.0]), np.array([5.0]), 30)[0] == pytest.approx(ndtr(-1.0))
    assert truth["p_pay_late_habit"].between(0, 1).all() and truth["pay_late_usual_days"].notna().all()
    invoices = world["invoices"].dropna(subset=["paid_at"])
    late = (invoices["paid_at"] - invoices["due_at"]) > pd.Timedelta(days=30)
    share = late.groupby(invoices["customer_id"]).mean().rename("late_share")
    joined = truth.set_index("customer_id").join(share, how="inner")
    habitual = joined.loc[joined["p_pay_late_habit"] > 0.5, "late_share"]
    punctual = joined.loc[joined["p_pay_late_habit"] < 0.01, "late_share"]
    assert len(habitual) >= 10 and habitual.mean() > 0.5
    # episodes and departures make punctual customers late now and then, never as a habit
    assert punctual.mean() < 0.05
