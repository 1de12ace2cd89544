"""A flow run's summary as a Prefect markdown artifact (the Artifacts tab of the run, and the Artifacts page).

One key per flow (`custscore-train-summary`, `custscore-score-summary`, `custscore-run-summary`), so
the Artifacts page shows each flow's latest summary with the earlier ones as its history.
"""

from __future__ import annotations

from typing import Any

from pipelines.run_outcome import RunOutcome

# The payment-risk model is trained and scored only where the data has invoices (docs/CREDIT.md).
NO_PAYMENT_MODEL = "no payment risk this run: no invoices, payment_risk.enabled false, or no champion yet"
ARTIFACT_KEYS = {"train": "custscore-train-summary", "score": "custscore-score-summary", "run": "custscore-run-summary"}


def summary_markdown(outcome: RunOutcome, state: str, result: dict[str, Any] | None) -> str:
    """The run in markdown tables: run, data, models, segments, warnings (the sections the result has)."""
    result = result or {}
    parts = [f"# {cell(outcome.name or outcome.flow)}", _run_table(outcome, state, result)]
    if result.get("report"):
        parts += ["## Data", _data_table(result["report"])]
    models = _model_rows(result)
    if models:
        parts += ["## Models", table(("model", "version", "grade", "champion"), models)]
    segments = [row for row in (result.get("published") or {}).get("summary", ()) if row.get("group_by") == "segment"]
    if segments:
        parts += ["## Customers scored per segment", _segment_table(segments)]
    parts += ["## Warnings", table(("kind", "warning"), [(w.kind, w.message) for w in outcome.warnings])
              if outcome.warnings else "none"]
    return "\n\n".join(parts) + "\n"


def _run_table(outcome: RunOutcome, state: str, result: dict) -> str:
    published = result.get("published") or {}
    rows = [("outcome", state), ("as of", outcome.as_of or result.get("as_of") or "-"),
            ("data", outcome.source or "-")]
    if outcome.error:
        rows.append(("error", outcome.error))
    if published:
        rows += [("published run", published["run_id"]), ("customers scored", f"{published['rows']:,}"),
                 ("score store", published["store"])]
    # The HTML report, once a run writes one: a link the UI opens (a local file:// path is shown as text).
    rows.append(("report", Markdown(f"[{cell(outcome.report)}]({_link(outcome.report)})") if outcome.report else "not written"))
    return table(("", ""), rows)


def _link(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe=":/") if "://" in path else "file://" + quote(path)


def _data_table(report: dict) -> str:
    rows = []
    for name, row in report.items():
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(row.get("reasons", {}).items()))
        rows.append((name, f"{row['read']:,}", f"{row['accepted']:,}", f"{row['quarantined']:,}", reasons or "-"))
    return table(("table", "rows read", "accepted", "quarantined", "quarantine reasons"), rows)


def _model_rows(result: dict) -> list[tuple]:
    """Trained models (promoted or kept out), else the champions that scored."""
    trained = result.get("training") or {}
    rows = [(kind, f"v{o['version']}", o.get("grade", "-"), "promoted" if o.get("promoted") else f"not promoted: {o['reason']}")
            for kind, o in trained.items()]
    scored = (result.get("published") or {}).get("models") or {}
    rows += [(kind, f"v{m['version']}", m.get("grade") or "-", "scored this run")
             for kind, m in scored.items() if kind not in trained or not trained[kind].get("promoted")]
    if rows and not any(row[0] == "payment" for row in rows):
        rows.append(("payment", "-", "-", NO_PAYMENT_MODEL))
    return rows + _prospect_rows(result, trained)


def _prospect_rows(result: dict, trained: dict) -> list[tuple]:
    """The prospect champion that scored the run's prospects, or why prospects were left unscored."""
    prospects = (result.get("published") or {}).get("prospects") or {}
    if "model_version" in prospects and not trained.get("prospect", {}).get("promoted"):
        return [("prospect", f"v{prospects['model_version']}", prospects.get("grade") or "-",
                 f"scored {prospects['scored']:,} prospects this run, {prospects['potential']:,} potential")]
    if "skipped" in prospects and "prospect" not in trained:
        return [("prospect", "-", "-", f"prospects not scored: {prospects['skipped']}")]
    return []


def _segment_table(segments: list[dict]) -> str:
    rows = [(s["group"], s.get("label_en") or "-", f"{s['customers']:,}", f"{s['share_customers']:.1%}",
             _share(s.get("share_predicted_value")), "-" if s.get("mean_p_churn") is None else f"{s['mean_p_churn']:.2f}")
            for s in segments]
    return table(("segment", "label", "customers", "share", "share of predicted value", "mean p_churn"), rows)


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class Markdown(str):
    """Text already in markdown (a link): a table cell as it is."""


def cell(value) -> str:
    """A table cell: one line, with the characters markdown would read as table or markup escaped."""
    if isinstance(value, Markdown):
        return str(value)
    text = " ".join(str(value).split())
    for char in ("\\", "|", "*", "_", "`", "<", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text


def publish_summary(outcome: RunOutcome, state: str, result: dict[str, Any] | None) -> None:
    """Create the run's summary artifact in Prefect (key per flow)."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=summary_markdown(outcome, state, result), key=ARTIFACT_KEYS[outcome.flow],
                             description=f"custscore {outcome.flow} run {outcome.name}: {state}")
