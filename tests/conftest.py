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
