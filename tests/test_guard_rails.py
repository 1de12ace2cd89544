"""The project's own rules, checked by the test command: ruff's lints, the import contracts, and
benchmarks that reach the code through its public entry points only (docs/ARCHITECTURE.md).

Both tools come with the `test` extra (`pip install -e '.[test]'`); their settings live in
pyproject.toml (`[tool.ruff]`, `[tool.importlinter]`).
"""

from __future__ import annotations

import ast
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


# docs/ARCHITECTURE.md, "Public entry points": of pipelines/, the command, the flows and the configuration.
PUBLIC_PIPELINES = {"pipelines.cli", "pipelines.flows", "pipelines.config"}
PROJECT_PACKAGES = {"features", "models", "serving", "pipelines"}


def _non_public_imports(path: Path) -> list[str]:
    """`file:line what` for each import of a pipelines internal or of a private name of the project."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in PROJECT_PACKAGES:
                continue
            modules = [f"{node.module}.{a.name}" for a in node.names] if node.module == "pipelines" else [node.module]
            names = [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        else:
            continue
        internal = [m for m in modules if m.split(".")[0] == "pipelines" and ".".join(m.split(".")[:2]) not in PUBLIC_PIPELINES]
        found += [f"{path.relative_to(ROOT)}:{node.lineno} {what}" for what in internal + names]
    return found


def test_benchmarks_use_public_entry_points_only():
    found = [hit for path in sorted((ROOT / "benchmarks").rglob("*.py")) for hit in _non_public_imports(path)]
    assert not found, ("benchmarks import internals; use the CLI, the flows, the config or public names of "
                       "features/models/serving (docs/ARCHITECTURE.md):\n" + "\n".join(found))
