"""The run's work folder: a fresh folder per validation for its DuckDB file, spill files and copies.

A folder is named ``validated-<pid>-...`` after the process that made it, so the next run can
tell the folders of a process that is gone (killed, crashed) from those of one still running,
and remove only the first. The folder is removed when the validated data's connection is
released; cleaned copies of CSV files (`Scratch`) are removed as soon as validation ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import ibis

from features.io.sources import Source
from features.sql_text import quote_literal

WORK_PREFIX = "validated-"


class Scratch:
    """A temporary folder for cleaned copies of CSV files, made on first use and removed after validation."""

    def __init__(self, parent: Path | None) -> None:
        self.parent = parent
        self.path: Path | None = None

    def folder(self) -> Path:
        if self.path is None:
            if self.parent is not None:
                self.parent.mkdir(parents=True, exist_ok=True)
            # Named like a work folder, so one left by a killed process is removed by the next run.
            self.path = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-csv-", dir=self.parent))
        return self.path

    def remove(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_work(work_dir: Path) -> None:
    """Remove work folders left by runs whose process is gone (killed, crashed)."""
    for folder in work_dir.glob(f"{WORK_PREFIX}*"):
        pid_text = folder.name[len(WORK_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(folder, ignore_errors=True)


def make_work_folder(work_dir: Path) -> Path:
    """A fresh folder for this validation, named after the process so stale ones can be found."""
    work_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(work_dir)
    return Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=work_dir))


def close_and_remove(raw_con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Close the validated database and delete the work folder (its database, spill and snapshots)."""
    try:
        raw_con.close()
    except duckdb.Error:  # already closed
        pass
    shutil.rmtree(folder, ignore_errors=True)


def snapshot_files(sources: dict[str, Source], folder: Path) -> dict[str, Source]:
    """Copy Parquet sources into the work folder: views read the copy, so a rewrite cannot leak in."""
    # The accepted rows of a Parquet file may be a view over it; reading a copy
    # keeps the validated data fixed for the run even if the source is rewritten meanwhile.
    snapped = {}
    for table, src in sources.items():
        if src.kind == "parquet":
            copy = folder / "sources" / f"{table}.parquet"
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(src.file, copy)
            src = replace(src, file=str(copy), relation=f"read_parquet({quote_literal(str(copy))})")
        snapped[table] = src
    return snapped


def connect(database: str | Path | None, memory_limit: str | None, spill: Path | None) -> Any:
    """Ibis DuckDB backend in memory, or on disk for data larger than memory."""
    con = ibis.duckdb.connect() if database is None else ibis.duckdb.connect(database=str(database))
    con.con.execute("SET TimeZone = 'UTC'")
    if memory_limit is not None:
        con.con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
    if spill is not None:
        con.con.execute(f"SET temp_directory = {quote_literal(str(spill))}")
    return con
