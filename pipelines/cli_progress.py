"""The terminal display of a run: one line per stage with its count and elapsed time.

Only in a terminal: piped output, CI logs and tests get no display (the summary follows as
before), since a live display would write cursor movements into them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from pipelines import progress


class StageDisplay:
    """Turns stage events into rich progress lines: spinner while running, a mark and its time when done."""

    def __init__(self, display: Progress) -> None:
        self.display = display
        self.rows: dict[str, TaskID] = {}

    def __call__(self, event: progress.StageEvent) -> None:
        row = self.rows.get(event.stage)
        if row is None:
            row = self.rows[event.stage] = self.display.add_task(event.stage, total=None, mark="", count="")
        if event.state == "counted":
            self.display.update(row, count=f"{event.done:,} {event.unit}")
        elif event.state in ("finished", "failed"):
            if event.state == "finished":
                self.display.update(row, total=1, completed=1, mark="[green]done[/]")
            else:
                self.display.update(row, mark="[red]failed[/]")
            self.display.stop_task(row)  # freezes its elapsed time


class StageMark(SpinnerColumn):
    """A spinner while the stage runs, a tick when it is done, a cross when it failed."""

    def render(self, task: Task):
        if "failed" in task.fields.get("mark", ""):
            return Text("✗", style="red")
        return super().render(task)


def progress_columns() -> tuple:
    return (StageMark(finished_text="[green]✓[/]"), TextColumn("{task.description}"),
            TextColumn("{task.fields[count]}"), TimeElapsedColumn(), TextColumn("{task.fields[mark]}"))


@contextlib.contextmanager
def stage_display(console: Console, title: str) -> Iterator[None]:
    """Show the run's stages while the block runs, in a terminal; nothing elsewhere."""
    if not console.is_terminal:
        yield
        return
    console.print(f"[bold]{title}[/]", highlight=False)
    with Progress(*progress_columns(), console=console) as display, progress.watching(StageDisplay(display)):
        yield
