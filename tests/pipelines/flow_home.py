"""The home a test module's real flow runs share: CUSTSCORE_HOME under the module's world folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


def module_home(world: Path) -> Iterator[Path]:
    """Point CUSTSCORE_HOME at `world/home` for the module (and leave MLflow's URI to the home), then undo."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CUSTSCORE_HOME", str(world / "home"))
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield world / "home"
    patch.undo()
