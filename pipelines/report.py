"""The run report: one self-contained HTML file per published run and language.

What it shows is read back from the score sink (the run's scores, summary, explanations, metadata
and its further tables: drift, backtest, score_changes, segment_transitions), plus the validation
figures the champions were promoted on when MLflow has them. A section whose table the run does not
have says so in a sentence with the reason, instead of disappearing: a reader can tell "not measured"
from "nothing to see". Plots are embedded PNGs (pipelines/report_plots.py) and the CSS is inline,
so the file opens anywhere without a network.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalog import template_of
from pipelines import report_plots as plots
from pipelines.report_html import render_page
from pipelines.report_text import CATEGORY_NAMES_ZH, CATEGORY_OF_COLUMN, COLUMN_NAMES_ZH, text_for
from serving.backtest import MEASURED
from serving.changes import most_moved
from serving.drift import CONSTANT
from serving.sentences import template_for
from serving.sink import ScoreSink
from serving.store import PublishedRun

log = logging.getLogger(__name__)

FURTHER_TABLES = ("drift", "backtest", "score_changes", "segment_transitions", "actions")
HEADLINE = {"churn": ("roc_auc", "brier", "ece", "pr_auc"), "value": ("normalized_gini", "spearman",
                                                                     "top_10pct_capture", "aggregate_bias_pct")}
# The score columns the report draws from: the reason texts (most of a score table's bytes) are not read.
SCORE_COLUMNS = ["customer_id", "p_churn", "clv", "value_tier", "segment"]
# The ranked retention calls of a run: (sink, run_id) -> frame, e.g. serving.actions.actions_of_run with a policy.
ActionList = Callable[[ScoreSink, str], pd.DataFrame]


@dataclass(frozen=True)
class ReportOptions:
    """How much the report shows and where the value tiers were cut (the run's segment rules)."""

    value_column: str = "clv"
    tier_cuts: tuple[float, float] = (0.80, 0.95)
    at_risk_waterfalls: int = 5
    top_movers: int = 10


@dataclass
class Validation:
    """What a champion was promoted on: out-of-time metrics beside the baseline, and its calibration plot."""

    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    calibration_png: bytes | None = None


@dataclass
class ReportInputs:
    """Everything one report is drawn from, read once for all its languages."""

    run: PublishedRun
    scores: pd.DataFrame
    summary: pd.DataFrame
    tables: dict[str, pd.DataFrame | None]
    previous: PublishedRun | None = None
    previous_scores: pd.DataFrame | None = None
    reasons: pd.DataFrame | None = None  # churn reasons of the top at-risk accounts
    validation: dict[str, Validation] = field(default_factory=dict)
    actions: pd.DataFrame | None = None
    backtest_of: PublishedRun | None = None  # the run the latest backtest measured (this one or an earlier one)


@dataclass
class Section:
    """One section of the page: heading, an optional absent-sentence, captions, tables (HTML) and images."""

    key: str
    title: str
    notes: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)  # (subheading, table HTML)
    images: list[tuple[str, str]] = field(default_factory=list)  # (alt text, data URI)


# ---------------------------------------------------------------------------------------------- reading


def read_inputs(sink: ScoreSink, run_id: str | None = None, *, options: ReportOptions = ReportOptions(),
                validation: dict[str, Validation] | None = None, action_list: ActionList | None = None) -> ReportInputs:
    """Read a published run (default: the latest) and what the report compares it with."""
    run = sink.run_metadata(run_id)
    scores = sink.read_scores(run.run_id, columns=list(dict.fromkeys([*SCORE_COLUMNS, options.value_column])))
    previous = previous_run(sink, run)
    inputs = ReportInputs(
        run=run, scores=scores, summary=sink.read_summary(run.run_id),
        tables={name: sink.read_table(name, run.run_id) for name in FURTHER_TABLES},
        previous=previous,
        previous_scores=sink.read_scores(previous.run_id, columns=["customer_id", "p_churn", "clv"]) if previous else None,
        validation=validation or {},
    )
    top = top_at_risk(scores, options)
    if len(top):
        inputs.reasons = sink.read_explanations(run.run_id, customer_id=top["customer_id"].tolist(), score="churn")
    inputs.backtest_of, inputs.tables["backtest"] = latest_backtest(sink, run)
    inputs.actions = inputs.tables.get("actions")
    if inputs.actions is None and action_list is not None:
        inputs.actions = action_list(sink, run.run_id)
    return inputs


def previous_run(sink: ScoreSink, run: PublishedRun) -> PublishedRun | None:
    """The published run before this one (by the sink's order of recency), None for the first."""
    runs = sink.list_runs()
    ids = runs["run_id"].tolist()
    if run.run_id not in ids or ids.index(run.run_id) == 0:
        return None
    return sink.run_metadata(ids[ids.index(run.run_id) - 1])


def latest_backtest(sink: ScoreSink, run: PublishedRun) -> tuple[PublishedRun | None, pd.DataFrame | None]:
    """The newest backtest among this run and the runs before it: a run is backtested only once its horizons passed."""
    runs = sink.list_runs()
    ids = runs["run_id"].tolist()
    earlier = ids[: ids.index(run.run_id) + 1] if run.run_id in ids else [run.run_id]
    for run_id in reversed(earlier):
        table = sink.read_table("backtest", run_id)
        if table is not None and not table.empty:
            return sink.run_metadata(run_id), table
    return None, None


def top_at_risk(scores: pd.DataFrame, options: ReportOptions) -> pd.DataFrame:
    """The at_risk accounts worth most (the segment's value column), as many as the report draws."""
    at_risk = scores[scores["segment"] == "at_risk"]
    column = options.value_column if options.value_column in scores else "clv"
    return at_risk.sort_values([column, "customer_id"], ascending=[False, True]).head(options.at_risk_waterfalls)


# ---------------------------------------------------------------------------------------------- writing


def write_report(inputs: ReportInputs, lang: str, output: Path, options: ReportOptions = ReportOptions()) -> Path:
    """Write the report of one language to `output` (its folder is created)."""
    html = render_report(inputs, lang, options)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".part")
    temporary.write_text(html, encoding="utf-8")
    temporary.replace(output)  # a reader never opens half a report
    return output


def render_report(inputs: ReportInputs, lang: str, options: ReportOptions = ReportOptions()) -> str:
    """The whole page as HTML text."""
    words = text_for(lang)
    sections = [
        data_quality(inputs, words, lang), models_section(inputs, words, lang), segments_section(inputs, words, lang),
        pareto_section(inputs, words, lang, options), calibration_section(inputs, words, lang),
        distributions_section(inputs, words, lang), drift_section(inputs, words, lang),
        transitions_section(inputs, words, lang, options), backtest_section(inputs, words, lang),
        actions_section(inputs, words, lang), waterfalls_section(inputs, words, lang, options),
    ]
    run = inputs.run
    facts = [(words["run"], run.run_id), (words["as_of"], str(run.as_of)),
             (words["published_at"], f"{run.published_at:%Y-%m-%d %H:%M}"),
             (words["data_source"], str(run.extra.get("data_source", "-"))),
             (words["customers"], f"{run.score_rows:,}")]
    return render_page(lang=lang, words=words, facts=facts, sections=sections)


def frame_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """A table as escaped HTML, numbers rounded for reading and missing values blank."""
    shown = frame.copy()
    for column in shown.columns:
        shown[column] = shown[column].map(lambda v: _cell(v, digits)).astype(object)
    return shown.to_html(index=False, escape=True, border=0, classes="grid", na_rep="")


def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        return f"{value:,.{digits}f}"
    return str(value)


# ---------------------------------------------------------------------------------------------- language


def category_names(category: str, lang: str, segments: dict[str, str] | None = None) -> dict[str, str]:
    """Code -> name of one kind of category value (segment, value_tier, level, ...); empty in English (codes shown)."""
    if lang == "en":
        return {}
    names = dict(CATEGORY_NAMES_ZH.get(category, {}))
    if category == "segment" and segments:
        names.update(segments)
    return names


def named(value, names: dict[str, str]):
    return names.get(value, value) if isinstance(value, str) else value


def feature_name(feature: str, lang: str) -> str:
    """A feature code in the report's language: Chinese words from its family's template (the code in English)."""
    found = template_of(feature) if lang != "en" else None
    if found is None:
        return feature
    template, groups = template_for(feature)
    return template.noun_zh(groups)


def localised(frame: pd.DataFrame, lang: str, segments: dict[str, str] | None = None) -> pd.DataFrame:
    """A stored table as the report shows it: in English as stored; in Chinese with its column names and
    category codes (segments, tiers, drift levels, grouping dimensions, scores, metrics) in words."""
    if lang == "en" or frame.empty:
        return frame
    shown = frame.copy()
    for column in frame.columns:
        names = category_names(CATEGORY_OF_COLUMN.get(column, column), lang, segments)
        if names:
            shown[column] = frame[column].map(lambda v, names=names: named(v, names))
    if {"group_by", "group"} <= set(frame.columns):  # a backtest group is a segment or a tier, as group_by says
        for dimension in ("segment", "value_tier"):
            rows = frame["group_by"] == dimension
            names = category_names(dimension, lang, segments)
            shown.loc[rows, "group"] = frame.loc[rows, "group"].map(lambda v, names=names: named(v, names))
    if "name" in frame.columns and "kind" in frame.columns:  # drift: features by their words
        features = frame["kind"] == "feature"
        shown.loc[features, "name"] = frame.loc[features, "name"].map(lambda v: feature_name(v, lang))
    if "churn_reason_features" in frame.columns:
        shown["churn_reason_features"] = frame["churn_reason_features"].map(
            lambda v: "、".join(feature_name(f.strip(), lang) for f in v.split(",")) if isinstance(v, str) and v else v)
    return shown.rename(columns=COLUMN_NAMES_ZH)


def run_segment_names(inputs: ReportInputs, lang: str) -> dict[str, str]:
    """The run's own segment labels in the report's language (segments.yaml), by segment code."""
    summary = inputs.summary
    column = f"label_{lang}"
    if summary is None or summary.empty or column not in summary.columns:
        return {}
    rows = summary[summary["group_by"] == "segment"]
    return {str(g): str(label) for g, label in zip(rows["group"], rows[column], strict=True) if isinstance(label, str) and label}


# ---------------------------------------------------------------------------------------------- sections


def data_quality(inputs: ReportInputs, w: dict, lang: str = "en") -> Section:
    section = Section("data-quality", w["data_quality"])
    counts = inputs.run.extra.get("input_rows")
    if not counts:
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_input_rows']}")
        return section
    tables = category_names("table", lang)
    rows = [{w["table"]: named(table, tables), w["read"]: int(r.get("read", 0)), w["accepted"]: int(r.get("accepted", 0)),
             w["duplicates_kept"]: int(r.get("exact_duplicates_kept", 0)), w["quarantined"]: int(r.get("quarantined", 0)),
             w["reasons"]: ", ".join(f"{k}: {v:,}" for k, v in sorted(r.get("reasons", {}).items(), key=lambda kv: -kv[1])) or "-",
             w["warnings"]: "; ".join(r.get("warnings", [])) or "-"}
            for table, r in counts.items()]
    section.tables.append(("", frame_html(pd.DataFrame(rows))))
    return section


def models_section(inputs: ReportInputs, w: dict, lang: str = "en") -> Section:
    section = Section("models", w["models"])
    recorded = inputs.run.extra.get("models", {})
    rows = []
    for kind in ("churn", "value"):
        facts = recorded.get(kind, {})
        version = facts.get("version") or getattr(inputs.run, f"{kind}_model_version")
        validation = inputs.validation.get(kind)
        metrics = list(validation.metrics.items()) if validation and validation.metrics else [("-", (None, None))]
        for i, (metric, (model, baseline)) in enumerate(metrics):
            first = i == 0
            rows.append({w["kind"]: named(kind, category_names("score", lang)) if first else "",
                         w["version"]: f"v{version}" if first and version else "",
                         w["grade"]: (facts.get("grade") or "-") if first else "", w["metric"]: named(metric, category_names("metric", lang)),
                         w["model_value"]: model, w["baseline_value"]: baseline})
    section.tables.append(("", frame_html(pd.DataFrame(rows))))
    section.captions.append(w["models_caption"])
    if not any(v.metrics for v in inputs.validation.values()):
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_validation']}")
    return section


def segments_section(inputs: ReportInputs, w: dict, lang: str) -> Section:
    section = Section("segments", w["segments"])
    summary = inputs.summary
    for group_by in ("segment", "value_tier"):
        part = summary[summary["group_by"] == group_by]
        if part.empty:
            continue
        codes = category_names(group_by, lang, run_segment_names(inputs, lang))
        shown = pd.DataFrame({
            w["segment"]: part["group"].map(lambda v, codes=codes: named(v, codes)), w["label"]: part[f"label_{lang}"], w["n_customers"]: part["customers"].astype(int),
            w["share"]: part["share_customers"].map(_percent), w["share_current"]: part["share_current_value"].map(_percent),
            w["share_predicted"]: part["share_predicted_value"].map(_percent),
            w["mean_p_churn"]: part["mean_p_churn"].astype(float)})
        section.tables.append((w[f"by_{group_by}"], frame_html(shown, digits=2)))
    return section


def pareto_section(inputs: ReportInputs, w: dict, lang: str, options: ReportOptions) -> Section:
    section = Section("pareto", w["pareto"])
    column = options.value_column if options.value_column in inputs.scores else "clv"
    # The tiers were cut over the scored customers: customers without a tier (no history) are
    # left off both the curve and the tier shares, which must count the same customers.
    tiered = inputs.scores.loc[inputs.scores["value_tier"].notna()]
    values = tiered[column].astype(float)
    if not (values > 0).any():
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_positive_value']}")
        return section
    tiers = tiered["value_tier"].value_counts(normalize=True)
    shares = {t: float(tiers.get(t, 0.0)) for t in ("A", "B", "C")}
    section.images.append((w["pareto"], plots.pareto_curve(values, shares, options.tier_cuts, lang)))
    section.captions.append(w["pareto_caption"].format(value=column, a=options.tier_cuts[0], b=options.tier_cuts[1]))
    return section


def calibration_section(inputs: ReportInputs, w: dict, lang: str) -> Section:
    section = Section("calibration", w["calibration"])
    validation = inputs.validation.get("churn")
    if validation and validation.calibration_png:
        section.images.append((w["calibration_validation"], plots.png_uri(validation.calibration_png)))
    else:
        section.notes.append(f"{w['calibration_validation']}{w['colon']}{w['no_calibration_plot']}")
    realised = realised_calibration(inputs.tables.get("backtest"))
    if realised is not None:
        section.images.append((w["calibration_realised"], plots.calibration_plot(*realised, lang)))
    else:
        section.notes.append(f"{w['calibration_realised']}{w['colon']}{w['no_realised_calibration']}")
    section.captions.append(w["calibration_caption"])
    return section


def realised_calibration(backtest: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean predicted and realised churn per decile of a backtest (serving.backtest), None when it has none measured."""
    if backtest is None or backtest.empty:
        return None
    rows = backtest[(backtest["score"] == "churn") & (backtest["group_by"] == "decile") & (backtest["status"] == MEASURED)]
    if rows.empty:
        return None
    rows = rows.sort_values("group")  # "01" .. "10"
    return rows["predicted"].to_numpy(dtype=float), rows["realised"].to_numpy(dtype=float)


def distributions_section(inputs: ReportInputs, w: dict, lang: str) -> Section:
    section = Section("distributions", w["distributions"])
    before = inputs.previous_scores
    label = inputs.previous.run_id if inputs.previous else None
    for column in ("p_churn", "clv"):
        section.images.append((w[column], plots.distribution_plot(
            inputs.scores[column], before[column] if before is not None else None, column, label, lang)))
    if before is None:
        section.notes.append(w["no_previous_run"])
    else:
        rows = [{w["metric"]: f"{w[column + '_short']} {w[stat]}", w["this_run"]: getattr(inputs.scores[column], stat)(),
                 w["last_run"].format(run=label): getattr(before[column], stat)()}
                for column in ("p_churn", "clv") for stat in ("mean", "median")]
        section.tables.append(("", frame_html(pd.DataFrame(rows))))
    return section


def drift_section(inputs: ReportInputs, w: dict, lang: str) -> Section:
    section = Section("drift", w["drift"])
    drift = inputs.tables.get("drift")
    if drift is None or drift.empty:
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_drift']}")
        return section
    drift = drift.drop(columns=["run_id"], errors="ignore")
    # A feature with one value for everyone (serving.drift.CONSTANT) has a PSI that measures the date, not the
    # population: listed last, and left out of the chart, where its bar would flatten all the others.
    constant = drift["level"] == CONSTANT
    varying = drift[~constant].sort_values("psi", ascending=False, na_position="last")
    drift = pd.concat([varying, drift[constant]])
    if len(varying):
        section.images.append((w["psi"], plots.psi_bars(varying.rename(columns={"name": "feature"}), lang)))
    section.captions.append(w["drift_caption"])
    section.tables.append(("", frame_html(localised(drift, lang))))
    return section


def transitions_section(inputs: ReportInputs, w: dict, lang: str, options: ReportOptions) -> Section:
    section = Section("transitions", w["transitions"])
    if inputs.previous is None:  # a first run's changes table has every customer new: nothing moved
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_transitions']}")
        return section
    matrix = transition_matrix(inputs.tables.get("segment_transitions"))
    segments = category_names("segment", lang, run_segment_names(inputs, lang))
    if matrix is not None:
        matrix = matrix.rename(index=segments, columns=segments)
    if matrix is None:
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_transitions']}")
    else:
        section.tables.append((w["from_to"], matrix.to_html(escape=True, border=0, classes="grid matrix")))
    movers = top_movers(inputs.tables.get("score_changes"), lang, options.top_movers)
    if movers is None:
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_movers']}")
    else:
        section.tables.append((w["top_movers"], frame_html(localised(movers, lang, run_segment_names(inputs, lang)))))
    return section


def transition_matrix(transitions: pd.DataFrame | None) -> pd.DataFrame | None:
    """Customers moving from each segment (rows) to each (columns), from a `segment_transitions` table."""
    if transitions is None or transitions.empty:
        return None
    matrix = transitions.pivot_table(index="from_segment", columns="to_segment", values="customers", aggfunc="sum",
                                     fill_value=0)
    matrix.index.name, matrix.columns.name = None, None
    return matrix.astype(int)


def top_movers(changes: pd.DataFrame | None, lang: str, n: int) -> pd.DataFrame | None:
    """The customers whose churn risk moved most since the last run, either way, with the sentence saying why."""
    if changes is None or changes.empty:
        return None
    movers = most_moved(changes[changes["status"] == "both"], "p_churn_delta", n)
    if movers.empty:
        return None
    return movers[["customer_id", "segment_before", "segment_after", "p_churn_before", "p_churn_after",
                   f"sentence_{lang}"]].reset_index(drop=True)


def backtest_section(inputs: ReportInputs, w: dict, lang: str = "en") -> Section:
    section = Section("backtest", w["backtest"])
    backtest = inputs.tables.get("backtest")
    if backtest is None or backtest.empty:
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_backtest'].format(run=inputs.run.run_id)}")
        return section
    if inputs.backtest_of is not None:
        section.captions.append(w["backtest_of"].format(run=inputs.backtest_of.run_id, as_of=inputs.backtest_of.as_of))
    shown = backtest.drop(columns=["run_id"], errors="ignore")
    section.tables.append(("", frame_html(localised(shown, lang, run_segment_names(inputs, lang)))))
    return section


def actions_section(inputs: ReportInputs, w: dict, lang: str) -> Section:
    section = Section("actions", w["actions"])
    if inputs.actions is None or inputs.actions.empty:
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_actions']}")
        return section
    other = "en" if lang == "zh" else "zh"  # the reasons of the report's language only
    shown = inputs.actions.drop(columns=["run_id", f"reason_to_call_{other}"], errors="ignore")
    section.tables.append(("", frame_html(localised(shown.head(50), lang, run_segment_names(inputs, lang)), digits=2)))
    return section


def waterfalls_section(inputs: ReportInputs, w: dict, lang: str, options: ReportOptions) -> Section:
    section = Section("waterfalls", w["waterfalls"])
    top = top_at_risk(inputs.scores, options)
    if top.empty:
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_at_risk']}")
        return section
    reasons = inputs.reasons if inputs.reasons is not None else pd.DataFrame(columns=["customer_id"])
    for row in top.itertuples():
        own = reasons[reasons["customer_id"] == row.customer_id].sort_values(["direction", "rank"], ascending=[False, True])
        if own.empty:
            continue
        section.images.append((f"{w['customer']} {row.customer_id}",
                               plots.reason_waterfall(row.customer_id, own, row.p_churn, lang)))
    if not section.images:
        section.notes.append(f"{w['not_measured']}{w['colon']}{w['no_explanations']}")
    else:
        section.captions.append(w["waterfall_caption"])
    return section


def _percent(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1%}"


# ---------------------------------------------------------------------------------------------- MLflow


def validation_from_mlflow(run: PublishedRun) -> dict[str, Validation]:
    """The out-of-time figures each champion of the run was promoted on, from its MLflow run ({} if unreadable).

    MLflow must already point at the home's registry (tracking.configure_tracking).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = {}
    for kind in ("churn", "value"):
        mlflow_run_id = getattr(run, f"{kind}_mlflow_run_id")
        if not mlflow_run_id:
            continue
        try:
            metrics = client.get_run(mlflow_run_id).data.metrics
        except MlflowException as exc:
            log.warning("report: the %s model's MLflow run %s is not readable (%s)", kind, mlflow_run_id, exc)
            continue
        found[kind] = Validation({m: (metrics.get(f"model_{m}"), metrics.get(f"baseline_{m}"))
                                  for m in HEADLINE[kind] if f"model_{m}" in metrics})
        if kind == "churn":
            found[kind].calibration_png = _artifact_bytes(client, mlflow_run_id, "plots/calibration_curve.png")
    return found


def _artifact_bytes(client, mlflow_run_id: str, path: str) -> bytes | None:
    import os
    import tempfile

    from mlflow.exceptions import MlflowException

    # MLflow draws a progress bar on stderr for every download: noise under the command's own output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with tempfile.TemporaryDirectory() as folder:
            return Path(client.download_artifacts(mlflow_run_id, path, folder)).read_bytes()
    except (MlflowException, OSError):
        return None

