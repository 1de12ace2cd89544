"""`custscore actions`: whom to offer a retention action first, within a budget, and why.

The ranking itself is serving/actions.py; this module reads the published run, the owner column
of the run's customers table, checks the flags and prints or writes the list. Importing it costs
typer only; the command imports pandas, DuckDB and rich when it runs, never Prefect or MLflow.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipelines.arguments import LANGUAGES, OUTPUT_SUFFIXES

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.config import CustscoreConfig
    from serving.actions import ActionPolicy
    from serving.store import PublishedRun



def register(app: typer.Typer) -> None:
    """Add the `actions` command to the custscore command line."""
    app.command("actions")(actions)


def actions(
    run_id: Annotated[str | None, typer.Option("--run-id", help="A published run (default: the latest).")] = None,
    budget: Annotated[float | None, typer.Option(
        "--budget", help="Customers to act on (count) or money for offers (money). Default: the config's actions.budget.")] = None,
    budget_kind: Annotated[str | None, typer.Option("--budget-kind", help="count or money (default: actions.budget_kind).")] = None,
    offer_cost: Annotated[float | None, typer.Option("--offer-cost", help="Cost of one offer (default: actions.offer_cost).")] = None,
    save_rate: Annotated[float | None, typer.Option(
        "--save-rate", help="Your estimate of the share of leavers an action keeps, in (0, 1] (default: actions.save_rate).")] = None,
    owner: Annotated[str | None, typer.Option(
        "--owner", help="A column of the run's customers table to group by, e.g. account_manager.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the list to .csv or .parquet.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the reasons: en or zh.")] = "en",
    show_sensitivity: Annotated[bool, typer.Option(
        "--sensitivity", help="Print how the list's size and expected gain change with the save rate.")] = False,
    data: Annotated[Path | None, typer.Option(
        "--data", help="The data folder or DuckDB file holding the customers table (default: the run's own).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config (default: configs/default.yaml).")] = None,
) -> None:
    """Rank customers by the expected net gain of a retention action and list those to call first, with why."""
    from pipelines.cli import _checked, _fail, _prepare, console
    from pipelines.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    policy = _checked(action_policy, cfg, budget, budget_kind, offer_cost, save_rate)
    _checked(check_flags, lang, output)
    paths = _prepare()
    from serving import actions as ranking
    from serving.sink import open_sink

    store = open_sink(paths.store)
    try:
        resolved, scores, explanations = ranking.read_run_inputs(store, run_id)
        run = store.run_metadata(run_id=resolved)
    except (LookupError, ValueError, OSError) as exc:
        _fail(str(exc))
    owners = None
    if owner is not None:
        source = _checked(run_data_source, run, data, cfg, paths.demo_data)
        owners = _checked(customer_owners, source, owner)
    chosen = ranking.action_list(scores, policy, explanations=explanations, owners=owners)
    if output is not None:
        _checked(write_actions, chosen, output)
    if show_sensitivity:
        console.print(sensitivity_grid(ranking.sensitivity(scores, policy), policy))
    else:
        console.print(actions_grid(chosen, run, lang))
        if owners is not None and not chosen.empty:
            console.print(owners_grid(ranking.owner_summary(chosen)))
    console.print(totals_line(chosen, policy, len(scores)), soft_wrap=True)
    if output is not None:
        console.print(f"{len(chosen):,} customers of run {run.run_id} (as of {run.as_of}) written to {output}")


def action_policy(cfg: CustscoreConfig, budget: float | None, budget_kind: str | None, offer_cost: float | None,
                  save_rate: float | None) -> ActionPolicy:
    """The config's `actions:` defaults with the flags given, each flag checked and named when refused."""
    from pipelines.arguments import check_budget, check_choice, check_not_negative, check_share
    from serving.actions import BUDGET_KINDS, ActionPolicy

    check_choice(budget_kind, BUDGET_KINDS, "--budget-kind")
    kind = budget_kind or cfg.actions.budget_kind
    check_budget(budget, kind, "--budget")
    check_not_negative(offer_cost, "--offer-cost")
    check_share(save_rate, "--save-rate")
    if budget is None and budget_kind is not None and budget_kind != cfg.actions.budget_kind:
        from pipelines.arguments import RunArgumentError

        unit = {"count": "customers", "money": "money for offers"}[cfg.actions.budget_kind]
        raise RunArgumentError(f"--budget-kind {budget_kind} needs --budget: the config's budget "
                               f"{_amount(cfg.actions.budget)} is {unit}; give the budget in {budget_kind}, "
                               f"e.g. --budget-kind {budget_kind} --budget 5000")
    flags = {"budget": budget, "budget_kind": budget_kind, "offer_cost": offer_cost, "save_rate": save_rate}
    settings = cfg.actions.model_dump() | {k: v for k, v in flags.items() if v is not None}
    return ActionPolicy(**settings)


def check_flags(lang: str, output: Path | None) -> None:
    from pipelines.arguments import check_choice, check_output_suffix

    check_choice(lang, LANGUAGES, "--lang")
    check_output_suffix(output, OUTPUT_SUFFIXES, "--output")


def run_data_source(run: PublishedRun, data: Path | None, cfg: CustscoreConfig, demo_root: Path) -> Path:
    """Where the run's customers table lives: --data, else the source the run recorded, else the config's.

    A run on the bundled demo data records its demo settings (older runs only a label naming
    customers and seed): its folder under the home's demo-data/ is found from them, so no
    config needs to be given.
    """
    from pipelines.arguments import RunArgumentError

    if data is not None:
        return Path(data)
    recorded = str(run.extra.get("data_source") or "")
    if recorded and Path(recorded).exists():
        return Path(recorded)
    demo = run_demo_folder(run, demo_root, cfg.demo.folder_name())
    if demo is not None:
        return demo
    if cfg.data.source is not None and Path(cfg.data.source).exists():
        return Path(cfg.data.source)
    if recorded.startswith(DEMO_LABEL):
        raise RunArgumentError(f"--owner: the demo data of run {run.run_id} ({recorded}) is not in {demo_root}; "
                               "rerun the run's command to generate it, or pass --data with the folder holding its "
                               "customers table")
    raise RunArgumentError(f"--owner: the data of run {run.run_id} ({recorded or 'not recorded'}) is not found here; "
                           "pass --data with the folder or DuckDB file holding its customers table")


DEMO_LABEL = "demo data"
_DEMO_LABEL = re.compile(r"demo data \((\d+) customers, seed (-?\d+)")


def run_demo_folder(run: PublishedRun, demo_root: Path, configured: str) -> Path | None:
    """The demo folder a run was made from, if it is a demo run and the folder is still in the home.

    `configured` (the folder name of the config's demo settings) decides between several
    folders an older run's label fits.
    """
    from pipelines.config import DemoConfig

    settings = run.extra.get("demo_data")
    if isinstance(settings, dict):
        folder = demo_root / DemoConfig(**settings).folder_name()
        return folder if folder.exists() else None
    match = _DEMO_LABEL.match(str(run.extra.get("data_source") or ""))
    if match is None:
        return None
    # A label without the end date: the folder is found when only one end was generated for them.
    customers, seed = match.groups()
    candidates = [p for p in demo_root.glob(f"n{customers}-s{seed}-*") if p.is_dir() and not p.name.endswith(".partial")]
    if len(candidates) == 1:
        return candidates[0]
    return next((p for p in candidates if p.name == configured), None)


def customer_owners(source: Path, column: str) -> pd.Series:
    """The owner column of a customers table (a .csv, .csv.gz or .parquet file in a folder, or a DuckDB table),
    as text indexed by customer id; column names match ignoring case and surrounding spaces."""
    import duckdb

    from features.sql_text import quote_ident
    from pipelines.arguments import RunArgumentError

    con = duckdb.connect()
    try:
        relation, where = _customers_relation(con, Path(source))
        names = [d[0] for d in con.execute(f"SELECT * FROM {relation} LIMIT 0").description]
        by_key = {n.strip().lower(): n for n in names}
        if column.strip().lower() not in by_key:
            raise RunArgumentError(f"--owner {column}: {where} has no column {column!r}; its columns are "
                                   f"{', '.join(names)}")
        if "customer_id" not in by_key:
            raise RunArgumentError(f"--owner {column}: {where} has no customer_id column; its columns are {', '.join(names)}")
        frame = con.execute(
            f"SELECT trim(CAST({quote_ident(by_key['customer_id'])} AS VARCHAR)) AS customer_id, "
            f"CAST({quote_ident(by_key[column.strip().lower()])} AS VARCHAR) AS owner FROM {relation}").fetchdf()
    finally:
        con.close()
    frame = frame.dropna(subset=["customer_id"]).drop_duplicates("customer_id")
    return frame.set_index("customer_id")["owner"]


def _customers_relation(con, source: Path) -> tuple[str, str]:
    """The SQL relation reading the customers table of a data source, and how to name it in a message."""
    from features.contract import CSV_SUFFIXES, DATABASE_SUFFIXES, PARQUET_SUFFIXES
    from features.sql_text import quote_literal
    from pipelines.arguments import RunArgumentError

    if source.is_dir():
        for path in sorted(source.iterdir()):
            name = path.name.lower()
            if name in {f"customers{s}" for s in CSV_SUFFIXES}:
                return f"read_csv({quote_literal(str(path))}, all_varchar = true, header = true)", f"file {path}"
            if name in {f"customers{s}" for s in PARQUET_SUFFIXES}:
                return f"read_parquet({quote_literal(str(path))})", f"file {path}"
        raise RunArgumentError(f"--owner: the data folder {source} has no customers table (customers.csv or "
                               "customers.parquet); an owner column lives there")
    if source.suffix.lower() in DATABASE_SUFFIXES and source.exists():
        con.execute(f"ATTACH {quote_literal(str(source))} AS src (READ_ONLY)")
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'src'").fetchall()]
        found = [t for t in tables if t.strip().lower() == "customers"]
        if not found:
            raise RunArgumentError(f"--owner: the database {source} has no customers table (tables: {', '.join(tables)})")
        return f"src.{found[0]}", f"table {found[0]} of {source}"
    raise RunArgumentError(f"--owner: {source} is neither a data folder nor a DuckDB file; pass --data with one")


def write_actions(frame: pd.DataFrame, output: Path) -> None:
    """The list as .parquet, or as .csv whose text cells a spreadsheet cannot run as formulas."""
    from features.safe_csv import safe_text_frame
    from pipelines.faults import writing

    output = Path(output)
    with writing(output, "the action list", "the file is incomplete: delete it"):
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix.lower() == ".parquet":
            frame.to_parquet(output, index=False)
        else:
            safe_text_frame(frame).to_csv(output, index=False)


def actions_grid(chosen: pd.DataFrame, run: PublishedRun, lang: str):
    from rich.markup import escape
    from rich.table import Table

    grid = Table(title=f"retention actions, run {run.run_id} (as of {run.as_of}), highest expected gain first",
                 show_lines=True)
    columns = ["#", *(["owner"] if "owner" in chosen else []), "customer", "p_churn", "CLV", "expected gain"]
    for name in columns:
        grid.add_column(name, justify="right" if name in ("#", "p_churn", "CLV", "expected gain") else "left")
    grid.add_column("reason to call", overflow="fold")
    for r in chosen.itertuples():
        # escape: an owner, id or reason may hold [brackets] Rich would read as markup
        grid.add_row(str(r.rank), *([escape(r.owner)] if "owner" in chosen else []), escape(r.customer_id),
                     f"{r.p_churn:.2f}", f"{r.value_at_stake:,.0f}", f"{r.expected_gain:,.0f}",
                     escape(getattr(r, f"reason_to_call_{lang}") or "-"))
    return grid


def owners_grid(summary: pd.DataFrame):
    from rich.markup import escape
    from rich.table import Table

    grid = Table("owner", "customers", "expected gain", "offer cost", title="by owner")
    for r in summary.itertuples():
        grid.add_row(escape(str(r.owner)), f"{r.customers:,}", f"{r.expected_gain:,.0f}", f"{r.offer_cost:,.0f}")
    return grid


def sensitivity_grid(table: pd.DataFrame, policy: ActionPolicy):
    from rich.table import Table

    grid = Table("save rate", "customers", "expected gain", "offer cost", "expected saved value",
                 "with a gain", "gain beyond budget",
                 title=f"expected gain by save rate (budget {_amount(policy.budget)} {policy.budget_kind}, "
                       f"offer cost {_amount(policy.offer_cost)})")
    for r in table.itertuples():
        mark = " (set)" if abs(r.save_rate - policy.save_rate) < 1e-12 else ""
        grid.add_row(f"{r.save_rate:.2f}{mark}", f"{r.customers:,}", f"{r.total_expected_gain:,.0f}",
                     f"{r.total_offer_cost:,.0f}", f"{r.total_expected_saved_value:,.0f}", f"{r.customers_with_gain:,}",
                     f"{r.gain_beyond_budget:,.0f}")
    return grid


def totals_line(chosen: pd.DataFrame, policy: ActionPolicy, scored: int) -> str:
    """What the list adds up to, and the assumption it rests on."""
    return (f"{len(chosen):,} of {scored:,} customers chosen: expected gain {chosen['expected_gain'].sum():,.0f} "
            f"for offers costing {chosen['offer_cost'].sum():,.0f} (budget {_amount(policy.budget)} {policy.budget_kind}). "
            f"The save rate {policy.save_rate:g} is your estimate, not a measurement: the list is only as good as it "
            "(see --sensitivity).")


def _amount(x: float) -> str:
    """A flag's amount as typed: 5,000 rather than 5000.0 or 5e+03; cents kept where there are any."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"
