"""Reading input files safely: links that leave the data folder, undecodable bytes, huge fields.

A CSV file is scanned once, as bytes, before DuckDB reads it (`scan_csv`). In the usual case
(valid UTF-8, no line longer than the field limit) the scan only reads the file and DuckDB
then reads it unchanged. Otherwise the file is parsed record by record: a record holding
bytes that are not UTF-8 (``undecodable_text``) or a field longer than the limit
(``field_too_long``) is set aside for the quarantine, and the other records are copied byte
for byte into a cleaned file that DuckDB reads instead, with the physical line where each
kept record starts, so the quarantine still names the lines of the original file.

Text from a file that reaches a message or the quarantine goes through `shown`: control
characters and undecodable bytes escaped, and cut to a bounded length, so a message never
carries more than the start of the offending value.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

UNDECODABLE_TEXT = "undecodable_text"
FIELD_TOO_LONG = "field_too_long"

# Fields are identifiers, dates, numbers and short categories: the longest realistic one (an
# address, a note) is a few KiB. 1 MiB is far above that and under DuckDB's default line limit
# (2 MB), so every line that passes fits DuckDB's reader unchanged.
DEFAULT_MAX_FIELD_BYTES = 1 << 20
# How much of a value a message or the quarantine's `value` shows.
SHOWN_CHARACTERS = 80

_CHUNK = 1 << 22
_CONTROL_CODES = (*range(0x20), *range(0x7F, 0xA0))
_ESCAPED_CONTROLS = {code: f"\\x{code:02x}" for code in _CONTROL_CODES}
# Undecodable bytes are read as lone surrogates U+DC80-U+DCFF ("surrogateescape").
_ESCAPED_BYTES = {0xDC00 + byte: f"\\x{byte:02x}" for byte in range(0x80, 0x100)}
_ESCAPES = _ESCAPED_CONTROLS | _ESCAPED_BYTES


class CsvRecordError(ValueError):
    """A record that no row rule can judge (wrong number of fields): the file cannot be read."""


def shown(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """Text fit for a one-line message: escaped control characters and bytes, at most `limit` characters.

    A longer text ends in "... (N characters)" so the reader knows it was cut.
    """
    if len(text) <= limit:
        return text.translate(_ESCAPES)
    return f"{text[:limit].translate(_ESCAPES)}... ({len(text):,} characters)"


def link_leaving_folder(path: Path, folder: Path) -> bool:
    """True when `path` is a symbolic link whose final target lies outside `folder`.

    A link inside the folder to another file of the folder is allowed (a common way to
    switch between versions of a table); following one out of it could read any file the
    process may read (/etc/passwd, another user's data) and echo it back in an error.
    """
    if not path.is_symlink():
        return False
    return not path.resolve().is_relative_to(folder.resolve())


@dataclass(frozen=True)
class SetAside:
    """One record kept out of the read: where it starts, its reason, column and values as shown."""

    line: int
    reason: str
    column: str
    value: str
    raw: str  # the record's fields as a JSON object, each value as shown


@dataclass(frozen=True)
class CsvScan:
    """What DuckDB should read for one CSV file and what the scan set aside."""

    file: Path  # the original file, or the cleaned copy without the set-aside records
    set_aside: tuple[SetAside, ...] = ()
    # Physical line of each record in `file`, in the original's numbering (None: the original).
    line_starts: np.ndarray | None = field(default=None, compare=False)
    longest_record_bytes: int = 0  # of the kept records, when the file was scanned record by record


def _open_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_header_line(path: Path) -> str:
    """The first line of a CSV file as UTF-8 text, without byte order mark or line end.

    Raises UnicodeDecodeError when the header itself is not UTF-8 (column names cannot be
    known then); bytes further down are judged per record by `scan_csv`.
    """
    with _open_bytes(path) as handle:
        first = handle.readline()
    return first.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")


def _needs_record_scan(path: Path, max_field_bytes: int) -> bool:
    """True when some byte is not UTF-8 or some record may hold a field longer than the limit.

    A record ends at a newline preceded by an even number of double quotes (a quoted field
    opens and closes with one, and a quote inside it is doubled), so no record longer than
    the limit means no field longer than it. A stray quote in an unquoted field makes the
    rest of the file look like one long record: the exact scan then finds nothing to set aside.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    longest, current, quotes_odd = 0, 0, 0  # longest record, length of the open one, quote parity
    with _open_bytes(path) as handle:
        while chunk := handle.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return True
            data = np.frombuffer(chunk, dtype=np.uint8)
            newlines, quotes = np.flatnonzero(data == 10), np.flatnonzero(data == 34)
            quotes_before = np.searchsorted(quotes, newlines) + quotes_odd
            ends = newlines[quotes_before % 2 == 0]
            quotes_odd = (quotes_odd + len(quotes)) % 2
            if len(ends) == 0:
                current += len(chunk)
            else:
                longest = max(longest, current + int(ends[0]) + 1)
                if len(ends) > 1:
                    longest = max(longest, int(np.diff(ends).max()))
                current = len(chunk) - int(ends[-1]) - 1
            if max(longest, current) > max_field_bytes:
                return True
    try:
        decoder.decode(b"", final=True)  # a multi-byte character cut off by the end of the file
    except UnicodeDecodeError:
        return True
    return False


@contextlib.contextmanager
def unbounded_csv_fields() -> Iterator[None]:
    """Let Python's csv module read fields of any size (its default stops at 128 KiB)."""
    previous = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _records(text: io.TextIOBase, delimiter: str) -> Iterator[tuple[int, list[str], str]]:
    """(first physical line, fields, exact text) of each record after the header."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in text:
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, quotechar='"')
    header = next(reader, None)
    previous_end = reader.line_num
    yield 1, header or [], "".join(consumed)
    consumed.clear()
    for row in reader:
        start, previous_end = previous_end + 1, reader.line_num
        yield start, row, "".join(consumed)
        consumed.clear()


def _undecodable_column(fields: list[str]) -> int | None:
    for i, value in enumerate(fields):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return i
    return None


def _too_long_column(fields: list[str], record: str, max_field_bytes: int) -> int | None:
    if len(record) * 4 <= max_field_bytes:  # no field of it can reach the limit, even in 4-byte characters
        return None
    for i, value in enumerate(fields):
        if len(value.encode("utf-8", "surrogateescape")) > max_field_bytes:
            return i
    return None


def _set_aside(line: int, reason: str, fields: list[str], column: int, names: list[str]) -> SetAside:
    name = names[column] if column < len(names) else f"field {column + 1}"
    described = {names[i] if i < len(names) else f"field {i + 1}": shown(v) for i, v in enumerate(fields)}
    value = shown(fields[column])
    if reason == FIELD_TOO_LONG:
        size = len(fields[column].encode("utf-8", "surrogateescape"))
        value = f"{shown(fields[column][:SHOWN_CHARACTERS])}... ({size:,} bytes)"
    return SetAside(line, reason, name, value, json.dumps(described, ensure_ascii=False))


def scan_csv(
    path: Path, delimiter: str, names: list[str], max_field_bytes: int, scratch: Callable[[], Path]
) -> CsvScan:
    """Find the records DuckDB cannot or should not read; a cleaned copy in `scratch()` when there are some.

    Raises CsvRecordError for a readable record with the wrong number of fields in a file
    that had to be cleaned (DuckDB would report the cleaned file's line, not the original's).
    """
    if not _needs_record_scan(path, max_field_bytes):
        return CsvScan(path)
    n_columns = len(names)
    set_aside: list[SetAside] = []
    starts: list[int] = []
    longest = 0
    cleaned = scratch() / path.name.lower().removesuffix(".gz")
    with _open_bytes(path) as raw, unbounded_csv_fields(), \
            open(cleaned, "w", encoding="utf-8", errors="surrogateescape", newline="") as out:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        records = _records(text, delimiter)
        _, _, header_text = next(records)
        out.write(header_text)
        for line, fields, record in records:
            if not fields:  # a blank line: DuckDB skips it in a file of several columns
                out.write(record)
                if n_columns == 1:
                    starts.append(line)
                continue
            bad = _undecodable_column(fields)
            if bad is not None:
                set_aside.append(_set_aside(line, UNDECODABLE_TEXT, fields, bad, names))
                continue
            bad = _too_long_column(fields, record, max_field_bytes)
            if bad is not None:
                set_aside.append(_set_aside(line, FIELD_TOO_LONG, fields, bad, names))
                continue
            if len(fields) != n_columns:
                raise CsvRecordError(
                    f"line {line} has {len(fields)} fields where the header has {n_columns} "
                    f"(starts {shown(record.rstrip(chr(13) + chr(10)), 40)!r})"
                )
            out.write(record)
            starts.append(line)
            longest = max(longest, len(record.encode("utf-8")))
    if not set_aside:  # only long records of fields within the limit, or a stray quote: read the original
        cleaned.unlink()
        return CsvScan(path, longest_record_bytes=longest)
    return CsvScan(cleaned, tuple(set_aside), np.asarray(starts, dtype=np.int64), longest)
