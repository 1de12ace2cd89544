"""Stage progress of a run: events from the pipeline's steps, drawn in a terminal, absent from piped output."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pipelines import progress
from pipelines.cli_progress import stage_display


def _events_of(fn, *args, **kwargs) -> list[tuple[str, str]]:
    seen: list[progress.StageEvent] = []
    with progress.watching(seen.append):
        try:
            fn(*args, **kwargs)
        except RuntimeError:
            pass
    return [(e.stage, e.state) for e in seen]


def test_a_staged_function_reports_start_and_end_and_a_failure_as_failed():
    @progress.staged(lambda kind: f"train {kind}")
    def train(kind: str) -> None:
        if kind == "value":
            raise RuntimeError("boom")

    assert _events_of(train, "churn") == [("train churn", "started"), ("train churn", "finished")]
    assert _events_of(train, "value") == [("train value", "started"), ("train value", "failed")]
    assert _events_of(train, "churn") and not progress._watchers  # nobody watches after the block


def _run_some_stages() -> None:
    with progress.stage("validate"):
        pass
    with progress.stage("score and explain"):
        progress.counted("score and explain", 50_000)
        progress.counted("score and explain", 150_000)


def test_in_a_terminal_each_stage_gets_a_line_with_its_count_and_elapsed_time():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with stage_display(console, "running"):
        _run_some_stages()
    text = out.getvalue()
    assert "running" in text and "validate" in text and "score and explain" in text
    assert "150,000 customers" in text and "done" in text and "0:00:0" in text


def test_a_failed_stage_is_marked_failed_not_done():
    out = io.StringIO()
    with (pytest.raises(RuntimeError), stage_display(Console(file=out, force_terminal=True, width=120), "running"),
          progress.stage("score and explain")):
        raise RuntimeError("disk full")
    last = [line for line in out.getvalue().splitlines() if "score and explain" in line][-1]
    assert "score and explain" in last and "failed" in last and "✗" in last and "done" not in last


def test_piped_output_gets_no_display_at_all():
    out = io.StringIO()
    with stage_display(Console(file=out, force_terminal=False, width=120), "running"):
        _run_some_stages()
    assert out.getvalue() == ""


def test_validation_of_a_run_is_reported_as_the_validate_stage(tmp_path, monkeypatch):
    from pipelines.config import load_config
    from pipelines.environment import prepare_environment
    from pipelines.tasks import load_data, utc_now

    data = tmp_path / "tables"
    data.mkdir()
    (data / "transactions.csv").write_text("customer_id,order_id,ts,amount\nC1,O1,2024-03-01,5\n", encoding="utf-8")
    paths = prepare_environment(tmp_path / "home")
    events = _events_of(load_data.fn, data, load_config(), paths, utc_now())
    assert events == [("validate", "started"), ("validate", "finished")]


@pytest.fixture(autouse=True)
def _no_watcher_left():
    yield
    assert not progress._watchers
