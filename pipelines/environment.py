"""The custscore home folder and the environment that keeps Prefect and MLflow local and quiet.

Called from entry points only (CLI, flows started by a deployment, tests): nothing here runs
at import time.
"""

from __future__ import annotations

import ctypes
import gc
import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import custscore_home

# Prefect's telemetry lookup and MLflow's telemetry are off; both must be set before the
# libraries read their settings, hence before the first import of prefect in a process.
_QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "GIT_PYTHON_REFRESH": "quiet",
    # LightGBM's OpenMP threads spin while waiting; with the other core busy that slows fits
    # many times over (a 2 s test fit took over 60 s). Must be set before lightgbm is imported.
    "OMP_WAIT_POLICY": "PASSIVE",
}


@dataclass(frozen=True)
class HomePaths:
    """Where a custscore home keeps each of its parts."""

    root: Path

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def prefect(self) -> Path:
        return self.root / "prefect"

    @property
    def demo_data(self) -> Path:
        return self.root / "demo-data"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"


def prepare_environment(home: Path | None = None) -> HomePaths:
    """Create the home folder and set the environment defaults for Prefect and MLflow."""
    paths = HomePaths(Path(home).resolve() if home else custscore_home())
    paths.root.mkdir(parents=True, exist_ok=True)
    for key, value in _QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(paths.prefect))
    return paths


def release_memory() -> None:
    """Give memory freed by the last phase back to the OS, so a run peaks at its largest phase.

    Freed pandas and numpy blocks stay in glibc's heap (and count in the process's RSS) until
    trimmed; without this the scoring of a retrain run sat on top of the training sets' memory.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass
