"""UCI Online Retail: read the two published files as one log, convert it to the input contract.

The first file ("Online Retail II", year 2009-2010) is taken up to 2010-11-30, the second
("Online Retail") from 2010-12-01: the two overlap on 2010-12-01 .. 2010-12-09 with the same
rows. Mapping: Invoice -> order_id, StockCode -> product_id, InvoiceDate -> ts (the shop's
local time, written as naive timestamps, which custscore reads as UTC), Quantity x Price ->
amount (GBP), Quantity -> quantity, Customer ID (text, no ".0") -> customer_id. Rows without a
customer id are not a customer's orders and are dropped (counted). Cancellations ("C"
invoices, negative quantities) stay as negative lines: custscore reads them as returns.
Non-product lines (postage, bank charges, manual adjustments...) are kept as they are and
counted. The customers table holds one country per customer: the one on most of the
customer's rows before the as-of date (ties: alphabetical), so it uses no later row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

FIRST_FILE = "online_retail_II_year_2009_2010.parquet"
SECOND_FILE = "online_retail.parquet"
# The second file starts here; rows of the first file from this day on are the same rows again.
SWITCH_DATE = pd.Timestamp("2010-12-01")

# Each file's names for the columns read, as the first file spells them.
COLUMN_NAMES = {
    "InvoiceNo": "Invoice",
    "UnitPrice": "Price",
    "CustomerID": "Customer ID",
}
RAW_COLUMNS = ("Invoice", "StockCode", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country")

# Stock codes of lines that are not products: postage, carriage, manual entries, charges,
# discounts, samples, adjustments, fees, vouchers and test lines.
NON_PRODUCT_CODES = frozenset({"POST", "DOT", "C2", "M", "m", "D", "S", "B", "BANK CHARGES", "AMAZONFEE",
                               "CRUK", "PADS"})
NON_PRODUCT_PREFIXES = ("ADJUST", "TEST", "gift_")

CONTRACT_TABLES = ("transactions", "customers", "invoices", "interactions")
TRANSACTION_COLUMNS = ("customer_id", "order_id", "product_id", "ts", "amount", "quantity")


@dataclass(frozen=True)
class ConversionSummary:
    """What the conversion saw, kept and dropped, and where it wrote the custscore input."""

    data_dir: Path
    rows_read: dict[str, int]
    overlap_rows_dropped: int
    rows_without_customer_dropped: int
    n_transactions: int
    n_customers: int
    n_history_transactions: int
    n_history_customers: int
    cancellation_lines: int
    negative_quantity_lines: int
    zero_amount_lines: int
    non_product_lines: dict[str, int]
    customers_with_several_countries: int
    first_date: pd.Timestamp
    last_date: pd.Timestamp
    countries: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """Plain values for results.json (paths left out: they belong to one machine)."""
        return {
            "rows_read": self.rows_read,
            "overlap_rows_dropped": self.overlap_rows_dropped,
            "rows_without_customer_dropped": self.rows_without_customer_dropped,
            "n_transactions": self.n_transactions, "n_customers": self.n_customers,
            "n_history_transactions": self.n_history_transactions,
            "n_history_customers": self.n_history_customers,
            "cancellation_lines": self.cancellation_lines,
            "negative_quantity_lines": self.negative_quantity_lines,
            "zero_amount_lines": self.zero_amount_lines,
            "non_product_lines": self.non_product_lines,
            "customers_with_several_countries": self.customers_with_several_countries,
            "first_date": str(self.first_date), "last_date": str(self.last_date),
            "top_countries": self.countries,
        }


def source_files(folder: Path) -> tuple[Path, Path]:
    """The two published files in folder; a one-line error naming what is missing."""
    folder = Path(folder)
    paths = (folder / FIRST_FILE, folder / SECOND_FILE)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"Online Retail data not found: {', '.join(missing)} missing; pass the folder holding "
            f"{FIRST_FILE} and {SECOND_FILE} with --data-dir"
        )
    return paths


def read_raw(path: Path) -> pd.DataFrame:
    """One published file with the first file's column names and InvoiceDate as a Timestamp."""
    frame = pd.read_parquet(path).rename(columns=COLUMN_NAMES)
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} missing (found {list(frame.columns)}); "
                         "is this a UCI Online Retail file?")
    frame = frame.loc[:, list(RAW_COLUMNS)].copy()
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"], errors="coerce")
    bad = frame["InvoiceDate"].isna()
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} rows with an unreadable InvoiceDate "
                         f"(first at row {int(np.flatnonzero(bad)[0]) + 1})")
    return frame


def combine(first: pd.DataFrame, second: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One continuous log: the first file before SWITCH_DATE, the second from it on.

    Returns the log and the number of rows left out (the first file's rows from SWITCH_DATE,
    which the second repeats, and any second-file row before it).
    """
    kept_first = first.loc[first["InvoiceDate"] < SWITCH_DATE]
    kept_second = second.loc[second["InvoiceDate"] >= SWITCH_DATE]
    dropped = len(first) - len(kept_first) + len(second) - len(kept_second)
    return pd.concat([kept_first, kept_second], ignore_index=True), dropped


def customer_id_text(values: pd.Series) -> pd.Series:
    """Customer ids as text without a trailing ".0" (the second file stores them as floats)."""
    numbers = pd.to_numeric(values, errors="coerce")
    whole = numbers.dropna()
    if not (whole == np.floor(whole)).all():
        odd = whole[whole != np.floor(whole)].iloc[0]
        raise ValueError(f"Customer ID {odd} is not a whole number; expected ids like 17850")
    return numbers.astype("Int64").astype("string")


def is_non_product(codes: pd.Series) -> pd.Series:
    """True for lines whose stock code is a charge, fee, adjustment or voucher, not a product."""
    text = codes.astype(str)
    return text.isin(NON_PRODUCT_CODES) | text.str.startswith(NON_PRODUCT_PREFIXES)


def to_transactions(log: pd.DataFrame) -> pd.DataFrame:
    """Contract transactions (and the country of each row) from the log's rows with a customer id."""
    # Quantity is whole and prices have at most 3 decimals: rounding removes float noise only.
    amount = (log["Quantity"].astype(float) * log["Price"].astype(float)).round(6)
    return pd.DataFrame({
        "customer_id": customer_id_text(log["Customer ID"]),
        "order_id": log["Invoice"].astype(str).str.strip(),
        "product_id": log["StockCode"].astype(str).str.strip(),
        "ts": log["InvoiceDate"].astype("datetime64[us]"),
        "amount": amount,
        "quantity": log["Quantity"].astype(float),
        "country": log["Country"].astype(str),
    })


def main_country(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per customer: the country on most of its rows (ties: alphabetical)."""
    counts = transactions.groupby(["customer_id", "country"]).size().rename("rows").reset_index()
    counts = counts.sort_values(["customer_id", "rows", "country"], ascending=[True, False, True])
    return counts.drop_duplicates("customer_id")[["customer_id", "country"]].reset_index(drop=True)


def convert_online_retail(source_dir: Path, out_dir: Path, as_of: pd.Timestamp) -> tuple[pd.DataFrame, ConversionSummary]:
    """Convert the two files; write only the rows before as_of into out_dir.

    out_dir gets transactions.parquet and customers.parquet (the custscore input: nothing dated
    on or after as_of). Returns every converted row, later ones included, for the ground truth.
    """
    first_path, second_path = source_files(source_dir)
    first, second = read_raw(first_path), read_raw(second_path)
    log, overlap = combine(first, second)
    has_customer = log["Customer ID"].notna()
    converted = to_transactions(log.loc[has_customer]).reset_index(drop=True)
    history = write_custscore_input(converted, out_dir, as_of)
    summary = ConversionSummary(
        data_dir=Path(out_dir),
        rows_read={first_path.name: len(first), second_path.name: len(second)},
        overlap_rows_dropped=overlap,
        rows_without_customer_dropped=int((~has_customer).sum()),
        n_transactions=len(converted),
        n_customers=int(converted["customer_id"].nunique()),
        n_history_transactions=len(history),
        n_history_customers=int(history["customer_id"].nunique()),
        cancellation_lines=int(converted["order_id"].str.startswith("C").sum()),
        negative_quantity_lines=int((converted["quantity"] < 0).sum()),
        zero_amount_lines=int((converted["amount"] == 0).sum()),
        non_product_lines={str(k): int(v) for k, v in
                           converted.loc[is_non_product(converted["product_id"]), "product_id"]
                           .value_counts().sort_index().items()},
        customers_with_several_countries=int((converted.groupby("customer_id")["country"].nunique() > 1).sum()),
        first_date=converted["ts"].min(),
        last_date=converted["ts"].max(),
        countries={str(k): int(v) for k, v in
                   main_country(history)["country"].value_counts().head(5).items()},
    )
    logger.info("converted Online Retail: %d rows kept (%d without customer id dropped), %d customers; "
                "%d rows before %s written to %s", summary.n_transactions,
                summary.rows_without_customer_dropped, summary.n_customers,
                summary.n_history_transactions, as_of.date(), out_dir)
    return converted.drop(columns="country"), summary


def write_custscore_input(converted: pd.DataFrame, out_dir: Path, as_of: pd.Timestamp) -> pd.DataFrame:
    """transactions.parquet and customers.parquet of the rows before as_of; returns those rows.

    Input tables of an earlier run are removed first: custscore reads every table file in the
    folder, and a stale one would be a second file for a table or a table this run does not have.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for table in CONTRACT_TABLES:
        for stale in out_dir.glob(f"{table}.*"):
            stale.unlink()
    history = converted.loc[converted["ts"] < pd.Timestamp(as_of)].reset_index(drop=True)
    history.loc[:, list(TRANSACTION_COLUMNS)].to_parquet(out_dir / "transactions.parquet", index=False)
    main_country(history).to_parquet(out_dir / "customers.parquet", index=False)
    return history
