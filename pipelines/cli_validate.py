"""What `custscore validate` reads from its flags and the config, without Prefect, MLflow or LightGBM.

Validation needs the config's data section and the validation layer only; importing the flows'
modules (tasks, tracking, training) would cost seconds before the first row is read.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pipelines.arguments import RunArgumentError, check_output_suffix
from pipelines.config import CustscoreConfig

QUARANTINE_SUFFIXES = (".parquet", ".csv", ".csv.gz")


def check_quarantine_out(path: Path | None) -> None:
    """The quarantine file's type must be one validation can write, known before any row is read."""
    check_output_suffix(path, QUARANTINE_SUFFIXES, "--quarantine-out")


def validation_source(data: Path | None, cfg: CustscoreConfig, config: Path | None) -> Path:
    """--data, else the config's data.source; one of them must name the tables."""
    if data is not None:
        if not Path(data).exists():
            raise RunArgumentError(f"--data {data}: no such file or folder; give the folder of the tables or a DuckDB file")
        return data
    if cfg.data.source is None:
        where = f"data.source of {config}" if config else "data.source in a config (--config FILE)"
        raise RunArgumentError(f"validate needs the tables: give --data DIR or set {where}")
    if not Path(cfg.data.source).exists():
        raise RunArgumentError(f"data.source {cfg.data.source} of {config or 'the config'}: no such file or folder; "
                               "fix it or give --data DIR")
    return Path(cfg.data.source)


def validation_options(cfg: CustscoreConfig, data_end: date | None, max_quarantine_share: float | None,
                       clock: datetime) -> dict[str, Any]:
    """Keyword arguments of `load_and_validate` from the config, the flags overriding it where given."""
    end_day = data_end or cfg.data.data_end
    return {
        "clock": clock,
        "data_end": datetime.combine(end_day, datetime.min.time()) if end_day else None,
        "max_quarantine_share": cfg.data.max_quarantine_share if max_quarantine_share is None else max_quarantine_share,
        "default_margin_rate": cfg.data.default_margin_rate,
        "memory_limit": cfg.data.duckdb_memory_limit,
        "duplicate_lines": cfg.data.duplicate_lines,
        "plausibility": cfg.data.plausibility(),
    }


def utc_now() -> datetime:
    """The clock rows are judged by (naive UTC, as every timestamp inside custscore)."""
    return datetime.now(UTC).replace(tzinfo=None)
