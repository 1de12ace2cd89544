"""`custscore credit`: payment risk of a published run for credit control, or its open invoices at risk.

The scores are computed when a run is scored (serving/payment_risk.py) and published with it as
its `payment_risk` and `open_invoice_risk` tables; this command only reads them. Importing it
costs typer only; the command imports pandas and rich when it runs, never Prefect or MLflow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipelines.arguments import LANGUAGES, OUTPUT_SUFFIXES

if TYPE_CHECKING:
    import pandas as pd

    from serving.store import PublishedRun



def register(app: typer.Typer) -> None:
    """Add the `credit` command to the custscore command line."""
    app.command("credit")(credit)


def credit(
    run_id: Annotated[str | None, typer.Option("--run-id", help="A published run (default: the latest).")] = None,
    grade: Annotated[str | None, typer.Option("--grade", help="Only customers of credit grade A, B, C or D.")] = None,
    open_invoices: Annotated[bool, typer.Option("--open-invoices", help="List the open invoices at risk instead.")] = False,
    output: Annotated[Path | None, typer.Option("--output", help="Write the rows to .csv or .parquet.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the reasons: en or zh.")] = "en",
    limit: Annotated[int, typer.Option("--limit", help="Rows shown, riskiest first.")] = 20,
) -> None:
    """Payment risk (p_pay_late, credit grade A-D and why) per customer, or the open invoices most at risk."""
    from pipelines.cli import _checked, _fail, _prepare, console

    _checked(check_flags, grade, lang, limit, output)
    paths = _prepare()
    from serving.sink import open_sink

    store = open_sink(paths.store)
    try:
        run = store.run_metadata(run_id=run_id)
        frame = credit_rows(store, run, grade, open_invoices)
    except (LookupError, ValueError, OSError) as exc:
        _fail(str(exc))
    if output is not None:
        _checked(write_rows, frame, output)
    console.print(invoices_grid(frame, run, lang, limit) if open_invoices else customers_grid(frame, run, lang, limit))
    console.print(counts_line(frame, run, open_invoices, limit), soft_wrap=True, highlight=False)
    if output is not None:
        console.print(f"{len(frame):,} rows of run {run.run_id} (as of {run.as_of}) written to {output}")


def check_flags(grade: str | None, lang: str, limit: int, output: Path | None) -> None:
    """Refuse, before the store is opened, a grade or language that does not exist, a limit below one, a bad file type."""
    from pipelines.arguments import check_at_least, check_choice, check_output_suffix
    from serving.payment_risk import CREDIT_GRADES

    check_choice(grade, CREDIT_GRADES, "--grade")
    check_choice(lang, LANGUAGES, "--lang")
    check_at_least(limit, 1, "--limit")
    check_output_suffix(output, OUTPUT_SUFFIXES, "--output")


class NoPaymentRiskError(LookupError):
    """The run was published without a payment_risk (or open_invoice_risk) table."""


def credit_rows(store, run: PublishedRun, grade: str | None, open_invoices: bool) -> pd.DataFrame:
    """The run's payment risk per customer (one grade or all), or its open invoices, riskiest first."""
    from serving.payment_risk import OPEN_INVOICE_TABLE, PAYMENT_RISK_TABLE, credit_reader_frame

    name = OPEN_INVOICE_TABLE if open_invoices else PAYMENT_RISK_TABLE
    table = store.read_table(name, run_id=run.run_id)
    if table is None:
        why = ("the data had no invoices then, or the run was published before payment risk existed"
               if open_invoices else "it was published before payment risk existed")
        raise NoPaymentRiskError(f"run {run.run_id} (as of {run.as_of}) has no {name} table: {why}; score it again "
                                 "with `custscore run` on data with an invoices table")
    if open_invoices:
        rows = table if grade is None else table.loc[table["credit_grade"] == grade]
        return rows.sort_values(["p_paid_late", "amount_open", "invoice_id"], ascending=[False, False, True],
                                na_position="last").reset_index(drop=True)
    return credit_reader_frame(table, grade)


def write_rows(frame: pd.DataFrame, output: Path) -> None:
    """The rows as .parquet, or as .csv whose text cells a spreadsheet cannot run as formulas."""
    from pipelines.publishing import write_frame

    write_frame(frame, output)


def customers_grid(frame: pd.DataFrame, run: PublishedRun, lang: str, limit: int):
    from rich.markup import escape
    from rich.table import Table

    grid = Table(title=f"payment risk, run {run.run_id} (as of {run.as_of}), riskiest first", show_lines=True)
    for name in ("customer", "grade", "p_pay_late", "overdue", "open"):
        grid.add_column(name, justify="left" if name in ("customer", "grade") else "right")
    grid.add_column("why", overflow="fold")
    for r in frame.head(limit).itertuples():
        # escape: a customer id or sentence may hold [brackets] Rich would read as markup
        grid.add_row(escape(str(r.customer_id)), _text(r.credit_grade), _share(r.p_pay_late),
                     _money(r.overdue_open_amount), _money(r.open_invoice_amount),
                     escape(_text(getattr(r, f"reason_text_{lang}"))))
    return grid


def invoices_grid(frame: pd.DataFrame, run: PublishedRun, lang: str, limit: int):
    from rich.markup import escape
    from rich.table import Table

    grid = Table(title=f"open invoices at risk, run {run.run_id} (as of {run.as_of}), riskiest first", show_lines=True)
    for name in ("invoice", "customer", "grade", "open amount", "due", "days past due", "p_paid_late"):
        grid.add_column(name, justify="left" if name in ("invoice", "customer", "grade", "due") else "right")
    grid.add_column("why", overflow="fold")
    for r in frame.head(limit).itertuples():
        grid.add_row(escape(str(r.invoice_id)), escape(str(r.customer_id)), _text(r.credit_grade), _money(r.amount_open),
                     f"{r.due_at:%Y-%m-%d}", f"{math.floor(r.days_past_due):.0f}", _share(r.p_paid_late),
                     escape(_text(getattr(r, f"reason_{lang}"))))
    return grid


def counts_line(frame: pd.DataFrame, run: PublishedRun, open_invoices: bool, limit: int) -> str:
    """How many customers per grade (or open invoices and their amount) the listing holds, and how many are shown."""
    from serving.payment_risk import CREDIT_GRADES

    shown = f"{min(limit, len(frame)):,} of {len(frame):,} shown"
    if open_invoices:
        late = int((frame["p_paid_late"] >= 1.0).sum())
        return f"run {run.run_id}: {len(frame):,} open invoices, {frame['amount_open'].sum():,.0f} open, {late:,} already late; {shown}"
    counts = frame["credit_grade"].value_counts()
    parts = [f"{int(counts.get(g, 0)):,} {g}" for g in CREDIT_GRADES] + [f"{int(frame['credit_grade'].isna().sum()):,} not scored"]
    return f"run {run.run_id}: {', '.join(parts)}; {shown}"


def _share(x) -> str:
    return "-" if x is None or x != x else f"{x:.2f}"


def _money(x) -> str:
    return "-" if x is None or x != x else f"{x:,.0f}"


def _text(x) -> str:
    """A text cell; a missing one (None, or NaN once pandas read it) as a dash."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) or x == "" else str(x)
