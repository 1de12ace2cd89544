"""The real command after a fault: no process left behind, no password shown, nothing but the error line on stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

SECRET = "s3cr3t-Pa55"


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    # Prefect and MLflow settings of this test process (earlier tests may have set some) stay out:
    # the command sets its own, as it does for a user.
    env["CUSTSCORE_HOME"] = str(home)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def quarantined_data(tmp_path_factory) -> Path:
    """Demo data whose transactions have a fifth of their amounts unreadable: validation stops the run."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    folder = tmp_path_factory.mktemp("bad")
    result = CliRunner().invoke(app, ["demo-data", "--customers", "120", "--out", str(folder), "--seed", "3",
                                      "--format", "csv"])
    assert result.exit_code == 0, result.output
    transactions = pd.read_csv(folder / "transactions.csv", dtype=str)
    transactions.loc[: len(transactions) // 5, "amount"] = "abc"
    transactions.to_csv(folder / "transactions.csv", index=False)
    return folder


def test_a_failed_run_prints_one_line_and_no_leaked_duckdb_instances(quarantined_data, tmp_path):
    """Validation fails inside the flow's retried task: one attempt, one line naming the quarantine file."""
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--data", str(quarantined_data)],
                          capture_output=True, text=True, env=_env(home), timeout=600, check=False)
    assert done.returncode == 2
    assert "nanobind" not in done.stderr and "leaked" not in done.stderr
    quarantine = list((home / "quarantine").iterdir())
    assert len(quarantine) == 1
    lines = _lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: too many rows quarantined. transactions: ") and "non_numeric_amount" in lines[0]
    assert lines[0].endswith(f"Quarantined rows: {quarantine[0]}")
    assert _lines(done.stdout) == []


def test_a_dsn_as_data_source_is_refused_in_one_line_without_the_password(tmp_path):
    dsn = f"postgresql://analyst:{SECRET}@db.example.com:5432/sales"
    home = tmp_path / "home"
    for command in (["run", "--data", dsn], ["validate", "--data", dsn]):
        done = subprocess.run([sys.executable, "-m", "pipelines.cli", *command], capture_output=True, text=True,
                              env=_env(home), timeout=300, check=False)
        assert done.returncode == 2
        assert SECRET not in done.stdout + done.stderr
        assert _lines(done.stderr) == [
            "error: data source postgresql://analyst:***@db.example.com:5432/sales is a URL; custscore reads a local "
            "folder of CSV/Parquet tables or a DuckDB file: export the tables to one (e.g. with DuckDB's postgres "
            "extension) and pass its path"]
    assert not (home / "prefect").exists()  # refused before Prefect could record it


def test_the_summary_shows_a_tracking_uri_without_its_password(tmp_path, monkeypatch):
    """A user's own MLflow tracking URI (a database with credentials) in the summary's `MLflow UI` line."""
    from pipelines import cli
    from pipelines.environment import HomePaths

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"postgresql://mlflow:{SECRET}@db.example.com/mlflow")
    with cli.console.capture() as printed:
        cli._print_where(HomePaths(tmp_path))
    shown = printed.get()
    assert "mlflow ui --backend-store-uri 'postgresql://mlflow:***@db.example.com/mlflow'" in shown
    assert SECRET not in shown


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_leaves_no_prefect_server_behind(quarantined_data, tmp_path, how):
    home = tmp_path / "home"
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--data", str(quarantined_data)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(home))
    try:
        deadline = time.monotonic() + 120
        servers: list[int] = []
        while time.monotonic() < deadline and not servers:
            servers = [pid for pid in _children(run.pid) if "uvicorn" in _cmdline(pid)]
            time.sleep(0.05)
        assert servers, "the run never started Prefect's local API"
        os.kill(run.pid, how)
        run.wait(timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in servers):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in servers), f"server {servers} outlived the run killed by {how.name}"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_a_run_on_a_locked_prefect_database_stops_in_one_line_instead_of_hanging(quarantined_data, tmp_path):
    from tests.pipelines.test_faults import _hold_write_lock

    home = tmp_path / "home"
    database = home / "prefect" / "prefect.db"
    database.parent.mkdir(parents=True)
    holder = _hold_write_lock(database)
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--data", str(quarantined_data)],
                              capture_output=True, text=True, env=_env(home), timeout=600, check=False)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    assert _lines(done.stderr) == [
        f"error: Prefect's database {database} is locked by another process (still locked after 15 s): wait for it to "
        f"finish (`fuser {database}` names it) and run again; if no other process needs it, move it aside "
        f"(`mv {database} {database}.old`: it holds only Prefect's run history); nothing was run"], done.stderr
    assert elapsed < 90  # 15 s of waiting and the start of the command; it hung 164 s before
