"""`custscore changes`: what changed between two published runs, and why.

The work is serving.changes.changes_between (the API reads the same function); this module
checks the flags, prints the segment transition matrix and the top movers with their why.
Importing it costs typer and rich only (the command line imports it to register the command);
pandas and the serving layer are imported when the command runs.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.arguments import LANGUAGES, check_at_least, check_choice

NEW, GONE = "(new)", "(gone)"


def changes(
    from_run: Annotated[str | None, typer.Option("--from", help="The earlier run id (default: the run before --to).")] = None,
    to_run: Annotated[str | None, typer.Option("--to", help="The later run id (default: the latest run).")] = None,
    segment: Annotated[str | None, typer.Option("--segment", help="Only customers in this segment before or after, e.g. at_risk.")] = None,
    top: Annotated[int, typer.Option("--top", help="How many movers by p_churn and by CLV.")] = 10,
    lang: Annotated[str, typer.Option("--lang", help="en or zh")] = "en",
) -> None:
    """Show the segment transition matrix between two runs and the customers who moved most, with why."""
    from pipelines.cli import _checked, _fail, _prepare, console

    _checked(check_changes_flags, segment, top, lang)
    paths = _prepare()
    from serving.changes import ChangesError, changes_between
    from serving.sink import open_sink

    try:
        report = changes_between(open_sink(paths.store), from_run, to_run, segment=segment, top=top, lang=lang)
    except ChangesError as exc:
        _fail(str(exc), code=1)
    for line in header_lines(report):
        console.print(line, highlight=False)
    console.print(transition_grid(report["transitions"]))
    for column, title in (("p_churn", "p_churn"), ("clv", "CLV")):
        console.print(movers_grid(report["movers"][column], title))


def check_changes_flags(segment: str | None, top: int, lang: str) -> None:
    """Refuse, before the store is opened, an unknown segment or language and a --top below one."""
    from serving.segments import SEGMENTS

    check_choice(segment, SEGMENTS, "--segment")
    check_choice(lang, LANGUAGES, "--lang")
    check_at_least(top, 1, "--top")


def header_lines(report: dict[str, Any]) -> list[str]:
    """Which runs are compared, how many customers stayed, came and went, and whether a model changed."""
    before, after, counts = report["from"], report["to"], report["customers"]
    lines = [f"changes from run {before['run_id']} (as of {before['as_of']}) to run {after['run_id']} (as of {after['as_of']}): "
             f"{counts['both']:,} customers in both, {counts['new']:,} new, {counts['gone']:,} gone"]
    for score, changed in report["model_changed"].items():
        if changed:
            lines.append(f"the {score} model changed (v{before[f'{score}_model_version']} -> v{after[f'{score}_model_version']}): "
                         "its base-value shift is shown as 'new model'; see docs/CHANGES.md for what that leaves mixed in")
    return lines


def transition_grid(transitions: list[dict[str, Any]]) -> Table:
    """Segments before (rows) by segments after (columns): customers and the share of the row."""
    rows = _ordered({t["from_segment"] for t in transitions}, first=NEW)
    columns = _ordered({t["to_segment"] for t in transitions}, last=GONE)
    cell = {(t["from_segment"], t["to_segment"]): t for t in transitions}
    grid = Table("before \\ after", *columns, title="segment transitions: customers (share of the row)")
    for row in rows:
        grid.add_row(row, *(_cell(cell.get((row, column))) for column in columns))
    return grid


def movers_grid(movers: list[dict[str, Any]], title: str) -> Table:
    """The customers whose score moved most, with the sentence saying why."""
    grid = Table("customer", "segment", "p_churn", "CLV", title=f"top movers by {title}", show_lines=True)
    grid.add_column("why", overflow="fold")
    for m in movers:
        grid.add_row(m["customer_id"], f"{m['segment_before']} -> {m['segment_after']}",
                     f"{_num(m['p_churn_before'], '{:.2f}')} -> {_num(m['p_churn_after'], '{:.2f}')}",
                     f"{_num(m['clv_before'])} -> {_num(m['clv_after'])}", m["sentence"] or "")
    return grid


def _ordered(names: set[str], first: str | None = None, last: str | None = None) -> list[str]:
    from serving.segments import SEGMENTS

    known = [s for s in SEGMENTS if s in names]
    others = sorted(names - set(SEGMENTS) - {first, last})
    return [first] * (first in names) + known + others + [last] * (last in names)


def _cell(transition: dict[str, Any] | None) -> str:
    if transition is None:
        return ""
    return f"{transition['customers']:,} ({transition['share_of_from']:.0%})"


def _num(x, fmt: str = "{:,.0f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)
