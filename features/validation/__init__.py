"""Read the input tables, check them against the contract, and quarantine bad rows.

Everything row-level runs as DuckDB SQL (no Python loop over rows): one pass per table
parses every column, finds the first rule each row breaks and hashes the row; duplicates
are then searched among the few rows whose hashes repeat. Millions of rows are checked in
seconds and every rejected row keeps its file, line, column, value and reason.

Row rules, in the order they are tried (a row gets the reason of the first that fires):

0. CSV records DuckDB is not given (``features.io.source_files``): ``undecodable_text`` (bytes
   that are not UTF-8), ``field_too_long`` (a field over ``max_field_bytes``);
1. missing identifiers: ``missing_customer_id``, ``missing_order_id``,
   ``missing_invoice_id``, ``missing_kind``; an identifier that reads as a missing value
   (``null``, ``none``, ``nan``, ``na``, ``n/a``, ``#n/a``, ``<na>``, in any case, after
   trimming: what SQL, Python, pandas, R and Excel write for "no value") is missing too;
   then ``invalid_characters``: an identifier (customer_id, order_id, invoice_id, and
   line_id and product_id where present) holding a control character, i.e. C0 (0x00-0x1f:
   NUL, tab, newline, carriage return...), DEL (0x7f) or C1 (0x80-0x9f). No real id has
   one, and each breaks something downstream (a NUL ends the text in C tools, a newline
   or tab splits a line of a report). The quarantine shows such a value escaped
   (``C\\x001``) so it stays printable; its ``raw`` JSON keeps the exact text. This check
   is one regular expression per identifier value, the dearest rule per row (about 65 ns
   each on one core). With it and the missing-value words, validating 50,000 demo
   customers (1.7M rows, Parquet) took 1.6-2.1 CPU s against 1.0-1.2 before, on a shared
   machine; the regular expression alone accounted for about 0.4 s of that;
2. timestamps: ``missing_timestamp`` (required column empty), ``bad_timestamp`` (not
   ISO 8601), ``implausible_date`` (before ``PlausibilityRules.min_date``, config
   ``data.min_date``: the 1900-01-01, 1970-01-01 or 0001-01-01 a system writes for "no
   date"; every timestamp column of every table); columns in contract order;
3. amounts: ``missing_amount``, ``non_numeric_amount``, ``non_finite_amount`` (NaN, inf);
   other numeric columns: ``non_numeric_value``, ``non_finite_value``;
4. table rules: ``negative_discount`` (transactions), ``negative_cost`` (interactions),
   ``due_before_issued`` and ``paid_before_issued`` (invoices, compared by calendar day),
   ``unknown_currency`` (transactions, invoices: a currency with no rate in the configured
   conversion, see below);
5. ``future_timestamp``: after the run's clock, or after ``data_end`` when given
   (transactions.ts, interactions.ts, invoices.issued_at and paid_at,
   customers.signup_date);
6. ``unknown_customer`` (invoices, interactions): the customer is not in the accepted
   customers table when there is one, else not among the accepted transactions' customers;
7. ``exact_duplicate``: same values in every column as an earlier line (the first is kept);
8. ``conflicting_duplicate``: rows with the same key and different values; all rows of
   such a group are quarantined. Keys: invoices invoice_id, customers customer_id,
   transactions order_id + line_id (only where the optional line_id column is given and
   filled in); interactions have none.

Currencies (``features.validation.plausibility``). Amounts of the transactions and invoices are added up,
so they must be in one currency: when their currency columns (case ignored, empty cells not
counted) name more than one, validation stops with one line naming each currency and its rows
(MixedCurrencyError), unless a conversion (``data.currency``) is given; then the money columns
(amount, margin, discount, paid_amount) of the accepted rows are converted into the base
currency, the currency column reads the base, an empty currency is taken as the base, and a
currency without a rate is quarantined as ``unknown_currency``.

Warnings, not quarantine (``TableReport.warnings``): an event table whose last timestamp lies
more than ``max_source_lag_days`` before the latest table's (a stale extract), and whale
orders, far above the rest (``PlausibilityRules.whale_order``): they can be real, so they
are kept and named for a person to check.

A transaction row is an order line. Without a line id nothing tells two lines of one order
apart, so the same product twice in an order, at the same or a different quantity, is two
ordinary lines: no conflict is looked for. Exact copies of such a line follow
``duplicate_lines``: ``keep`` accepts them and counts them in
``TableReport.exact_duplicates_kept`` (a real order log has identical lines by design, e.g.
an item scanned twice); ``drop_exact`` quarantines them as ``exact_duplicate``. A copy of a
line with a line id, and an exact copy in any other table, is always ``exact_duplicate``.

Duplicates are compared after normalisation (trimmed text, parsed numbers and UTC
timestamps), so the same data gives the same answer from CSV, Parquet or DuckDB.
Negative amounts are returns, not errors. Naive timestamps are UTC; timestamps with an
offset or zone are converted to UTC; accepted timestamps are naive UTC. Identifiers are
text: whitespace trimmed, leading zeros kept. Column names are matched ignoring case and
surrounding spaces. Empty cells in optional columns stay null (and so do the missing-value
words above in the optional identifiers line_id and product_id), except ``margin``
(amount x default margin rate) and invoice ``paid_amount`` (amount when paid_at is set).

CSV files need a header line; the delimiter (comma, semicolon, tab or pipe) is taken from
it, quotes are double quotes. A line with the wrong number of fields, an unreadable file, a
missing required column, two columns whose names differ only in case or spaces, an empty
transactions table, two files for one table and a file that is a symbolic link leading out
of the data folder are file-level errors (InputContractError), raised before anything is
written. An optional table with columns and no row is left out with a line in
``ValidatedData.warnings``.

In the quarantine, ``line`` is the physical line in a CSV file (the header is line 1);
for Parquet files and DuckDB tables there are no lines and ``line`` is the 1-based row
number (``ValidatedData.line_kind`` says which). Its ``value`` is the cell as found with
every control character written ``\\xHH`` (whatever the reason), so the file and the
one-line threshold error stay printable; ``raw``, the row as found in JSON, keeps the exact
text. Written as CSV, its text cells are made safe for spreadsheets (``features.safe_csv``).

Where the accepted rows live: CSV files and DuckDB tables are read as text and the
accepted rows stored as DuckDB tables. Parquet files are read in place with their native
types (timestamps and doubles skip parsing; types whose conversion could differ from their
text, such as REAL, DECIMAL or nanosecond timestamps, take the text route); when every
timestamp and number column is native, the accepted table is a view over the file that
leaves out the quarantined rows, so no copy of the data is held in memory and the result is
the same as the stored table would be. With ``work_dir`` the files are copied first, so the
view cannot see a later rewrite of the source.

The modules, in the order a table goes through them: ``features.io`` finds and reads the
sources and holds the work folder; `rules` (with `plausibility`) writes the row rules as SQL,
`normalise` parses the columns, `checks` runs the one pass, `duplicates` compares the rows
whose hashes repeat, `quarantine` collects the rejected rows, `report` holds the result and
`load` runs it all (`load_and_validate`).
"""

from features.contract import InputContractError
from features.validation.load import DUPLICATE_LINE_POLICIES, load_and_validate
from features.validation.quarantine import QUARANTINE_COLUMNS, printable
from features.validation.report import MixedCurrencyError, QuarantineThresholdError, TableReport, ValidatedData
from features.validation.rules import QUARANTINE_REASONS

__all__ = [
    "DUPLICATE_LINE_POLICIES",
    "QUARANTINE_COLUMNS",
    "QUARANTINE_REASONS",
    "InputContractError",
    "MixedCurrencyError",
    "QuarantineThresholdError",
    "TableReport",
    "ValidatedData",
    "load_and_validate",
    "printable",
]
