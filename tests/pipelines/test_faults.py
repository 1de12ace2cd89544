"""Faults of the machine and the environment become one clear line: credentials, retries, full disks, locked databases."""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from features.validation import InputContractError, QuarantineThresholdError
from pipelines import faults, tasks
from pipelines.arguments import RunArgumentError
from pipelines.config import load_config
from pipelines.environment import HomePaths
from pipelines.faults import DatabaseFaultError, DiskFullError, redacted

SECRET = "s3cr3t-Pa55"
DSN = f"postgresql://analyst:{SECRET}@db.example.com:5432/sales"


# ------------------------------------------------------------------------------------------ credentials


@pytest.mark.parametrize(("text", "shown"), [
    (DSN, "postgresql://analyst:***@db.example.com:5432/sales"),
    (f"error: {DSN} does not exist", "error: postgresql://analyst:***@db.example.com:5432/sales does not exist"),
    (f"postgresql:/analyst:{SECRET}@db/sales", "postgresql:/analyst:***@db/sales"),  # pathlib's form of the URL
    (f"mysql://u:p@ss{SECRET}@h/db", "mysql://u:***@h/db"),  # an unescaped @ inside the password
    (f"https://{SECRET}@github.com/org/repo", "https://***@github.com/org/repo"),  # a token as the user part
    (f"Server=h;User Id=u;Password={SECRET};", "Server=h;User Id=u;Password=***;"),
    (f"https://h/api?token={SECRET}&page=2", "https://h/api?token=***&page=2"),
    ("sqlite:////home/me/a@b/mlflow.db", "sqlite:////home/me/a@b/mlflow.db"),  # a file path keeps its @
    ("/data/exports@2026/transactions.csv", "/data/exports@2026/transactions.csv"),
])
def test_redacted_hides_passwords_and_tokens_and_keeps_everything_else(text, shown):
    assert redacted(text) == shown


def test_a_url_as_data_source_is_refused_without_its_password_before_any_work():
    from pipelines.runs import RunRequest

    with pytest.raises(RunArgumentError) as refused:
        RunRequest(data=str(Path(DSN)))  # as the command line's Path option hands it over
    assert str(refused.value).startswith("data source postgresql://analyst:***@db.example.com:5432/sales is a URL")
    assert SECRET not in str(refused.value)


def test_log_lines_of_the_command_line_are_redacted():
    from pipelines.cli import RedactingFilter

    record = logging.LogRecord("pipelines", logging.WARNING, __file__, 1, "reading %s", (DSN,), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "reading postgresql://analyst:***@db.example.com:5432/sales"


def environment_defaults_set_by_a_flow() -> list[str]:
    from pipelines.environment import _QUIET_DEFAULTS

    return [*_QUIET_DEFAULTS, "PREFECT_HOME"]


def test_prefect_stores_a_flow_run_with_its_parameters_redacted(prefect_harness, tmp_path, monkeypatch):
    """A schedule or notebook calling the flow with a DSN: refused, and Prefect's record holds no password."""
    from prefect import get_client

    from pipelines.flows import retrain_and_score_flow

    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    for key in environment_defaults_set_by_a_flow():  # the flow's prepare_environment sets them in this process
        original = os.environ.get(key)
        monkeypatch.setenv(key, original or "")  # restored (or removed again) after the test
        if original is None:
            monkeypatch.delenv(key)
    with pytest.raises(RunArgumentError):
        retrain_and_score_flow(data=DSN, config=f"/etc/custscore.yaml?password={SECRET}")
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if "analyst" in json.dumps(r.parameters)]
    assert len(runs) == 1
    stored = runs[0]
    assert stored.parameters["data"] == "postgresql://analyst:***@db.example.com:5432/sales"
    assert stored.parameters["config"] == "/etc/custscore.yaml?password=***"
    assert SECRET not in json.dumps(stored.model_dump(mode="json"))  # parameters, name, state message
    assert stored.state.is_failed()


# ------------------------------------------------------------------------------------------ retries


@pytest.fixture()
def bad_data(tmp_path):
    """Transactions where 3 of 4 amounts are not numbers: validation refuses them, always."""
    folder = tmp_path / "bad"
    folder.mkdir()
    pd.DataFrame({"customer_id": ["C1", "C2", "C3", "C4"], "order_id": ["o1", "o2", "o3", "o4"],
                  "ts": ["2026-01-01"] * 4, "amount": ["x", "y", "z", "10"]}).to_csv(folder / "transactions.csv", index=False)
    return folder


def _counting(monkeypatch, fail_first_with: BaseException | None = None) -> list[int]:
    calls: list[int] = []
    real = tasks.load_and_validate

    def counted(*args, **kwargs):
        calls.append(1)
        if fail_first_with is not None and len(calls) == 1:
            raise fail_first_with
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks, "load_and_validate", counted)
    return calls


def test_an_input_error_inside_a_retried_task_runs_its_body_once_and_writes_one_quarantine(
        prefect_harness, bad_data, tmp_path, monkeypatch):
    from prefect import flow

    calls = _counting(monkeypatch)
    paths = HomePaths(tmp_path / "home")
    load = tasks.load_data.with_options(retry_delay_seconds=0)

    @flow
    def validate_only():
        return load(bad_data, load_config(None), paths, datetime(2026, 6, 1))

    with pytest.raises(QuarantineThresholdError) as refused:
        validate_only()
    assert len(calls) == 1
    written = list(paths.quarantine.iterdir())
    assert len(written) == 1 and f"Quarantined rows: {written[0]}" in str(refused.value)
    assert len(pd.read_parquet(written[0])) == 3


def test_a_missing_source_is_not_retried_but_a_transient_io_error_is(prefect_harness, bad_data, tmp_path, monkeypatch):
    from prefect import flow

    paths = HomePaths(tmp_path / "home")
    cfg = load_config(None).with_overrides(data={"max_quarantine_share": 0.9})
    load = tasks.load_data.with_options(retry_delay_seconds=0)

    @flow
    def validate_only(source):
        return load(source, cfg, paths, datetime(2026, 6, 1))

    calls = _counting(monkeypatch)
    with pytest.raises(InputContractError):
        validate_only(tmp_path / "absent")
    assert len(calls) == 1

    calls = _counting(monkeypatch, fail_first_with=OSError(errno.EIO, "Input/output error"))
    data = validate_only(bad_data)
    assert len(calls) == 2 and data.report["transactions"].accepted == 1


@pytest.mark.parametrize(("exc", "transient"), [
    (OSError(errno.EIO, "Input/output error"), True),
    (ConnectionResetError(errno.ECONNRESET, "reset"), True),
    (TimeoutError("timed out"), True),
    (RuntimeError("(sqlite3.OperationalError) database is locked"), True),
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (RuntimeError("IO Error: No space left on device"), False),  # DuckDB's words
    (FileNotFoundError(errno.ENOENT, "No such file"), False),
    (PermissionError(errno.EACCES, "Permission denied"), False),
    (ValueError("bad value"), False),
    (RuntimeError("(sqlite3.DatabaseError) file is not a database"), False),
    (RuntimeError("(sqlite3.OperationalError) database or disk is full"), False),
])
def test_only_transient_failures_are_worth_a_retry(exc, transient):
    assert faults.is_transient(exc) is transient


# ------------------------------------------------------------------------------------------ a full disk


def test_a_full_disk_while_publishing_names_the_store_and_its_free_space_and_publishes_nothing(tmp_path, monkeypatch):
    """ENOSPC raised by the real write call of the run's scores, midway through a publish."""
    import serving.store_files as store_files
    from pipelines.publishing import publish_scored
    from pipelines.sinks import NamedSink
    from serving.store import ScoreStore
    from tests.serving.test_store import metadata, parts_run, publish, write_parts

    store = ScoreStore(tmp_path / "store")
    publish(store, "r1")
    numbers, texts, explanations = write_parts(tmp_path / "work", "r2")

    def full(table, path):
        Path(path).write_bytes(b"PAR1")  # a partly written file, as a real full disk leaves one
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store_files, "write_table", full)
    with pytest.raises(DiskFullError) as refused:
        publish_scored([NamedSink("the store", store)], store.root, metadata("r2"), parts_run(numbers, texts, explanations))
    message = str(refused.value)
    assert message.startswith(f"disk full while writing the published run in the store {store.root}: "
                              "No space left on device (Errno 28), ")
    free = faults.free_bytes(store.root)
    assert f"{free / 1024 ** 3:.1f} GiB free there" in message or f"{free / 1024 ** 2:.1f} MiB free there" in message
    assert message.endswith("nothing was published: readers still see the previous run")
    assert store.latest_run().run_id == "r1" and list(store.list_runs()["run_id"]) == ["r1"]
    assert not any((store.root / "staging").iterdir())
    assert not faults.is_transient(refused.value)


def _tiny_disk_available() -> bool:
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || mount -t tmpfs -o size=64k tmpfs /tmp"],
                           capture_output=True, check=False) if _which("unshare") else None
    return probe is not None and probe.returncode == 0


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


@pytest.mark.skipif(not _tiny_disk_available(), reason="cannot mount a small tmpfs here (needs unshare and user namespaces)")
def test_the_validate_command_on_a_really_full_disk_prints_one_line_with_the_path_and_free_space(bad_data, tmp_path):
    """A real full disk: a 256 KiB tmpfs (in a private mount namespace) filled before the quarantine is written."""
    disk = tmp_path / "disk"
    disk.mkdir()
    pd.DataFrame({"customer_id": [f"C{i}" for i in range(40)], "order_id": [f"o{i}" for i in range(40)],
                  "ts": ["2026-01-01"] * 40, "amount": ["x"] + ["10"] * 39}).to_csv(bad_data / "transactions.csv", index=False)
    target = disk / "quarantine.parquet"
    script = textwrap.dedent(f"""
        mount -t tmpfs -o size=256k tmpfs {disk} || exit 99
        dd if=/dev/zero of={disk}/filler bs=4k 2>/dev/null
        exec {sys.executable} -m pipelines.cli validate --data {bad_data} --quarantine-out {target}
    """)
    env = _clean_env(tmp_path)
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: disk full while writing the quarantine file {target}: "
                               "No space left on device (Errno 28), 0 bytes free there; free some space")


def _clean_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["CUSTSCORE_HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


# ------------------------------------------------------------------------------------------ locked and corrupt databases


def _hold_write_lock(path: Path) -> subprocess.Popen:
    """Another process holding SQLite's exclusive lock on `path`, until killed."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        con = sqlite3.connect({str(path)!r}, isolation_level=None)
        con.execute("CREATE TABLE IF NOT EXISTS held (x)")
        con.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _tracked_home(tmp_path) -> HomePaths:
    from pipelines import tracking

    paths = HomePaths(tmp_path / "home")
    paths.root.mkdir(parents=True)
    tracking.configure_tracking(f"sqlite:///{paths.mlflow_db}", paths.mlflow_artifacts)
    return paths


def test_a_locked_mlflow_database_is_retried_a_bounded_time_then_named(tmp_path):
    from pipelines import tracking
    from pipelines.faults import mlflow_database_message, retry_while_locked

    paths = _tracked_home(tmp_path)
    uri = f"sqlite:///{paths.mlflow_db}"
    holder = _hold_write_lock(paths.mlflow_db)
    attempts = []
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseFaultError) as refused:
            retry_while_locked(lambda: attempts.append(1) or tracking.configure_tracking(uri, paths.mlflow_artifacts),
                               describe=lambda exc, waited: mlflow_database_message(exc, uri, waited),
                               attempts=2, pause_s=0.1)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert len(attempts) == 2 and elapsed < 60  # MLflow's open store waits 20 s per attempt
    assert str(refused.value).startswith(f"MLflow database {paths.mlflow_db} is locked by another process (still "
                                         "locked after ")
    assert "nothing was trained or published" in str(refused.value)
    tracking.configure_tracking(uri, paths.mlflow_artifacts)  # released: works again


def test_a_full_disk_under_the_mlflow_database_names_it_and_its_free_space(tmp_path):
    from pipelines.faults import mlflow_database_message

    database = tmp_path / "mlflow.db"
    message = mlflow_database_message(RuntimeError("(sqlite3.OperationalError) database or disk is full"),
                                      f"sqlite:///{database}")
    assert message.startswith(f"disk full while writing the MLflow database {database}: No space left on device "
                              "(Errno 28), ")
    assert message.endswith("nothing was published")


def test_a_lock_released_during_the_retries_lets_the_command_go_on(tmp_path):
    from pipelines import tracking
    from pipelines.faults import mlflow_database_message, retry_while_locked

    paths = _tracked_home(tmp_path)
    uri = f"sqlite:///{paths.mlflow_db}"
    holder = _hold_write_lock(paths.mlflow_db)
    attempts = []

    def configure():
        attempts.append(1)
        if len(attempts) == 2:
            holder.kill()
            holder.wait()
        tracking.configure_tracking(uri, paths.mlflow_artifacts)

    retry_while_locked(configure, describe=lambda exc, waited: mlflow_database_message(exc, uri, waited),
                       attempts=3, pause_s=0.1)
    assert len(attempts) == 2


def _cli(args: list[str], tmp_path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          env=_clean_env(tmp_path), timeout=timeout, check=False)


def test_a_corrupt_mlflow_database_is_one_line_naming_it_and_what_to_do(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlflow.db").write_bytes(bytes(range(256)) * 64)  # garbage, not SQLite
    done = _cli(["models", "list"], tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: MLflow database {home / 'mlflow.db'} is not a readable SQLite database (file is "
        f"not a database): restore it from a backup, or move it aside (`mv {home / 'mlflow.db'} "
        f"{home / 'mlflow.db'}.corrupt`) and start a new lineage with `custscore run --retrain` (a store with published "
        "runs is refused until then); nothing was trained or published"], done.stderr


def test_the_command_on_a_locked_mlflow_database_gives_up_in_bounded_time_with_one_line(tmp_path):
    paths = _tracked_home(tmp_path)
    holder = _hold_write_lock(paths.mlflow_db)
    try:
        started = time.monotonic()
        done = _cli(["models", "list"], tmp_path)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: MLflow database {paths.mlflow_db} is locked by another "
                                                   "process (still locked after "), done.stderr
    assert elapsed < 120


def test_a_locked_sqlite_database_is_named_after_a_bounded_wait_and_nothing_is_written(tmp_path):
    """The check run before Prefect's local API starts (the real command: test_faults_commands.py)."""
    from pipelines.faults import check_sqlite_writable

    database = tmp_path / "prefect.db"
    holder = _hold_write_lock(database)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseFaultError) as refused:
            check_sqlite_writable(database, "Prefect's database", 1.0, "nothing was run")
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert 0.9 < elapsed < 10
    assert str(refused.value) == (f"Prefect's database {database} is locked by another process (still locked after 1 s): "
                                  f"wait for it to finish (`fuser {database}` names it) and run again; nothing was run")
    check_sqlite_writable(database, "Prefect's database", 1.0, "nothing was run")  # released: no error
    with sqlite3.connect(database) as con:
        assert con.execute("SELECT count(*) FROM held").fetchone() == (0,)  # and nothing written


def test_an_unreadable_sqlite_database_is_named_at_once(tmp_path):
    from pipelines.faults import check_sqlite_writable

    database = tmp_path / "prefect.db"
    database.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseFaultError, match=f"^Prefect's database {database} is not a readable SQLite database "
                                                 r"\(file is not a database\): move it aside$"):
        check_sqlite_writable(database, "Prefect's database", 5.0, "move it aside")
