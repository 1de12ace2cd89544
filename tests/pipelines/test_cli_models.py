"""The registry from the command line: every version listed, promote with the gate's checks, rollbacks that only go back."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from pipelines import tracking
from pipelines.cli import app
from tests.pipelines.test_tracking import _train_and_gate, _trust_the_stand_in, mlflow_home  # noqa: F401

runner = CliRunner()


@pytest.fixture()
def registry(mlflow_home, tmp_path, monkeypatch):  # noqa: F811
    """Four churn versions: v1 kept (below the baseline), v2 champion, v3 kept (below v2), v4 champion."""
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    for p in (0.55, 0.70, 0.65, 0.80):
        _train_and_gate(mlflow_home, p=p, challenger_auc=p, baseline_auc=0.60)
    return mlflow_home


def _champion(client) -> str | None:
    return tracking.current_champion_version("churn", client)


def _invoke(*args: str):
    return runner.invoke(app, ["models", *args])


def test_a_second_rollback_goes_further_back_and_the_last_one_is_refused(registry):
    _train_and_gate(registry, p=0.90, challenger_auc=0.90, baseline_auc=0.60)  # v5: champions v2, v4, v5
    assert _invoke("rollback", "churn").exit_code == 0 and _champion(registry) == "4"
    assert _invoke("rollback", "churn").exit_code == 0 and _champion(registry) == "2"  # not forward to v5
    refused = _invoke("rollback", "churn")
    assert refused.exit_code == 2 and "v2 is the first champion on record" in refused.output
    assert _champion(registry) == "2"


def test_promote_a_version_the_gate_promoted_once_and_roll_back_from_it(registry):
    assert _invoke("rollback", "churn").exit_code == 0 and _champion(registry) == "2"
    result = _invoke("promote", "churn", "4")
    assert result.exit_code == 0, result.output
    assert "champion is now version 4" in result.output and "v2 is previous-champion" in result.output
    assert _invoke("rollback", "churn").exit_code == 0 and _champion(registry) == "2"


def test_promote_refuses_a_kept_version_without_force_and_names_the_gates_reason(registry):
    result = _invoke("promote", "churn", "3")
    assert result.exit_code == 2
    assert "v3 did not pass the champion gate (challenger roc_auc 0.6500 does not beat the champion" in result.output
    assert "--force" in result.output and _champion(registry) == "4"
    forced = _invoke("promote", "churn", "v3", "--force")
    assert forced.exit_code == 0, forced.output
    assert _champion(registry) == "3"
    assert registry.get_model_version("custscore-churn", "3").tags["promoted_by_hand"] == "forced past the champion gate"


@pytest.mark.parametrize("args,expected", [
    (("promote", "churn", "9"), "custscore-churn has no version 9"),
    (("promote", "churn", "4"), "v4 is already the champion"),
    (("promote", "revenue", "1"), "KIND 'revenue' is not one of churn, value, payment"),
])
def test_promote_refusals_are_one_line(registry, args, expected):
    result = _invoke(*args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.output


def test_promote_refuses_a_version_whose_model_file_no_longer_reads(registry):
    registry.set_model_version_tag("custscore-churn", "2", tracking.MODEL_FILE_TAG, "0" * 64)
    result = _invoke("promote", "churn", "2")
    assert result.exit_code == 2 and "custscore-churn v2" in result.output
    assert _champion(registry) == "4"


def test_models_list_shows_every_version_with_metric_gate_and_aliases(registry):
    result = runner.invoke(app, ["models", "list"], terminal_width=250)
    assert result.exit_code == 0, result.output
    rows = {cells[1]: cells for line in result.output.splitlines()
            if (cells := [c.strip() for c in line.strip("│ ").split("│")])[0] == "churn"}
    assert list(rows) == ["v4", "v3", "v2", "v1"]
    assert rows["v4"][2] == "champion" and rows["v2"][2] == "previous-champion" and rows["v3"][2] == "-"
    assert [rows[v][9] for v in ("v4", "v3", "v2", "v1")] == ["promoted", "kept", "promoted", "kept"]
    joined = re.sub(r"[\s│]", "", result.output)  # the reason wraps within its column
    assert re.sub(r"\s", "", "kept challenger roc_auc 0.5500 does not beat the baseline 0.6000") in joined
    assert rows["v4"][4].startswith(datetime.now(UTC).strftime("%Y-%m-%d"))


def test_training_runs_of_one_kind_and_date_get_distinct_readable_names():
    first = tracking.run_name("churn", "2026-07-01", datetime(2026, 7, 2, 3, 4, 5, tzinfo=UTC))
    second = tracking.run_name("churn", "2026-07-01", datetime(2026, 7, 2, 3, 9, 0, tzinfo=UTC))
    assert first == "churn as of 2026-07-01, trained 2026-07-02 03:04:05 UTC" and second != first
