"""Unattended runs leave logs, a summary artifact, a readable name and, when configured, an alert in Prefect."""

from __future__ import annotations

import json
import re
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from pipelines.config import AlertsConfig, CustscoreConfig, load_config
from pipelines.run_outcome import RunOutcome, RunWarning, warnings_of_result

# ------------------------------------------------------------------------------------------ pure parts


def test_the_warnings_a_result_holds_get_their_kinds():
    result = {
        "report": {"transactions": {"read": 100, "accepted": 97, "quarantined": 3, "reasons": {"bad_amount": 3},
                                    "warnings": ["ends 90 days before invoices"]}},
        "warnings": ["interactions has only a header: left out"],
        "training": {"churn": {"promoted": False, "version": "2", "reason": "not better than v1"},
                     "value": {"promoted": True, "version": "2", "reason": "better"}},
    }
    assert warnings_of_result(result) == [
        RunWarning("data", "transactions: ends 90 days before invoices"),
        RunWarning("quarantine", "transactions: 3 of 100 rows quarantined (bad_amount 3)"),
        RunWarning("data", "interactions has only a header: left out"),
        RunWarning("model", "churn model v2 not promoted: not better than v1"),
    ]


def test_drift_and_backtest_warnings_of_a_published_run_keep_their_kinds():
    drift, backtest = "drift: p_churn PSI 0.31 (severe)", "backtest of run r1: churn ROC-AUC 0.70, 0.09 below validation"
    result = {"warnings": ["interactions has only a header: left out", drift, backtest],
              "published": {"drift": {"warnings": [drift]}, "warnings": [backtest]}}
    assert warnings_of_result(result) == [
        RunWarning("data", "interactions has only a header: left out"),
        RunWarning("drift", drift),
        RunWarning("backtest", backtest),
    ]


def test_only_warnings_of_the_configured_kinds_make_a_run_degraded():
    outcome = RunOutcome("score")
    outcome.add("quarantine", "3 rows quarantined")
    assert outcome.state(AlertsConfig().degraded_by) == "completed"  # a few rejected rows are routine
    outcome.add("drift", "PSI of recency 0.4")
    assert outcome.state(AlertsConfig().degraded_by) == "degraded"
    outcome.error = "boom"
    assert outcome.state(AlertsConfig().degraded_by) == "failed"
    with pytest.raises(ValueError, match="not one of"):
        outcome.add("mood", "gloomy")


def test_any_step_adds_to_the_one_warning_list_of_the_run_in_progress(caplog):
    from pipelines.run_outcome import add_warning, collecting, set_report

    outcome = RunOutcome("score")
    with collecting(outcome):
        add_warning("drift", "recency PSI 0.31 above 0.25")
        add_warning("drift", "recency PSI 0.31 above 0.25")  # one fact found twice is one warning
        set_report("/runs/r1/report.html")
    add_warning("backtest", "after the run: logged only")
    assert outcome.warnings == [RunWarning("drift", "recency PSI 0.31 above 0.25")]
    assert outcome.report == "/runs/r1/report.html"
    assert "backtest: after the run: logged only" in caplog.text


def test_the_alerts_section_refuses_yaml_on_and_unknown_kinds(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("alerts:\n  block: custom-webhook/x\n  on: [failed]\n")
    with pytest.raises(ValueError, match="notify_on"):
        load_config(path)
    with pytest.raises(ValueError):
        AlertsConfig(degraded_by=("mood",))
    with pytest.raises(ValueError):
        AlertsConfig(block="no slash")


def test_the_summary_markdown_escapes_table_characters_and_links_the_report():
    from pipelines.run_summary import summary_markdown

    outcome = RunOutcome("score", name="score 2026-09-30 demo", as_of="2026-09-30", source="demo",
                         report="/home/u/run report.html")
    outcome.add("data", "orders | returns differ\nby 5%")
    markdown = summary_markdown(outcome, "degraded", {"report": {"transactions": {
        "read": 10, "accepted": 9, "quarantined": 1, "reasons": {"bad_amount": 1}}}})
    assert "| data | orders \\| returns differ by 5% |" in markdown  # one row, the pipe escaped
    assert "| transactions | 10 | 9 | 1 | bad\\_amount 1 |" in markdown
    assert "(file:///home/u/run%20report.html)" in markdown
    assert "| outcome | degraded |" in markdown


# ------------------------------------------------------------------------------------------ a real receiver


class Receiver:
    """A local webhook endpoint on a free port, in a thread: what a Slack or Teams webhook would receive."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server hook's name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def webhook_block(prefect_harness, receiver):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(name="custscore", url=receiver.url,
                                   json_data={"subject": "{{subject}}", "body": "{{body}}"}).save(
        "custscore-alerts-test", overwrite=True)
    return "custom-webhook/custscore-alerts-test"


def config_with_alerts(folder, block: str | None, extra: str = "") -> str:
    """A config file: the defaults, the alert block (or none) and `extra` sections."""
    path = folder / ("alerts.yaml" if block else "no-alerts.yaml")
    path.write_text(f"alerts:\n  block: {json.dumps(block)}\n{extra}")
    return str(path)


@pytest.fixture()
def bad_data(tmp_path):
    """Transactions where 3 of 4 amounts are not numbers: validation refuses the run."""
    folder = tmp_path / "bad-extract"
    folder.mkdir()
    pd.DataFrame({"customer_id": ["C1", "C2", "C3", "C4"], "order_id": ["o1", "o2", "o3", "o4"],
                  "ts": ["2026-01-01"] * 4, "amount": ["x", "y", "z", "10"]}).to_csv(folder / "transactions.csv", index=False)
    return folder


def _flow_run_named(name: str):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.name == name]
    assert len(runs) == 1, f"flow runs named {name!r}: {len(runs)}"
    return runs[0]


def _logs(flow_run_id) -> list:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


def _summary_artifact(flow_run_id, key: str) -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert len(found) == 1
    return found[0].data


def test_a_failed_run_notifies_with_its_name_and_reason_and_logs_it(webhook_block, receiver, bad_data, tmp_path,
                                                                       monkeypatch):
    from features.validation import QuarantineThresholdError
    from pipelines.flows import score_flow

    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    receiver.received.clear()
    with pytest.raises(QuarantineThresholdError):
        score_flow(data=str(bad_data), as_of="2026-02-01", config=config_with_alerts(tmp_path, webhook_block))

    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert message["subject"] == "custscore score run failed: score 2026-02-01 bad-extract"
    assert "Flow run: score 2026-02-01 bad-extract" in message["body"]
    assert re.search(r"Reason: .*quarantined", message["body"])

    stored = _flow_run_named("score 2026-02-01 bad-extract")
    assert stored.state.is_failed()
    logs = _logs(stored.id)
    assert any(log.level == 40 and "score run failed" in log.message and "quarantined" in log.message for log in logs)
    assert any("validate: failed" in log.message for log in logs)  # the stage it failed in
    summary = _summary_artifact(stored.id, "custscore-score-summary")
    assert "| outcome | failed |" in summary and "quarantined" in summary


def test_without_a_block_a_failed_run_sends_nothing_and_still_fails_for_its_own_reason(
        prefect_harness, receiver, bad_data, tmp_path, monkeypatch):
    from features.validation import QuarantineThresholdError
    from pipelines.flows import score_flow

    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    receiver.received.clear()
    with pytest.raises(QuarantineThresholdError):
        score_flow(data=str(bad_data), as_of="2026-02-02", config=config_with_alerts(tmp_path, None))
    assert receiver.received == []


def test_an_unreachable_block_is_a_warning_of_the_run_never_its_failure(prefect_harness, tmp_path):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from pipelines.alerts import send_alert

    CustomWebhookNotificationBlock(name="gone", url="http://127.0.0.1:9/nothing-listens", timeout=2).save(
        "custscore-unreachable", overwrite=True)
    outcome = RunOutcome("score", name="score 2026-09-30 demo", error="disk full")
    problem = send_alert(outcome, "failed", AlertsConfig(block="custom-webhook/custscore-unreachable"))
    assert problem.startswith("could not send the failed alert through Prefect block custom-webhook/custscore-unreachable")
    assert send_alert(outcome, "failed", AlertsConfig(block="custom-webhook/never-saved")) is not None
    assert send_alert(outcome, "failed", AlertsConfig()) is None  # no block: nothing to send, nothing wrong


# ------------------------------------------------------------------------------------------ a degraded training run


@pytest.fixture(scope="module")
def stale_data(tmp_path_factory):
    """Small demo data whose interactions end 120 days before the transactions: a stale extract (a data warning)."""
    from demo import generate_demo_data, write_demo_data

    tables = generate_demo_data(300, seed=5, end=date(2026, 6, 30))
    interactions = tables["interactions"]
    tables["interactions"] = interactions[pd.to_datetime(interactions["ts"]) < pd.Timestamp("2026-03-02")]
    folder = tmp_path_factory.mktemp("observed") / "stale-crm"
    write_demo_data(tables, folder, "parquet")
    return folder


@pytest.fixture(scope="module")
def degraded_training(webhook_block, receiver, stale_data):
    from pipelines.flows import train_flow

    root = stale_data.parent
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(root / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    receiver.received.clear()
    small = "training:\n  n_snapshots: 3\n  n_validation_snapshots: 1\n  design: fixed\n"
    result = train_flow(data=str(stale_data), config=config_with_alerts(root, webhook_block, small))
    messages = list(receiver.received)
    mp.undo()
    return result, messages


@pytest.mark.slow
def test_a_degraded_run_notifies_with_its_name_and_the_warnings_that_made_it_so(degraded_training):
    result, messages = degraded_training
    assert result["outcome"] == "degraded"
    assert result["flow_run_name"] == "train 2026-07-01 stale-crm"  # the default as-of: the day after the data
    assert len(messages) == 1
    assert messages[0]["subject"] == "custscore train run degraded: train 2026-07-01 stale-crm"
    assert re.search(r"- data: interactions: .*days", messages[0]["body"])


@pytest.mark.slow
def test_logs_of_the_run_reach_prefect_with_progress_counts_and_warnings(degraded_training):
    result, _ = degraded_training
    stored = _flow_run_named(result["flow_run_name"])
    logs = _logs(stored.id)
    messages = [log.message for log in logs]
    by_logger = {log.name for log in logs}
    assert "pipelines.training" in by_logger  # the project's own logging.getLogger(__name__) records
    assert any(re.match(r"churn model v1: ", m) for m in messages)
    transactions = result["report"]["transactions"]
    assert f"data transactions: {transactions['read']:,} read, {transactions['accepted']:,} accepted, 0 quarantined" in messages
    assert any(log.level == 30 and log.message.startswith("data: interactions: ") for log in logs)
    assert any("train churn: fit, evaluate out of time, register, gate: finished" in m for m in messages)  # a stage
    assert f"train run {result['flow_run_name']}: degraded with {len(result['run_warnings'])} warning(s)" in messages


@pytest.mark.slow
def test_the_summary_artifact_holds_data_models_and_warnings(degraded_training):
    result, _ = degraded_training
    stored = _flow_run_named(result["flow_run_name"])
    summary = _summary_artifact(stored.id, "custscore-train-summary")
    transactions = result["report"]["transactions"]
    assert f"| transactions | {transactions['read']:,} | {transactions['accepted']:,} | 0 | - |" in summary
    churn = result["training"]["churn"]
    assert f"| churn | v{churn['version']} | {churn['grade']} |" in summary
    assert "| outcome | degraded |" in summary and "| as of | 2026-07-01 |" in summary
    assert re.search(r"\| data \| interactions: ", summary)


def test_the_default_config_has_no_block_and_is_valid():
    cfg: CustscoreConfig = load_config(None)
    assert cfg.alerts.block is None and cfg.alerts.notify_on == ("failed", "degraded")
