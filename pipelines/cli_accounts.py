"""`custscore accounts`: the key-account scorecard of a published run, shown or exported.

The grades are computed when a run is scored (serving/scorecard.py) and published with it as
its `account_grades` table; this command only reads them. Importing it costs typer only; the
command imports pandas and rich when it runs, never Prefect or MLflow.
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
    """Add the `accounts` command to the custscore command line."""
    app.command("accounts")(accounts)


def accounts(
    run_id: Annotated[str | None, typer.Option("--run-id", help="A published run (default: the latest).")] = None,
    grade: Annotated[str | None, typer.Option("--grade", help="Only key, regular or potential accounts.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the graded accounts to .csv or .parquet.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the sentences: en or zh.")] = "en",
    limit: Annotated[int, typer.Option("--limit", help="Accounts shown, highest weighted score first.")] = 20,
) -> None:
    """Key / regular / potential accounts (重点 / 普通 / 潜在) with their five dimension scores and why."""
    from pipelines.cli import _checked, _fail, _prepare, console

    _checked(check_flags, grade, lang, limit, output)
    paths = _prepare()
    from serving.sink import open_sink

    store = open_sink(paths.store)
    try:
        run = store.run_metadata(run_id=run_id)
        card = graded_accounts(store, run, grade)
    except (LookupError, ValueError, OSError) as exc:
        _fail(str(exc))
    if output is not None:
        _checked(write_accounts, card, output)
    console.print(accounts_grid(card, run, lang, limit))
    console.print(counts_line(card, run, grade, limit), soft_wrap=True, highlight=False)
    if output is not None:
        console.print(f"{len(card):,} accounts of run {run.run_id} (as of {run.as_of}) written to {output}")


def check_flags(grade: str | None, lang: str, limit: int, output: Path | None) -> None:
    """Refuse, before the store is opened, a grade or language that does not exist, a limit below one, a bad file type."""
    from pipelines.arguments import check_at_least, check_choice, check_output_suffix
    from serving.scorecard import GRADES

    check_choice(grade, GRADES, "--grade")
    check_choice(lang, LANGUAGES, "--lang")
    check_at_least(limit, 1, "--limit")
    check_output_suffix(output, OUTPUT_SUFFIXES, "--output")


class NoScorecardError(LookupError):
    """The run was published without an account_grades table."""


def graded_accounts(store, run: PublishedRun, grade: str | None) -> pd.DataFrame:
    """The run's account grades (one grade, or all), highest weighted score first."""
    from serving.scorecard import TABLE_NAME, read_account_grades

    card = read_account_grades(store, run_id=run.run_id, grade=grade)
    if card is None:
        raise NoScorecardError(f"run {run.run_id} (as of {run.as_of}) has no {TABLE_NAME} table: it was published before "
                               "the scorecard existed; score it again with `custscore run` to grade its accounts")
    return card


def write_accounts(frame: pd.DataFrame, output: Path) -> None:
    """The accounts as .parquet, or as .csv whose text cells a spreadsheet cannot run as formulas."""
    from features.safe_csv import safe_text_frame
    from pipelines.faults import writing

    output = Path(output)
    with writing(output, "the account grades", "the file is incomplete: delete it"):
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix.lower() == ".parquet":
            frame.to_parquet(output, index=False)
        else:
            safe_text_frame(frame).to_csv(output, index=False)


def accounts_grid(card: pd.DataFrame, run: PublishedRun, lang: str, limit: int):
    from rich.markup import escape
    from rich.table import Table

    from serving.scorecard import DIMENSIONS, GRADE_EN, GRADE_ZH, LABELS_EN, LABELS_ZH, shown_score

    labels, grade_names = (LABELS_EN, GRADE_EN) if lang == "en" else (LABELS_ZH, GRADE_ZH)
    grid = Table(title=f"account grades, run {run.run_id} (as of {run.as_of}), highest weighted score first",
                 show_lines=True)
    for name in ("customer", "grade", "score", *(labels[d] for d in DIMENSIONS)):
        grid.add_column(name, justify="left" if name in ("customer", "grade") else "right")
    grid.add_column("why", overflow="fold")
    for r in card.head(limit).itertuples():
        # escape: a customer id or sentence may hold [brackets] Rich would read as markup
        grid.add_row(escape(str(r.customer_id)), grade_names.get(r.account_grade, "-"),
                     "-" if _missing(r.weighted_score) else shown_score(r.weighted_score),
                     *(_score(getattr(r, f"{d}_score")) for d in DIMENSIONS), escape(getattr(r, f"sentence_{lang}") or "-"))
    return grid


def counts_line(card: pd.DataFrame, run: PublishedRun, grade: str | None, limit: int) -> str:
    """How many accounts of each grade the listing holds, and how many of them the grid shows."""
    from serving.scorecard import GRADES

    counts = card["account_grade"].value_counts()
    parts = [f"{int(counts.get(g, 0)):,} {g}" for g in GRADES if grade in (None, g)]
    return f"run {run.run_id}: {', '.join(parts)}; {min(limit, len(card)):,} of {len(card):,} accounts shown"


def _missing(x) -> bool:
    import math

    return x is None or (isinstance(x, float) and math.isnan(x))


def _score(x) -> str:
    return "-" if _missing(x) else f"{x:.0f}"
