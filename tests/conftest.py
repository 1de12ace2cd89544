"""Test-wide environment: Prefect and MLflow stay local, offline and quiet; one thread for LightGBM."""

import os
import tempfile

# Set before any test module imports prefect or mlflow (they read settings on import).
_PREFECT_HOME = tempfile.mkdtemp(prefix="custscore-test-prefect-")
for key, value in {
    "PREFECT_HOME": _PREFECT_HOME,
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "OMP_WAIT_POLICY": "PASSIVE",
    "GIT_PYTHON_REFRESH": "quiet",
}.items():
    os.environ.setdefault(key, value)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness for the session (it takes seconds to start), without heartbeats."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # Generous start-up time: on a busy 2-core machine the server took over 30 s to answer.
    with prefect_test_harness(server_startup_timeout=180), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL on 127.0.0.1 for this test process (each xdist worker starts its own, ~2 s).

    scripts/postgres.sh installs Debian's postgresql package first when the server is missing, so these
    tests run everywhere the project's CI runs; they are never skipped.
    """
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"
    started = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        raise RuntimeError(f"scripts/postgres.sh start failed: {started.stderr.strip()[-2000:]}")
    folder, url = started.stdout.strip().splitlines()[-2:]
    try:
        yield url
    finally:
        subprocess.run(["bash", str(script), "stop", folder], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def local_spark():
    """A local Spark (local[2]) for this test process, stopped at its end.

    scripts/spark.sh installs Debian's openjdk-17-jre-headless first when `java` is missing; pyspark
    comes with the `spark` extra the README's test command installs. Neither is ever skipped.
    """
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "spark.sh"
    ready = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=1200)
    if ready.returncode != 0:
        raise RuntimeError(f"scripts/spark.sh failed: {ready.stderr.strip()[-2000:]}")
    from features.engines.spark import spark_session

    session = spark_session("local[2]", "custscore-tests")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def pg_schema(postgres_url, request):
    """A schema of its own for one test, dropped afterwards (with the tables of its runs)."""
    import re
    import uuid

    import psycopg
    from psycopg import sql

    schema = f"t_{re.sub(r'[^a-z0-9]', '_', request.node.name.lower())[:40]}_{uuid.uuid4().hex[:6]}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
