"""From the drawn arrays to the four input tables, and the tables to files.

Ids are fixed-width text ('C0000123') built from digit bytes, timestamps naive UTC; CSV files
get ISO 8601 text for timestamps, so validation reads them as it reads any user's export.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from demo.events import ChunkEvents
from demo.parameters import (
    CATEGORIES,
    CHANNELS,
    ID_BLOCK_ROWS,
    INDUSTRIES,
    INTERACTION_KINDS,
    REGIONS,
    SIZE_BANDS,
    TRUTH_FILE,
)
from demo.world import World

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS: tuple[str, ...] = ("parquet", "csv")


# "000".."999" as bytes: ids are written three digits at a time.
_DIGIT_TRIPLES = np.array([list(f"{i:03d}".encode()) for i in range(1000)], dtype=np.uint8)


def fixed_width_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.ChunkedArray:
    """Ids like 'C0000123': prefix + zero-padded numbers, built without Python strings."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    groups = -(-width // 3)
    padded = 3 * groups
    row_len = len(head) + width
    blocks = []
    for lo in range(0, max(len(numbers), 1), ID_BLOCK_ROWS):
        rest = np.array(numbers[lo : lo + ID_BLOCK_ROWS], dtype=np.int64)
        digits = np.empty((len(rest), padded), dtype=np.uint8)
        for group in range(groups - 1, -1, -1):  # over digit triples, not rows
            rest, triple = np.divmod(rest, 1000)
            digits[:, 3 * group : 3 * group + 3] = _DIGIT_TRIPLES[triple]
        chars = np.empty((len(digits), row_len), dtype=np.uint8)
        chars[:, : len(head)] = head
        chars[:, len(head) :] = digits[:, padded - width :]
        del digits
        offsets = np.arange(0, (len(chars) + 1) * row_len, row_len, dtype=np.int32)
        blocks.append(
            pa.Array.from_buffers(
                pa.string(), len(chars), [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
            )
        )
    return pa.chunked_array(blocks, type=pa.string())


def id_width(largest: int, minimum: int) -> int:
    """Digits needed for ids up to `largest`, at least `minimum`."""
    return max(minimum, len(str(max(largest, 1))))


def labels(vocabulary: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """Text labels of category codes."""
    return pa.array(vocabulary, type=pa.string()).take(pa.array(codes.astype(np.int32)))


def pandas_text(values: pa.Array | pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    """Arrow strings as a pandas text column (pandas' default `str` dtype)."""
    return pd.array(values, dtype="str")


def _timestamps(start_us: np.datetime64, seconds: np.ndarray) -> np.ndarray:
    """Naive UTC timestamps (microseconds) from seconds since the history start."""
    return start_us + (seconds.astype(np.int64) * 1_000_000).astype("timedelta64[us]")


def _merge_chunks(chunks: list[ChunkEvents]) -> dict[str, np.ndarray]:
    """Concatenate every field over the chunks, releasing each chunk's copy as it goes."""
    order_offsets = np.cumsum([0] + [len(c.order_s) for c in chunks[:-1]])
    for chunk, offset in zip(chunks, order_offsets, strict=True):
        chunk.line_order = chunk.line_order + offset
        chunk.invoice_order = chunk.invoice_order + offset
    merged = {}
    for field in fields(ChunkEvents):
        merged[field.name] = np.concatenate([getattr(c, field.name) for c in chunks])
        for chunk in chunks:
            setattr(chunk, field.name, None)
    return merged


def _customers_frame(w: World, start_us: np.datetime64, customer_ids: pa.Array) -> pd.DataFrame:
    """The customers table."""
    signup = start_us + np.floor(w.signup_day).astype("timedelta64[D]").astype("timedelta64[us]")
    return pd.DataFrame(
        {
            "customer_id": pandas_text(customer_ids),
            "signup_date": signup,
            "industry": pandas_text(labels(INDUSTRIES, w.industry)),
            "region": pandas_text(labels(REGIONS, w.region)),
            "size_band": pandas_text(labels(SIZE_BANDS, w.size)),
            "channel": pandas_text(labels(CHANNELS, w.channel)),
        }
    )


def _orders_by_time(order_s: np.ndarray, order_customer: np.ndarray) -> np.ndarray:
    """Order indices sorted by time (then customer): order number k is element k-1."""
    return np.argsort(order_s * (int(order_customer.max(initial=0)) + 1) + order_customer)


def _lines_in_order_sequence(line_order: np.ndarray, by_time: np.ndarray) -> np.ndarray:
    """Positions of the lines with orders taken in `by_time` sequence.

    Lines are stored grouped by order index, so each order is one contiguous block that
    moves as a whole: no sort needed.
    """
    counts = np.bincount(line_order, minlength=len(by_time))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    moved_counts = counts[by_time]
    new_starts = np.concatenate([[0], np.cumsum(moved_counts)[:-1]])
    return np.repeat(starts[by_time] - new_starts, moved_counts) + np.arange(len(line_order))


def _transactions_frame(
    m: dict[str, np.ndarray], by_time: np.ndarray, customer_ids: pa.Array,
    start_us: np.datetime64,
) -> pd.DataFrame:
    """The transactions table, one row per order line, in order-number sequence."""
    position = _lines_in_order_sequence(m["line_order"], by_time)
    line_order = m.pop("line_order")[position]
    number = np.empty(len(by_time), dtype=np.int64)
    number[by_time] = np.arange(1, len(by_time) + 1)
    line_customer = m["order_customer"][line_order]
    columns = {
        "customer_id": pandas_text(customer_ids.take(pa.array(line_customer))),
        "order_id": pandas_text(
            fixed_width_ids("O", number[line_order], id_width(len(by_time), 9))
        ),
        "ts": _timestamps(start_us, m["order_s"][line_order]),
    }
    del line_customer, line_order, number
    columns["amount"] = m.pop("line_amount")[position]
    columns["quantity"] = m.pop("line_quantity")[position]
    columns["product_id"] = pandas_text(fixed_width_ids("P", m.pop("line_product")[position] + 1, 5))
    columns["category"] = pandas_text(labels(CATEGORIES, m.pop("line_category")[position]))
    columns["margin"] = m.pop("line_margin")[position]
    columns["discount"] = m.pop("line_discount")[position]
    columns["channel"] = pandas_text(labels(CHANNELS, m.pop("line_channel")[position]))
    return pd.DataFrame(columns)


def _invoices_frame(
    m: dict[str, np.ndarray], by_time: np.ndarray, customer_ids: pa.Array,
    start_us: np.datetime64,
) -> pd.DataFrame:
    """The invoices table, one invoice per order, numbered like its order."""
    # invoice_order[i] is the order of invoice i; invoices exist only for sales orders.
    invoice_of_order = np.full(len(by_time), -1, dtype=np.int64)
    invoice_of_order[m["invoice_order"]] = np.arange(len(m["invoice_order"]))
    sequence = invoice_of_order[by_time]
    order_numbers = np.flatnonzero(sequence >= 0) + 1
    sequence = sequence[sequence >= 0]
    order = m["invoice_order"][sequence]
    paid_s = m.pop("invoice_paid_s")[sequence]
    paid_at = _timestamps(start_us, np.maximum(paid_s, 0))
    paid_at[paid_s < 0] = np.datetime64("NaT")
    return pd.DataFrame(
        {
            "customer_id": pandas_text(customer_ids.take(pa.array(m["order_customer"][order]))),
            "invoice_id": pandas_text(
                fixed_width_ids("INV", order_numbers, id_width(len(by_time), 9))
            ),
            "issued_at": _timestamps(start_us, m["order_s"][order]),
            "due_at": _timestamps(start_us, m.pop("invoice_due_s")[sequence]),
            "amount": m.pop("invoice_amount")[sequence],
            "paid_at": paid_at,
            "paid_amount": m.pop("invoice_paid_amount")[sequence],
        }
    )


def _interactions_frame(
    m: dict[str, np.ndarray], customer_ids: pa.Array, start_us: np.datetime64
) -> pd.DataFrame:
    """The interactions table, sorted by time."""
    seconds = m.pop("interaction_s")
    customer = m.pop("interaction_customer")
    order = np.argsort(seconds * (int(customer.max(initial=0)) + 1) + customer)
    return pd.DataFrame(
        {
            "customer_id": pandas_text(customer_ids.take(pa.array(customer[order]))),
            "ts": _timestamps(start_us, seconds[order]),
            "kind": pandas_text(labels(INTERACTION_KINDS, m.pop("interaction_kind")[order])),
            "cost": m.pop("interaction_cost")[order],
        }
    )


def assemble_tables(
    w: World, chunks: list[ChunkEvents], start: date, n: int
) -> dict[str, pd.DataFrame]:
    """Turn the chunks' arrays into the four input tables."""
    start_us = np.datetime64(start, "us")
    customer_ids = fixed_width_ids("C", w.number, id_width(n, 7)).combine_chunks()
    merged = _merge_chunks(chunks)
    by_time = _orders_by_time(merged["order_s"], merged["order_customer"])
    tables = {"customers": _customers_frame(w, start_us, customer_ids)}
    tables["transactions"] = _transactions_frame(merged, by_time, customer_ids, start_us)
    tables["invoices"] = _invoices_frame(merged, by_time, customer_ids, start_us)
    tables["interactions"] = _interactions_frame(merged, customer_ids, start_us)
    return tables


def _iso_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as ISO 8601 text ('2026-09-30T14:05:09'), nulls kept; fractions kept too."""
    try:
        column = pc.cast(column, pa.timestamp("s"))  # whole seconds: no '.000000' tail
    except pa.ArrowInvalid:
        pass  # sub-second values: keep the microseconds
    return pc.replace_substring(pc.cast(column, pa.string()), " ", "T", max_replacements=1)


def _timestamps_as_iso_text(table: pa.Table) -> pa.Table:
    """The table with every timestamp column as ISO 8601 text, for CSV files."""
    columns = [
        _iso_text(column) if pa.types.is_timestamp(column.type) else column
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def write_demo_truth(truth: pd.DataFrame, out_dir: Path) -> Path:
    """Write the demo truth to `out_dir/_truth.parquet` (a name validation does not read)."""
    path = Path(out_dir) / TRUTH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(truth, preserve_index=False), path)
    return path


def write_demo_data(
    tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "parquet"
) -> dict[str, Path]:
    """Write each table to `out_dir/<table>.<fmt>` (parquet or csv); return the paths."""
    if fmt not in SUPPORTED_FORMATS:
        raise ValueError(
            f"unsupported demo data format {fmt!r}; use one of {', '.join(SUPPORTED_FORMATS)}."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.{fmt}"
        arrow_table = pa.Table.from_pandas(frame, preserve_index=False)
        if fmt == "parquet":
            pq.write_table(arrow_table, path)
        else:
            pa_csv.write_csv(_timestamps_as_iso_text(arrow_table), path)
        paths[name] = path
        logger.info("wrote %s (%s rows) to %s", name, f"{len(frame):,}", path)
    return paths
