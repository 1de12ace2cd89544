"""`custscore prospects`: the scored prospects of a published run, shown or exported.

Prospects are scored when a run is scored (serving/prospects.py) and published with it as its
`prospects` table; this command only reads it. Importing it costs typer only; the command
imports pandas and rich when it runs, never Prefect or MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipelines.arguments import LANGUAGES, OUTPUT_SUFFIXES

if TYPE_CHECKING:
    import pandas as pd

    from serving.store import PublishedRun



def register(app: typer.Typer) -> None:
    """Add the `prospects` command to the custscore command line."""
    app.command("prospects")(prospects)


def prospects(
    run_id: Annotated[str | None, typer.Option("--run-id", help="A published run (default: the latest).")] = None,
    top: Annotated[int, typer.Option("--top", help="Prospects shown, highest expected value first.")] = 20,
    output: Annotated[Path | None, typer.Option("--output", help="Write every scored prospect to .csv or .parquet.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the reasons: en or zh.")] = "en",
) -> None:
    """Prospects (潜在客户): chance of a first order, value if they buy, expected value and why."""
    from pipelines.cli import _checked, _fail, _prepare, console

    _checked(check_flags, top, lang, output)
    paths = _prepare()
    from serving.sink import open_sink

    store = open_sink(paths.store)
    try:
        run = store.run_metadata(run_id=run_id)
        table = scored_prospects(store, run)
    except (LookupError, ValueError, OSError) as exc:
        _fail(str(exc))
    if output is not None:
        from pipelines.cli_accounts import write_accounts

        _checked(write_accounts, table, output)
    console.print(prospects_grid(table, run, lang, top))
    potential = int(table["potential"].sum()) if len(table) else 0
    console.print(f"run {run.run_id}: {len(table):,} prospects scored, {potential:,} potential accounts; "
                  f"{min(top, len(table)):,} shown", soft_wrap=True, highlight=False)
    if output is not None:
        console.print(f"{len(table):,} prospects of run {run.run_id} (as of {run.as_of}) written to {output}")


def check_flags(top: int, lang: str, output: Path | None) -> None:
    """Refuse, before the store is opened, a language that does not exist, a count below one, a bad file type."""
    from pipelines.arguments import check_at_least, check_choice, check_output_suffix

    check_at_least(top, 1, "--top")
    check_choice(lang, LANGUAGES, "--lang")
    check_output_suffix(output, OUTPUT_SUFFIXES, "--output")


class NoProspectsTableError(LookupError):
    """The run was published without a prospects table."""


def scored_prospects(store, run: PublishedRun) -> pd.DataFrame:
    """The run's scored prospects, highest expected value first; an error saying why when it has none."""
    from serving.prospects import TABLE_NAME

    table = store.read_table(TABLE_NAME, run_id=run.run_id)
    if table is None:
        raise NoProspectsTableError(
            f"run {run.run_id} (as of {run.as_of}) has no {TABLE_NAME} table: its prospects were not scored (no prospect "
            "model is champion, or the data has no customers table with attributes or interactions; the run's log says "
            "which); `custscore run --retrain` trains the prospect model where the data allows")
    return table.sort_values(["expected_value", "customer_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def prospects_grid(table: pd.DataFrame, run: PublishedRun, lang: str, top: int):
    from rich.markup import escape
    from rich.table import Table

    from features.families.wording import money

    grid = Table(title=f"prospects, run {run.run_id} (as of {run.as_of}), highest expected value first", show_lines=True)
    for name in ("customer", "p_first_order", "prospect_value", "expected_value", "potential"):
        grid.add_column(name, justify="left" if name == "customer" else "right")
    grid.add_column("why", overflow="fold")
    for r in table.head(top).itertuples():
        grid.add_row(escape(str(r.customer_id)), f"{r.p_first_order:.0%}", money(r.prospect_value), money(r.expected_value),
                     "yes" if r.potential else "-", escape(getattr(r, f"reason_text_{lang}") or "-"))
    return grid


def published_line(prospects: dict | None) -> str:
    """What a run did with its prospects, for the run's printed summary."""
    if not prospects:
        return "prospects: not scored"
    if "skipped" in prospects:
        return f"prospects: not scored, {prospects['skipped']}"
    return (f"prospects: {prospects['scored']:,} scored with prospect v{prospects['model_version']} "
            f"(grade {prospects.get('grade') or '?'}), {prospects['potential']:,} potential accounts; "
            "`custscore prospects` lists them")
