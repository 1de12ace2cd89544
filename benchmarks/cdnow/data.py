"""CDNOW data: fetch the files shipped in the lifetimes wheel, read them, convert to the input contract.

The project never imports lifetimes: the wheel is only a carrier of the two text files,
downloaded with pip and read as a zip archive.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

LIFETIMES_REQUIREMENT = "lifetimes==0.11.3"
MASTER_MEMBER = "lifetimes/datasets/CDNOW_master.txt"
SAMPLE_MEMBER = "lifetimes/datasets/CDNOW_sample.txt"
# sha256 of the files as shipped in lifetimes 0.11.3, so a changed download is noticed.
MASTER_SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"
SAMPLE_SHA256 = "6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a"
SHIPPED_SAMPLE = Path(__file__).resolve().parent / "data" / "CDNOW_sample.txt"

MASTER_CUSTOMERS = 23_570
MASTER_TRANSACTIONS = 69_659
SAMPLE_CUSTOMERS = 2_357
SAMPLE_TRANSACTIONS = 6_919


@dataclass(frozen=True)
class ConversionSummary:
    """What convert_cdnow wrote: where, and how many customers and rows."""

    transactions_path: Path
    n_customers: int
    n_transactions: int
    first_date: pd.Timestamp
    last_date: pd.Timestamp


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def download_lifetimes_wheel(cache_dir: Path) -> Path:
    """Download the lifetimes wheel (no dependencies) into cache_dir with pip; reuse it if present."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(cache_dir.glob("[Ll]ifetimes-*.whl"))
    if existing:
        return existing[-1]
    cmd = [sys.executable, "-m", "pip", "download", LIFETIMES_REQUIREMENT, "--no-deps",
           "--only-binary=:all:", "-d", str(cache_dir)]
    logger.info("downloading CDNOW data carrier: %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(cache_dir.glob("[Ll]ifetimes-*.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(
            f"could not download {LIFETIMES_REQUIREMENT} into {cache_dir} with pip "
            f"(exit {done.returncode}): {done.stderr.strip()[-800:]}. Download CDNOW_master.txt "
            "yourself and pass it with --cdnow-path."
        )
    return wheels[-1]


def extract_member(wheel: Path, member: str, out_dir: Path, expected_sha256: str | None) -> Path:
    """Copy one file out of a wheel (a zip) into out_dir and check its sha256."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / Path(member).name
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise FileNotFoundError(f"{wheel} has no member {member}; is it the lifetimes wheel?")
        target.write_bytes(archive.read(member))
    digest = file_sha256(target)
    if expected_sha256 and digest != expected_sha256:
        raise ValueError(
            f"{target} has sha256 {digest}, expected {expected_sha256} (lifetimes 0.11.3); "
            "the published file changed: check it and update the expected digest"
        )
    return target


def fetch_cdnow_master(cache_dir: Path) -> Path:
    """Path of CDNOW_master.txt in cache_dir, downloading the lifetimes wheel on first use."""
    cached = Path(cache_dir) / "CDNOW_master.txt"
    if cached.exists() and file_sha256(cached) == MASTER_SHA256:
        return cached
    wheel = download_lifetimes_wheel(cache_dir)
    return extract_member(wheel, MASTER_MEMBER, cache_dir, MASTER_SHA256)


def _check_raw(frame: pd.DataFrame, path: Path) -> None:
    """Reject a CDNOW file whose rows do not parse into id, date, count, dollars."""
    bad = frame[frame["date"].isna() | frame["dollars"].isna() | frame["customer_id"].isna()]
    if not bad.empty:
        line = int(bad.index[0]) + 1
        raise ValueError(
            f"{path}: {len(bad)} rows do not parse as 'customer_id YYYYMMDD cds dollars' "
            f"(first near data line {line}: {bad.iloc[0].to_dict()}); is this a CDNOW file?"
        )


def read_cdnow(path: Path) -> pd.DataFrame:
    """Read CDNOW_master.txt (header, 4 columns) or CDNOW_sample.txt (no header, 5 columns).

    Returns customer_id (text, leading zeros kept), date (Timestamp), cds (int), dollars (float).
    The sample's second column (its own 1..2357 numbering) is dropped: ids stay the master's.
    """
    path = Path(path)
    with path.open() as handle:
        first = handle.readline().split()
    has_header = bool(first) and not first[0].isdigit()
    raw = pd.read_csv(path, sep=r"\s+", header=None, skiprows=1 if has_header else 0,
                      dtype=str, engine="python")
    if raw.shape[1] == 5:
        raw = raw.drop(columns=[1])
    if raw.shape[1] != 4:
        raise ValueError(
            f"{path}: expected 4 columns (master) or 5 (sample), found {raw.shape[1]}; "
            "pass CDNOW_master.txt or CDNOW_sample.txt as published"
        )
    raw.columns = ["customer_id", "date", "cds", "dollars"]
    frame = pd.DataFrame({
        "customer_id": raw["customer_id"].str.strip(),
        "date": pd.to_datetime(raw["date"], format="%Y%m%d", errors="coerce"),
        "cds": pd.to_numeric(raw["cds"], errors="coerce"),
        "dollars": pd.to_numeric(raw["dollars"], errors="coerce"),
    })
    _check_raw(frame, path)
    return frame


def to_transactions(raw: pd.DataFrame) -> pd.DataFrame:
    """CDNOW rows as contract transactions: one order per file row (order_id synthesised)."""
    ordered = raw.reset_index(drop=True)
    # One row of the file is one purchase record; numbering rows within a customer makes
    # the order id stable however the file is sorted.
    seq = ordered.groupby("customer_id").cumcount() + 1
    return pd.DataFrame({
        "customer_id": ordered["customer_id"].astype(str),
        "order_id": ordered["customer_id"].astype(str) + "-" + seq.astype(str).str.zfill(3),
        "ts": ordered["date"].dt.strftime("%Y-%m-%d"),
        "amount": ordered["dollars"].astype(float),
        "quantity": ordered["cds"].astype(float),
    })


def convert_cdnow(src: Path, out_dir: Path) -> ConversionSummary:
    """Write out_dir/transactions.csv (the only table: no customers, invoices or interactions)."""
    raw = read_cdnow(src)
    transactions = to_transactions(raw)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "transactions.csv"
    transactions.to_csv(target, index=False)
    summary = ConversionSummary(
        transactions_path=target,
        n_customers=int(transactions["customer_id"].nunique()),
        n_transactions=len(transactions),
        first_date=raw["date"].min(),
        last_date=raw["date"].max(),
    )
    logger.info("converted %s: %d customers, %d transactions -> %s", src,
                summary.n_customers, summary.n_transactions, target)
    return summary


def load_transactions(path: Path) -> pd.DataFrame:
    """Read a contract transactions.csv back with customer_id as text and ts as Timestamp."""
    frame = pd.read_csv(path, dtype={"customer_id": str, "order_id": str})
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame
