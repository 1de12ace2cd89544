"""What `custscore scores show` and `scores export` check and print: flags first, then the table.

Kept apart from pipelines/cli.py so the command functions stay a few lines each. Importing it
costs pandas and rich, never Prefect or MLflow.
"""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from pipelines.arguments import LANGUAGES, RunArgumentError, check_at_least, check_choice, check_output_suffix
from serving.segments import SEGMENTS, TIERS

EXPORT_SUFFIXES = (".csv", ".parquet")


def check_show_flags(segment: str | None, lang: str, limit: int) -> None:
    """Refuse, before the store is opened, a segment or language that does not exist and a limit below one."""
    check_choice(segment, SEGMENTS, "--segment")
    check_choice(lang, LANGUAGES, "--lang")
    check_at_least(limit, 1, "--limit")


def check_export_flags(output: object) -> None:
    check_output_suffix(output, EXPORT_SUFFIXES, "--output")


def export_options(output: object, segments: list[str] | None, tiers: list[str] | None, columns: str | None,
                   excel: bool):
    """The export's rows, columns and format from the flags, or a one-line refusal naming the bad value."""
    from pathlib import Path

    from serving.export import ExportOptionError, ExportOptions, check_export_target, parse_columns

    for segment in segments or ():
        check_choice(segment, SEGMENTS, "--segment")
    for tier in tiers or ():
        check_choice(tier, TIERS, "--tier")
    try:
        options = ExportOptions(tuple(segments or ()), tuple(tiers or ()), parse_columns(columns), excel)
        check_export_target(Path(str(output)), options)
    except ExportOptionError as exc:
        raise RunArgumentError(str(exc)) from exc
    return options


def no_match(segment: str | None, customer: str | None, run: str) -> str:
    """Why a run returned no row, naming the run and what was asked for."""
    asked = [f"segment {segment}"] * bool(segment) + [f"customer {customer}"] * bool(customer)
    return f"no customer of {run} matches {' and '.join(asked) or 'the request'}"


def scores_grid(frame: pd.DataFrame, lang: str, limit: int) -> Table:
    """The `limit` customers of highest CLV as a table; reasons wrap in both languages.

    Chinese has no spaces to wrap at, so the reasons column folds long runs of text instead of
    cutting them with an ellipsis.
    """
    top = frame.sort_values("clv", ascending=False, na_position="last").head(limit)
    label, text = f"segment_label_{lang}", f"reason_text_{lang}"
    grid = Table("customer", "segment", "tier", "p_churn", "exp. revenue", "net value", "CLV", "P10-P90",
                 title=f"scores as of {top['as_of'].iloc[0]} (run {top['run_id'].iloc[0]})", show_lines=True)
    grid.add_column("reasons", overflow="fold")
    for r in top.itertuples():
        grid.add_row(r.customer_id, getattr(r, label), r.value_tier or "-", _num(r.p_churn, "{:.2f}"),
                     _num(r.expected_revenue), _num(r.net_value), _num(r.clv),
                     f"{_num(r.value_p10)} - {_num(r.value_p90)}", getattr(r, text))
    return grid


def _num(x, fmt: str = "{:,.0f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)
