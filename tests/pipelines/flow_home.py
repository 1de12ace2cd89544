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


# A fixed design trains once per model instead of fitting the design search's candidates: for tests
# of what a run does with its models (drift, model files, backtests), not of which design wins.
FIXED_DESIGN = (r"design: search", "design: fixed")


def config_file(folder: Path, name: str, *substitutions: tuple[str, str]) -> str:
    """The default config with each (pattern, replacement) applied exactly once, written as `folder/name.yaml`.

    The shipped segments file is copied beside it, where a config looks for it.
    """
    import re

    from pipelines.config import DEFAULT_CONFIG

    text = DEFAULT_CONFIG.read_text()
    for pattern, replacement in substitutions:
        text, replaced = re.subn(pattern, replacement, text)
        assert replaced == 1, f"configs/default.yaml should match {pattern!r} once"
    path = folder / f"{name}.yaml"
    path.write_text(text)
    (folder / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    return str(path)
