"""The commands the CLI tells a user to run work from a shell whose PATH lacks the virtual environment."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from pipelines import cli_hints


def _program(command: str) -> list[str]:
    """The words that start the command, environment assignments left out."""
    words = shlex.split(command)
    while "=" in words[0]:
        words.pop(0)
    return words


def test_hints_name_the_environments_own_executables_by_absolute_path():
    lines = cli_hints.where_lines("sqlite:////tmp/a b/mlflow.db", Path("/tmp/home/prefect")).splitlines()
    for line in lines:
        command = line.split("[/]", 1)[1].split("  (then")[0].strip()
        program = _program(command)[0]
        assert os.path.isabs(program) and os.access(program, os.X_OK), line
        assert Path(program).parent == Path(sys.executable).parent
    assert "--backend-store-uri 'sqlite:////tmp/a b/mlflow.db'" in lines[0]  # quoted for the shell


def test_without_an_executable_beside_python_the_hint_runs_the_module(monkeypatch, tmp_path):
    python = tmp_path / "bin" / "python3"
    monkeypatch.setattr(sys, "executable", str(python))
    assert _program(cli_hints.mlflow_ui("sqlite:///m.db"))[:3] == [str(python), "-m", "mlflow"]
    assert _program(cli_hints.prefect_server(Path("/h/prefect")))[:5] == [str(python), "-m", "prefect", "server",
                                                                          "start"]
    assert cli_hints.tool("custscore") == f"{python} -m pipelines.cli"
