"""The project's own rules, checked by the test command: ruff's lints and the import contracts.

Both tools come with the `test` extra (`pip install -e '.[test]'`); their settings live in
pyproject.toml (`[tool.ruff]`, `[tool.importlinter]`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tool_module: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(tool_module) is None:
        pytest.fail(f"{tool_module} is not installed in {sys.prefix}: install the test tools with "
                    "pip install -c constraints.txt -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    result = _run("ruff", ["-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."])
    assert result.returncode == 0, f"ruff check failed (fix, or `ruff check --fix`):\n{result.stdout}{result.stderr}"


def test_the_import_contracts_hold():
    command = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    result = _run("importlinter", ["-c", command, "--no-cache"])
    assert result.returncode == 0, f"an import contract is broken:\n{result.stdout}{result.stderr}"
