"""The batch dialog: pick a .jsonl/.csv file, see every problem by row, or submit its rows and watch them go.

Reading and checking the file is `tui.core.batch` (in a thread: it reads images); the run itself
belongs to the app, so closing this dialog does not stop it and `b` shows it again.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, ProgressBar, Static

from tui.ui.format import clean

if TYPE_CHECKING:
    from tui.core.batch import BatchRow, BatchSummary, RowError, RowOutcome

BATCH_SUFFIXES = (".jsonl", ".ndjson", ".csv")


def complete_path(value: str) -> str | None:
    """`value` completed to a directory or a batch file in the file system, or None."""
    if not value:
        return None
    directory, prefix = os.path.split(os.path.expanduser(value))
    try:
        names = sorted(os.listdir(directory or "."))
    except OSError:
        return None
    candidates = []
    for name in names:
        if not name.startswith(prefix) or (name.startswith(".") and not prefix.startswith(".")):
            continue
        if os.path.isdir(os.path.join(directory or ".", name)):
            candidates.append(name + "/")
        elif name.lower().endswith(BATCH_SUFFIXES):
            candidates.append(name)
    if not candidates:
        return None
    common = os.path.commonprefix(candidates)
    completion = common if len(common) > len(prefix) else candidates[0]
    return value + completion[len(prefix):] if len(completion) > len(prefix) else None


class PathSuggester(Suggester):
    """Suggests the rest of a path (→ accepts it), listing the directory off the event loop."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(complete_path, value)


@dataclass
class BatchProgress:
    """A run as the dialog shows it; kept by the app while the run lasts."""

    path: str
    rows: int
    settled: list["RowOutcome"] = field(default_factory=list)
    summary: "BatchSummary | None" = None


def outcome_line(outcome: "RowOutcome") -> Text:
    job = outcome.job
    ident = job.short_id if job is not None and outcome.outcome != "would submit" else ""
    detail = outcome.message or outcome.row.request.prompt
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"row {outcome.row.row:<4}", style="bold")
    line.append(f"{outcome.outcome:<13}{ident:<14}")
    line.append(clean(detail).replace("\n", " "))
    return line


class BatchScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close", id="batch.close"),
        Binding("ctrl+s", "start", "Submit the rows", id="batch.submit", priority=True),
    ]

    class Start(Message):
        """Submit these rows (checked, none with a problem): the app runs them."""

        def __init__(self, path: str, rows: list["BatchRow"]) -> None:
            super().__init__()
            self.path = path
            self.rows = rows

    def __init__(self, *, store: Any, allow_uncertain: bool, submit_disabled: str | None,
                 running: BatchProgress | None = None, path: str = "", costs: Any = None) -> None:
        super().__init__(classes="dialog-screen")
        self.store = store
        #: The job service (its `prices` and `budget_refusal`): the total and the budget check.
        self.costs = costs
        self.allow_uncertain = allow_uncertain
        self.submit_disabled = submit_disabled
        self.running = running
        self.initial_path = path
        self.rows: list[BatchRow] = []
        self.checked_path = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog batch-dialog"):
            yield Label("Batch run", classes="dialog-title")
            yield Static(Text("A .jsonl or .csv file, one job per row; fields: model, scene, prompt, image, "
                              "end_image, duration, resolution, prompt_expansion. Every row is checked before "
                              "anything is sent; rows submitted before are skipped."), classes="dialog-detail")
            yield Input(value=self.initial_path, placeholder="path/to/rows.jsonl  (→ completes, Enter checks)",
                        suggester=PathSuggester(), id="batch-path")
            yield Static(Text(""), id="batch-headline")
            yield ProgressBar(id="batch-bar", show_eta=False)
            with VerticalScroll(id="batch-rows"):
                yield Static(Text(""), id="batch-report")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Check  enter", id="batch-check")
                yield Button("Submit  ctrl+s", variant="primary", id="batch-start", disabled=True)
                yield Button("Close  esc", id="batch-close")

    def on_mount(self) -> None:
        self.query_one("#batch-bar", ProgressBar).display = False
        if self.running is not None:
            self.show_progress(self.running)
        else:
            self.query_one("#batch-path", Input).focus()

    # -- checking --------------------------------------------------------------------------------
    @on(Input.Submitted, "#batch-path")
    @on(Button.Pressed, "#batch-check")
    def _check_requested(self) -> None:
        if self.running is not None and self.running.summary is None:
            return
        path = self.query_one("#batch-path", Input).value.strip()
        if not path:
            self._headline("type the path of a .jsonl or .csv file", error=True)
            return
        self._headline(f"checking {path}…")
        self.query_one("#batch-start", Button).disabled = True
        self._check(path)

    @work(thread=True, exclusive=True, group="batch-check", exit_on_error=False)
    def _check(self, path: str) -> None:
        from tui.core.batch import BatchFileError, plan, read_batch

        notices: list[str] = []  # text repaired where it entered (invalid UTF-8, lone surrogates)
        try:
            rows, errors = read_batch(path, allow_uncertain=self.allow_uncertain, notices=notices)
        except BatchFileError as exc:
            self.app.call_from_thread(self._headline, clean(exc), True)
            self.app.call_from_thread(self._report, Text(""))
            return
        outcomes = plan(self.store, rows) if not errors else []
        self.app.call_from_thread(self._checked, path, rows, errors, outcomes, notices)

    def _checked(self, path: str, rows: list["BatchRow"], errors: list["RowError"], outcomes: list["RowOutcome"],
                 notices: list[str] | None = None) -> None:
        warnings = [Text(f"warning: {clean(n)}") for n in notices or []]
        self.running = None
        self.query_one("#batch-bar", ProgressBar).display = False
        if errors:
            self.rows = []
            row_count = len({e.row for e in errors})
            self._headline(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in {row_count} "
                           f"row{'s' if row_count != 1 else ''}: nothing will be sent. Fix the file, then Enter "
                           "checks it again.", error=True)
            self._report(Text("\n").join([*warnings, *(Text(clean(str(e))) for e in errors)]))
            return
        self.rows, self.checked_path = rows, path
        to_send = sum(1 for o in outcomes if o.outcome == "would submit")
        skipped = len(outcomes) - to_send
        headline = f"{len(rows)} rows: {to_send} to submit, {skipped} submitted before (skipped)"
        refused = None
        if self.costs is not None:
            from tui.core.costs import batch_cost

            sending = [o.row.request for o in outcomes if o.outcome == "would submit"]
            headline += f"; {batch_cost(sending, self.costs.prices).line()}"
            # Checked here as well as when the run starts: a refused batch is never offered.
            refused = self.costs.budget_refusal(sending, batch=True)
        start = self.query_one("#batch-start", Button)
        start.label = f"Submit {to_send}  ctrl+s"
        start.disabled = not to_send or self.submit_disabled is not None or refused is not None
        if self.submit_disabled is not None:
            headline += f" — {self.submit_disabled}"
        elif refused is not None:
            headline += f" — {refused}"
        elif to_send:
            headline += " — ctrl+s submits them"
        self._headline(headline, error=self.submit_disabled is not None or refused is not None)
        self._report(Text("\n").join([*warnings, *(outcome_line(o) for o in outcomes)]))
        if not start.disabled:
            start.focus()

    # -- running ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#batch-start")
    def action_start(self) -> None:
        start = self.query_one("#batch-start", Button)
        if start.disabled or not self.rows:
            return
        start.disabled = True
        self.post_message(self.Start(self.checked_path, list(self.rows)))

    def show_progress(self, progress: BatchProgress) -> None:
        """The run moved on (called by the app)."""
        self.running = progress
        self.query_one("#batch-path", Input).value = progress.path
        self.query_one("#batch-start", Button).disabled = True
        bar = self.query_one("#batch-bar", ProgressBar)
        bar.display = True
        bar.update(total=progress.rows, progress=len(progress.settled))
        if progress.summary is None:
            self._headline(f"submitting {progress.path}: {len(progress.settled)} of {progress.rows} rows settled "
                           "(Escape closes this; the run goes on)")
            lines = [outcome_line(o) for o in progress.settled]
        else:
            self._headline(clean(progress.summary.line()) + (f" — {clean(progress.summary.stopped)}"
                                                            if progress.summary.stopped else ""),
                           error=progress.summary.exit_code() != 0)
            lines = [outcome_line(o) for o in progress.summary.outcomes]
        self._report(Text("\n").join(lines))

    # -- drawing ---------------------------------------------------------------------------------
    def _headline(self, text: str, error: bool = False) -> None:
        headline = self.query_one("#batch-headline", Static)
        headline.update(Text(text))
        headline.set_class(error, "-error")

    def _report(self, text: Text) -> None:
        self.query_one("#batch-report", Static).update(text)

    @on(Button.Pressed, "#batch-close")
    def _close(self) -> None:
        self.dismiss(None)

