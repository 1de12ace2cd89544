"""The input contract: which tables custscore reads, their columns and logical types."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class InputContractError(ValueError):
    """A file-level problem: the input cannot be read as the contract describes."""


class LogicalType(StrEnum):
    """Logical column type after validation (how the accepted table stores it)."""

    STRING = "string"  # VARCHAR, whitespace trimmed, empty -> null
    TIMESTAMP = "timestamp"  # naive timestamp in UTC
    FLOAT = "float64"  # DOUBLE, finite


@dataclass(frozen=True)
class ColumnSpec:
    """One column of an input table."""

    name: str
    type: LogicalType
    required: bool
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One input table: its columns, whether it must exist, and the key of one logical row."""

    name: str
    required: bool
    columns: tuple[ColumnSpec, ...]
    # Columns that identify one logical row; rows sharing them but differing elsewhere
    # are conflicting duplicates. Empty, or a key column absent from the source or empty
    # on a row: nothing identifies the row, only exact duplicates are detected.
    key: tuple[str, ...] = ()
    # Customers may carry any further attribute columns; other tables ignore extras.
    allows_extra_columns: bool = False

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Names of the columns the table must have."""
        return tuple(c.name for c in self.columns if c.required)

    @property
    def optional_columns(self) -> tuple[str, ...]:
        """Names of the columns the table may have."""
        return tuple(c.name for c in self.columns if not c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of all contract columns, required first."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The spec of the column called `name` (KeyError if not in the contract)."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(f"table {self.name!r} has no contract column {name!r}")


def _req(name: str, type_: LogicalType, description: str = "") -> ColumnSpec:
    return ColumnSpec(name, type_, True, description)


def _opt(name: str, type_: LogicalType, description: str = "") -> ColumnSpec:
    return ColumnSpec(name, type_, False, description)


S, T, F = LogicalType.STRING, LogicalType.TIMESTAMP, LogicalType.FLOAT

TRANSACTIONS = TableSpec(
    name="transactions",
    required=True,
    columns=(
        _req("customer_id", S, "customer identifier, kept as text (leading zeros kept)"),
        _req("order_id", S, "order identifier; several rows may share it (order lines)"),
        _req("ts", T, "time of the order line, ISO 8601; naive means UTC"),
        _req("amount", F, "revenue of the row in one currency; negative = return"),
        _opt("quantity", F),
        _opt("product_id", S),
        _opt("category", S),
        _opt("margin", F, "gross profit of the row; absent -> amount x default margin rate"),
        _opt("discount", F, "money given away on the row, >= 0"),
        _opt("channel", S),
        _opt("currency", S, "currency code of amount, margin and discount; more than one needs data.currency rates"),
        _opt("line_id", S, "identifier of the line within its order; makes order_id + line_id the row's key"),
    ),
    # A row is an order line: without a line id, two lines of one order with the same
    # product are ordinary (the same item ordered twice), so only order_id + line_id is a key.
    key=("order_id", "line_id"),
)

CUSTOMERS = TableSpec(
    name="customers",
    required=False,
    columns=(
        _req("customer_id", S),
        _opt("signup_date", T),
        _opt("industry", S),
        _opt("region", S),
        _opt("size_band", S),
        _opt("channel", S),
    ),
    key=("customer_id",),
    allows_extra_columns=True,
)

INVOICES = TableSpec(
    name="invoices",
    required=False,
    columns=(
        _req("customer_id", S),
        _req("invoice_id", S),
        _req("issued_at", T),
        _req("due_at", T),
        _req("amount", F),
        _opt("paid_at", T, "null = unpaid"),
        _opt("paid_amount", F, "null with paid_at set -> amount"),
        _opt("currency", S, "currency code of amount and paid_amount; more than one needs data.currency rates"),
    ),
    key=("invoice_id",),
)

INTERACTIONS = TableSpec(
    name="interactions",
    required=False,
    columns=(
        _req("customer_id", S),
        _req("ts", T),
        _req("kind", S, "ticket, complaint, visit, call... (stored lower case)"),
        _opt("cost", F, "cost of serving this interaction, >= 0"),
    ),
)

# Order matters: customers first (they decide which customers are known), then the
# transactions, then the tables that are checked against known customers.
TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (CUSTOMERS, TRANSACTIONS, INVOICES, INTERACTIONS)
}

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet",)
FILE_SUFFIXES: tuple[str, ...] = CSV_SUFFIXES + PARQUET_SUFFIXES
DATABASE_SUFFIXES: tuple[str, ...] = (".duckdb", ".db")
