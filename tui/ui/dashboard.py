"""The dashboard screen: composer, job table, detail pane, stats, status line, and their keys.

`HailuoApp.get_default_screen()` returns it. It owns the dashboard's keys and actions, lays
out the panes and shows what the job service reports (tui.ui.messages, posted here by the app).
The app keeps start-up, the service, the session's state (marks, downloads, batch, stats) and
quit. This screen's keys stop by themselves under a dialog or the compare screen.

Both panes are built after the first frame, in places kept at their size, and at once if a key
asks for them earlier (`composer()`, `detail()`).

Binding ids keep their "app." prefix: they are the names of the config's [keymap], a public
interface, and did not change when the keys moved from the app to this screen.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, OptionList, Static, TextArea

from tui.core.catalog import VideoRequest
from tui.core.config import ENV_KEY, Settings
from tui.core.costs import PriceTable
from tui.core.records import Job
from tui.core.text import one_line
from tui.ui import clipboard
from tui.ui.format import clean
from tui.ui.glyphs import plain_screen
from tui.ui.keys import in_force, key_label
from tui.ui.messages import DownloadEnded, JobForgotten, JobUpdated, NoticePosted, PollerStateChanged
from tui.ui.widgets.job_table import JobTable
from tui.ui.widgets.key_footer import KeyFooter
from tui.ui.widgets.stats_panel import StatsPanel
from tui.ui.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from tui.core.events import DownloadFinished
    from tui.ui.messages import DownloadProgressed
    from tui.ui.widgets.composer import Composer
    from tui.ui.widgets.detail import DetailPane

WIDE_COLUMNS = 140
#: Below this many rows the form drops its blank lines and shortens the prompt box, so that it
#: fits with its result line (80x24: 22 rows between the status line and the footer).
SHORT_ROWS = 32
#: Seconds between clock ticks of the table in low-bandwidth mode (a tick rewrites every visible row's clock).
LOW_BANDWIDTH_TICK = 5.0
QUICK_FILTERS = {"1": None, "2": "pending", "3": "failed", "4": "completed"}


def _request_of(job: Job) -> VideoRequest:
    data = dict(job.request or {})
    for key in ("image", "end_image"):
        if isinstance(data.get(key), dict):
            data[key] = data[key].get("source")
    return VideoRequest.from_dict(data)


def curl_command(settings: Settings, server_id: str) -> str:
    """The result query, with the key as an environment variable: the key itself never leaves."""
    url = f"{settings.base_url.rstrip('/')}/api/v3/predictions/{server_id}/result"
    header = f"Authorization: Bearer ${ENV_KEY}" if settings.auth_scheme == "bearer" else f"Authorization: ${ENV_KEY}"
    return f'curl -s {shlex.quote(url)} -H "{header}"'


class DashboardScreen(Screen[None]):
    """The dashboard. Session state lives on the app (`self.app`): this screen shows and acts on it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # The app's quit, repeated here so the footer lists it first; the app's own works on every screen.
        Binding("q", "app.quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("n", "toggle_composer", "New", id="app.new"),
        Binding("ctrl+s", "submit", "Submit", show=False, id="app.submit"),
        Binding("slash", "filter", "Filter", id="app.filter"),
        Binding("1", "quick_filter('1')", "Show all", show=False, id="app.filter-all"),
        Binding("2", "quick_filter('2')", "Show pending", show=False, id="app.filter-pending"),
        Binding("3", "quick_filter('3')", "Show failed", show=False, id="app.filter-failed"),
        Binding("4", "quick_filter('4')", "Show completed", show=False, id="app.filter-completed"),
        Binding("p", "pause", "Pause", id="app.pause"),
        Binding("r", "refresh_job", "Refresh", show=False, id="app.refresh"),
        Binding("R", "refresh_all", "Refresh all", show=False, id="app.refresh-all"),
        Binding("y", "copy", "Copy", id="app.copy"),
        Binding("c", "clone", "Clone", id="app.clone"),
        Binding("x", "forget", "Forget", show=False, id="app.forget"),
        Binding("a", "attach", "Attach ids", show=False, id="app.attach"),
        Binding("o", "open_output", "Open", show=False, id="app.open"),
        Binding("P", "play", "Play the clip", show=False, id="app.play"),
        Binding("m", "mark", "Mark for compare", show=False, id="app.mark"),
        Binding("equals_sign", "compare", "Compare with marked", show=False, id="app.compare"),
        Binding("t", "toggle_stats", "Stats panel", show=False, id="app.stats"),
        Binding("d", "download", "Download outputs", show=False, id="app.download"),
        Binding("b", "batch", "Batch run from a file", show=False, id="app.batch"),
        Binding("i", "toggle_detail", "Detail", show=False, id="app.detail"),
        # The detail pane's own `v`, from the table too (the pane rarely has the focus); no
        # description, so the help lists it once, under the pane.
        Binding("v", "toggle_raw", "", show=False, id="app.raw",
                tooltip="Raw JSON of the detail pane, from the table"),
        Binding("escape", "back", "Back", show=False, id="app.back"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: The panes built after the first frame ("composer", "detail"), each built once.
        self._built: dict[str, asyncio.Task] = {}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """For the footer only (it is this screen's, and stays visible under a dialog): the keys
        here cannot fire from under a dialog, so they are not listed there; quit can."""
        return self.app.screen is self or action == "app.quit"

    def on_mount(self) -> None:
        status = self.query_one(StatusLine)
        status.host = self.app.settings.api_host
        status.key = self.app.settings.masked_key
        status.mode = "demo" if self.app.settings.demo else ""
        status.low_bandwidth = self.app.low_bandwidth
        if self.app.low_bandwidth:
            self._steady_cursors(self)
        self.query_one(JobTable).focus()

    # -- what the service reports (posted here by the app) ----------------------------------------
    def show_jobs(self, jobs: list[Job], *, complete: bool) -> None:
        """Jobs read before the service exists: the newest few (`complete` False), then all."""
        self.query_one(JobTable).set_jobs(jobs)
        self.app._history_shown = complete
        self.app._history_loading = not complete
        self._show_activity()
        if complete:
            # Not while the rest is read: building the pane and loading its frames (the HTTP
            # client's import) would hold the interpreter the reader needs (100 ms at 50,000 jobs).
            self.call_after_refresh(self.detail)

    async def service_opened(self, service: Any) -> None:
        """The service is there: the whole history, the form, the poller's state."""
        table = self.query_one(JobTable)
        if not self.app._history_shown:
            table.set_jobs(service.store.all())
            self.app._history_shown = True
        self.app._history_loading = False
        self._show_activity()
        await asyncio.sleep(0)  # the jobs get their frame before the form is built
        composer = await self.composer()
        composer.disabled_reason = service.submit_disabled_reason
        if self.app.read_only_reason is not None:
            self.query_one(StatusLine).mode = "demo · read-only" if self.app.settings.demo else "read-only"

    async def service_running(self, service: Any) -> None:
        table = self.query_one(JobTable)
        table.eta = service.eta
        self.query_one(StatusLine).state = service.poller_state
        (await self.detail()).show_job(table.selected_job, force=True)

    async def service_failed(self, message: str) -> None:
        self.query_one(StatusLine).last_error = f"history not opened: {message}"
        (await self.composer()).disabled_reason = f"history not opened: {message}"
        await self.detail()

    def show_error(self, message: str, topic: str | None) -> None:
        """On the status line, where it stays until the problem of that topic is over."""
        status = self.query_one(StatusLine)
        status.last_error, status.last_error_topic = message, topic

    def on_poller_state_changed(self, message: PollerStateChanged) -> None:
        if not self.app.is_running:
            return  # queued before the app began to close: its widgets are gone
        self.query_one(StatusLine).state = message.state

    def on_job_updated(self, message: JobUpdated) -> None:
        if not self.app.is_running:
            return  # queued before the app began to close: its widgets are gone
        event = message.event
        self.query_one(JobTable).upsert(event.job)
        if self.app.stats is not None:
            self.app.stats.update(event.job)
        elif self.app._stats_backlog is not None:
            self.app._stats_backlog.add(event.job.local_id)
        detail = self.built_now("detail")
        if detail is not None and detail.job is not None and detail.job.local_id == event.job.local_id:
            detail.show_job(event.job)
        elif detail is not None and detail.job is None:
            self._show_selected()
        self.app.signals.job_changed(event.job, ended_now=event.status_changed and event.job.is_finished
                                     and event.previous_status is not None)

    def on_job_forgotten(self, message: JobForgotten) -> None:
        if not self.app.is_running:
            return  # queued before the app began to close: its widgets are gone
        local_id = message.event.local_id
        self.query_one(JobTable).remove(local_id)
        self.app.signals.forgotten(local_id)
        self._show_selected()
        if self.app.stats is not None:
            self.app.stats.remove(local_id)
        elif self.app._stats_backlog is not None:
            self.app._stats_backlog.add(local_id)
        if self.app.marked == local_id:
            self._set_mark(None)

    def on_notice_posted(self, message: NoticePosted) -> None:
        if not self.app.is_running:
            return  # queued before the app began to close: its widgets are gone
        event = message.event
        self.notify(event.message, severity=event.severity, timeout=8 if event.severity == "error" else 4)
        status = self.query_one(StatusLine)
        if event.severity == "error":
            status.last_error, status.last_error_topic = event.message, event.topic
        elif event.topic is not None and status.last_error_topic == event.topic:
            status.last_error, status.last_error_topic = None, None  # the problem it reported is over

    def on_download_ended(self, message: DownloadEnded) -> None:
        if not self.app.is_running:
            return  # queued before the app began to close: its widgets are gone
        self._download_finished(message.event)

    def on_worker_state_changed(self, event) -> None:
        from textual.worker import WorkerState

        if event.worker.group != "stats":
            return
        if event.state == WorkerState.SUCCESS:
            self._history_counted(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.app._stats_backlog = None
            self.notify(f"stats not counted: {clean(event.worker.error)}", severity="error", timeout=6)

    def compose(self) -> ComposeResult:
        # Layout classes first: set later, they would restyle every widget a second time.
        self._apply_size(self.app.size.width, self.app.size.height)
        yield StatusLine(id="status")
        with Horizontal(id="main"):
            # Its place is kept (same size) so nothing moves when the form arrives after the first frame.
            yield Static(id="composer-placeholder", classes="composer-pane")
            with Vertical(id="right"):
                filter_box = Input(placeholder="filter: id, prompt, model, status (Escape leaves)", compact=True,
                                   id="filter")
                filter_box.display = False  # until `/`
                yield filter_box
                yield JobTable(id="jobs", clock=self.app._clock, prices=PriceTable(self.app.settings.prices),
                               tick_interval=LOW_BANDWIDTH_TICK if self.app.low_bandwidth else 1.0,
                               coarse_clock=self.app.low_bandwidth)
                yield StatsPanel(id="stats")
                yield Static(id="detail-placeholder", classes="detail-pane")
        yield KeyFooter()

    async def composer(self) -> "Composer":
        """The request form, built once in its kept place (awaited by whatever needs it)."""
        from tui.ui.widgets.composer import Composer

        composer = await self._build_once("composer", lambda: Composer(
            id="composer", classes="composer-pane", allow_uncertain=self.app.settings.allow_uncertain_resolutions,
            prices=PriceTable(self.app.settings.prices)))
        if composer.disabled_reason is None and self.app.service is None:
            composer.disabled_reason = "opening the history…"
        if self.app.low_bandwidth:
            self._steady_cursors(composer)
        return composer

    def _steady_cursors(self, root: Any) -> None:
        """Low bandwidth: a blinking cursor repaints its cell twice a second, forever; keep it steady."""
        from textual.widgets import TextArea

        for widget in root.query("Input, TextArea"):
            if isinstance(widget, (Input, TextArea)):
                widget.cursor_blink = False

    async def detail(self) -> DetailPane:
        """The detail pane, built once in its kept place, showing the selected job."""
        from tui.ui.widgets.detail import DetailPane  # not before the first frame: 13 ms of imports

        pane = await self._build_once("detail", lambda: DetailPane(
            id="detail", classes="detail-pane", clock=self.app._clock, prices=PriceTable(self.app.settings.prices),
            previews=self.app.previews, preview_mode=self.app.preview_renderer,
            tick_interval=LOW_BANDWIDTH_TICK if self.app.low_bandwidth else 1.0))
        return pane

    async def action_play(self) -> None:
        job = self._need_job()
        if job is not None:
            from tui.ui.play import play_job

            await play_job(self.app, job)

    async def _build_once(self, name: str, make: Callable[[], Any]) -> Any:
        task = self._built.get(name)
        if task is None:
            task = self._built[name] = asyncio.ensure_future(self._replace_placeholder(name, make()))
        return await asyncio.shield(task)

    async def _replace_placeholder(self, name: str, widget: Any) -> Any:
        placeholder = self.query_one(f"#{name}-placeholder")
        with self.app.batch_update():
            await placeholder.parent.mount(widget, before=placeholder)
            await placeholder.remove()
        if name == "composer" and self.app.service is not None:
            widget.disabled_reason = self.app.service.submit_disabled_reason
        elif name == "detail":
            widget.show_job(self.query_one(JobTable).selected_job, force=True)
        return widget

    def built_now(self, name: str) -> Any:
        """A pane if it is built already (for what must not wait), else None."""
        task = self._built.get(name)
        return task.result() if task is not None and task.done() and not task.exception() else None

    def on_resize(self, event) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        narrow = width < WIDE_COLUMNS
        self.set_class(narrow, "-narrow")
        self.set_class(not narrow, "-wide")
        self.set_class(height < SHORT_ROWS, "-short")
        self.set_class(plain_screen(), "-plain-glyphs")  # TERM=linux: ASCII borders (tui/ui/glyphs.py)

    def on_download_progressed(self, message: DownloadProgressed) -> None:
        if not self.is_running:
            return  # queued before the app began to close: its widgets are gone
        progress = message.progress
        if progress.local_id not in self.service_downloading():
            return  # a late update of a download that has ended
        self.app.downloads[progress.local_id] = progress
        detail = self.built_now("detail")
        if detail is not None:
            detail.set_download(progress.local_id, progress)
        self._show_activity()

    def service_downloading(self) -> set[str]:
        return getattr(self.app.service, "downloading", set()) if self.app.service is not None else set()

    def _download_finished(self, event: DownloadFinished) -> None:
        self.app.downloads.pop(event.local_id, None)
        detail = self.built_now("detail")
        if detail is not None:
            detail.set_download(event.local_id, None)
        self._show_activity()
        job = self.app.service.store.get(event.local_id) if self.app.service is not None else None
        name = clean(job.short_id if job is not None else event.local_id)
        if event.error:
            self.notify(f"{name}: {clean(event.error)}", title="Download failed", severity="error", timeout=10)
            return
        saved = [clean(path) for path in event.paths]
        where = saved[0] if len(saved) == 1 else f"{len(saved)} files in {clean(str(self._folder_of(saved)))}"
        already = all(outcome == "already there" for outcome in event.outcomes)
        self.notify(f"{name} {'was already saved as' if already else 'saved to'} {where}", title="Downloaded",
                    timeout=8)

    @staticmethod
    def _folder_of(paths: list[str]) -> str:
        import os

        return os.path.dirname(paths[0]) if paths else ""

    def _show_activity(self) -> None:
        parts = ["reading the history (newest shown)"] if self.app._history_loading else []
        if self.app.downloads:
            received = sum(p.received for p in self.app.downloads.values())
            totals = [p.total for p in self.app.downloads.values()]
            share = f" {100 * received // max(1, sum(totals))}%" if all(totals) else ""
            parts.append(f"{len(self.app.downloads)} downloading{share}")
        elif self.service_downloading():
            parts.append(f"{len(self.service_downloading())} downloading")
        if self.app._batch_running and self.app.batch is not None:
            parts.append(f"batch {len(self.app.batch.settled)}/{self.app.batch.rows}")
        self.query_one(StatusLine).activity = " · ".join(parts)

    def action_download(self) -> None:
        from tui.core.downloads import nothing_to_download

        job = self._need_job()
        if job is None or not self._service_ready():
            return
        reason = nothing_to_download(job)
        if reason is not None:
            self.notify(f"{clean(job.short_id)}: {clean(reason)}", title="Nothing to download", severity="warning",
                        timeout=5)
            return
        if job.local_id in self.service_downloading():
            self.notify(f"{clean(job.short_id)} is being downloaded already", timeout=3)
            return
        self._download(job.local_id)
        self._show_activity()

    @work(exit_on_error=False, group="download")
    async def _download(self, local_id: str) -> None:
        from tui.core.downloads import DownloadError

        try:
            await self.app.service.download(local_id)
        except DownloadError:
            pass  # told by the DownloadFinished event, like every other download

    def action_batch(self) -> None:
        if not self._service_ready():
            return
        from tui.ui.screens.batch import BatchScreen

        running = self.app.batch if self.app.batch is not None and (self.app._batch_running or self.app.batch.summary) else None
        self.app.push_screen(BatchScreen(store=self.app.service.store,
                                     allow_uncertain=self.app.settings.allow_uncertain_resolutions,
                                     submit_disabled=self.app.service.submit_disabled_reason,
                                     running=running, path=self.app.batch.path if self.app.batch else "",
                                     costs=self.app.service))

    def start_batch(self, message: Any) -> None:
        """BatchScreen.Start, passed on by the app (a dialog's messages go to the app, not to this screen)."""
        from tui.ui.screens.batch import BatchProgress

        if self.app._batch_running:
            self.notify("a batch is running already; wait for it to end", severity="warning", timeout=4)
            return
        self.app.batch = BatchProgress(message.path, len(message.rows))
        self.app._batch_running = True
        self._run_batch(message.rows)
        self._batch_changed()

    @work(exit_on_error=False, group="batch")
    async def _run_batch(self, rows: list) -> None:
        from tui.core.batch import BatchRun

        progress = self.app.batch
        assert progress is not None

        def settled(outcome) -> None:
            progress.settled.append(outcome)
            self._batch_changed()

        run = BatchRun(self.app.service, rows, on_outcome=settled)
        try:
            progress.summary = await run.run()
        except Exception as exc:  # noqa: BLE001 - shown, never a crash
            progress.summary = run.summary()
            progress.summary.stopped = f"stopped: {clean(exc) or type(exc).__name__}"
        finally:
            self.app._batch_running = False
        summary = progress.summary
        self._batch_changed()
        self.notify(clean(summary.line()) + (f" — {clean(summary.stopped)}" if summary.stopped else ""),
                    title=f"Batch {clean(progress.path)}",
                    severity="information" if summary.exit_code() == 0 else "warning", timeout=12)

    def _batch_changed(self) -> None:
        self._show_activity()
        from tui.ui.screens.batch import BatchScreen

        if isinstance(self.app.screen, BatchScreen) and self.app.batch is not None:
            self.app.screen.show_progress(self.app.batch)

    @on(JobTable.Highlighted)
    def _highlighted(self, event: JobTable.Highlighted) -> None:
        self._show_selected()  # (before the pane is built, it shows the selected job when it is)

    @on(JobTable.Selected)
    async def _selected(self, event: JobTable.Selected) -> None:
        (await self.detail()).show_job(event.job)
        if self.has_class("-narrow"):
            self.add_class("-show-detail")
            self.query_one("#outputs", OptionList).focus()

    def _show_selected(self, *, force: bool = False) -> None:
        detail = self.built_now("detail")
        if detail is not None:
            detail.show_job(self.query_one(JobTable).selected_job, force=force)

    @property
    def selected_job(self) -> Job | None:
        return self.query_one(JobTable).selected_job

    def _refused_in_read_only(self, what: str) -> bool:
        """Say why `what` is not done here, when the history is read-only."""
        reason = self.app.read_only_reason
        if reason is None:
            return False
        self.notify(f"{what} is off: {clean(reason)}", title="Read-only", severity="warning", timeout=6)
        return True

    def _service_ready(self) -> bool:
        """The job service is there (the newest jobs are shown a moment before it is)."""
        if self.app.service is None:
            self.notify("the history is still opening; try again in a moment", severity="warning", timeout=3)
        return self.app.service is not None

    def _need_job(self) -> Job | None:
        job = self.selected_job
        if job is None:
            self.notify("no job selected", severity="warning", timeout=3)
        return job

    def on_composer_submitted(self, event: "Composer.Submitted") -> None:
        if self.app.service is None:
            event.composer.set_note("the history is still opening; try again in a moment", error=True)
            return
        request, composer, images = event.request, event.composer, event.images
        ago = self.app.repeats.since(request)
        if ago is None:
            self._send(request, images)
            return
        from tui.ui.screens.dialogs import RepeatSubmitScreen

        def answered(again: bool | None) -> None:
            if again:
                self._send(request, images)
            else:
                composer.set_note("not sent: the same request went out moments ago", error=False)
                self.notify("repeat dropped: nothing sent", timeout=3)

        composer.set_note("the same request went out moments ago: ctrl+s sends it again, Escape drops it")
        self.app.push_screen(RepeatSubmitScreen(
            f"Send the same request again? It went out {ago:.0f} s ago.",
            f"{one_line(request.model)} · {one_line(request.prompt, limit=60)}\n"
            "A second job is billed again. ctrl+s sends it again; Escape drops it."), answered)

    def _send(self, request: VideoRequest, images: Any = None) -> None:
        # Recorded before the POST: a second ctrl+s during the first one's round trip is a repeat too.
        self.app.repeats.sent(request)
        self._submit(request, images)

    @work(exit_on_error=False, group="submit")
    async def _submit(self, request: VideoRequest, images: Any = None) -> None:
        from tui.core.api.errors import ApiError, NetworkError, SubmitOutcomeUnknownError
        from tui.core.jobs import HistoryNotWritten, SubmitDisabled, SubmitFailed, ValidationFailed

        composer = await self.composer()
        self.app._submits_in_flight += 1
        what = f"{one_line(request.model)} · “{one_line(request.prompt, limit=40)}”"

        def not_sent(note: str) -> None:
            # Surely not billed: an identical request may go at once, and the draft stays a draft.
            self.app.repeats.forget(request)
            composer.set_note(note, error=True)
            self.notify(f"{what}\n{note}", title="Not sent", severity="error", timeout=8)

        try:
            job = await self.app.service.submit(request, images=images)
        except ValidationFailed as exc:
            composer.show_errors(exc.errors)
            not_sent("not sent: fix the fields marked above")
        except (SubmitDisabled, HistoryNotWritten) as exc:
            not_sent(clean(exc))
        except SubmitFailed as exc:
            if isinstance(exc.error, SubmitOutcomeUnknownError):
                cause = exc.error.cause.message if exc.error.cause is not None else exc.message
                note = (f"outcome unknown ({clean(cause)}): not re-sent, as it may exist and be billed; "
                        "check the job before submitting again")
                composer.mark_sent(request)
                composer.set_note(note, error=True)
                self.notify(f"{what}\n{note}", title="Outcome unknown", severity="error", timeout=12)
            elif isinstance(exc.error, NetworkError):
                not_sent(f"not sent: {clean(exc.message)}")
            else:
                not_sent(f"refused: {clean(exc.message)}")
        except ApiError as exc:
            not_sent(f"refused: {clean(exc.message)}")
        except Exception as exc:  # noqa: BLE001 - shown beside the form, never a traceback
            not_sent(f"not sent: {clean(exc) or type(exc).__name__}")
        else:
            composer.mark_sent(request)
            composer.set_note(f"sent as {clean(job.short_id)}; the form keeps its values for a variation")
            # Said in a toast too: at 80 columns the form may be hidden, and a toast shows at any size.
            self.notify(f"{clean(job.short_id)} · {what}", title="Sent", timeout=6)
            self.query_one(JobTable).select(job.local_id)
        finally:
            self.app._submits_in_flight -= 1

    def action_help(self) -> None:
        from tui.ui.screens.dialogs import HelpScreen

        self.app.push_screen(HelpScreen(self.binding_rows()))

    def binding_rows(self) -> list[tuple[str, str, str]]:
        """(section, keys, description) for every binding of the screen, the app and the widgets."""
        rows: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for section, node in self._binding_sources(("Dashboard", "Jobs", "Composer", "Detail")):
            by_action: dict[str, tuple[list[str], str]] = {}
            for key, bindings in in_force(node, self.app._keymap).key_to_bindings.items():
                for binding in bindings:
                    if not binding.description or binding.id is None:
                        continue  # inherited scroll keys carry no id: they are not part of the product's keys
                    entry = by_action.setdefault(binding.action, ([], binding.description))
                    entry[0].append(key_label(key))
            for action, (keys, description) in by_action.items():
                if (section, action) not in seen:
                    seen.add((section, action))
                    rows.append((section, ", ".join(keys), description))
        rows.append(("Dashboard", "ctrl+p", "Command palette"))
        return rows

    def key_commands(self) -> Iterable[SystemCommand]:
        """The command palette's entries: every described key of the dashboard, by what it does,
        with the keys in force (the config's [keymap] laid over the bindings)."""
        for section, node in self._binding_sources(("", "Jobs: ", "Composer: ", "Detail: ")):
            keys_of: dict[str, list[str]] = {}
            described: dict[str, Any] = {}
            for key, bindings in in_force(node, self.app._keymap).key_to_bindings.items():
                for binding in bindings:
                    if (not binding.description or binding.id is None
                            or binding.action in ("back", "app.quit")):
                        continue
                    keys_of.setdefault(binding.action, []).append(key_label(key))
                    described.setdefault(binding.action, binding)
            for action, binding in described.items():
                yield SystemCommand(f"{section}{binding.description}", f"key {', '.join(keys_of[action])}",
                                    _runner(node, action))

    def _binding_sources(self, names: tuple[str, str, str, str]) -> list[tuple[str, Any]]:
        """(section name, node) of everything that has keys: this screen (quit included), the table, the form, the detail."""
        nodes = (self, self.query_one(JobTable), self.built_now("composer"), self.built_now("detail"))
        return [(name, node) for name, node in zip(names, nodes) if node is not None]

    async def action_toggle_composer(self) -> None:
        await self.composer()
        screen = self
        if screen.has_class("-narrow"):
            show = not screen.has_class("-show-composer")
            screen.set_class(show, "-show-composer")
            if show:
                self.query_one("#prompt", TextArea).focus()
            else:
                self.query_one(JobTable).focus()
        else:
            self.query_one("#prompt", TextArea).focus()

    async def action_submit(self) -> None:
        """Submit the composer's request from anywhere; its messages show beside its fields."""
        composer = await self.composer()
        if self._refused_in_read_only("Submit"):
            composer.set_note(clean(self.app.read_only_reason), error=True)
            return
        screen = self
        if screen.has_class("-narrow") and not screen.has_class("-show-composer"):
            screen.add_class("-show-composer")
            self.query_one("#prompt", TextArea).focus()
        await composer.action_submit()

    async def action_toggle_raw(self) -> None:
        (await self.detail()).action_toggle_raw()

    def action_toggle_detail(self) -> None:
        self.toggle_class("-show-detail")

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        # At once, not by `focus()` (which queues it behind the keys already read): letters typed
        # in the same burst as `/` belong to the filter, not to the table's keys (`x` forgets).
        self.set_focus(box)
        self.query_one(JobTable).prepare_filter()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(JobTable).filter_text = event.value

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(JobTable).focus()

    def action_back(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus or box.display:
            if box.has_focus and box.value:
                box.value = ""
            else:
                box.value = ""
                box.display = False
            self.query_one(JobTable).focus()
            return
        screen = self
        if screen.has_class("-show-composer") or screen.has_class("-show-detail"):
            screen.remove_class("-show-composer", "-show-detail")
        self.query_one(JobTable).focus()

    def action_quick_filter(self, key: str) -> None:
        wanted = QUICK_FILTERS.get(key)
        self.query_one(JobTable).status_filter = wanted
        self.notify(f"showing {wanted or 'all'} jobs", timeout=2)

    def action_pause(self) -> None:
        table = self.query_one(JobTable)
        paused = not table.frozen
        table.frozen = paused
        if self.app.service is not None:
            (self.app.service.pause if paused else self.app.service.resume)()
            self.query_one(StatusLine).state = self.app.service.poller_state
        self.notify("live updates paused (p resumes)" if paused else "live updates resumed", timeout=3)

    def action_refresh_job(self) -> None:
        job = self._need_job()
        if job is not None and self.app.service is not None:
            self.app.service.refresh(job.local_id)

    def action_refresh_all(self) -> None:
        if self.app.service is not None:
            self.app.service.refresh_all()
            self.notify("refreshing every pending job", timeout=2)

    async def action_clone(self) -> None:
        if self._refused_in_read_only("Clone to submit"):
            return
        job = self._need_job()
        if job is None:
            return
        (await self.composer()).load(_request_of(job))
        self._show_composer()
        self.notify(f"request of {clean(job.short_id)} copied into the form", timeout=3)

    def _show_composer(self) -> None:
        if self.has_class("-narrow"):
            self.add_class("-show-composer")
        self.query_one("#prompt", TextArea).focus()

    def _set_mark(self, job: Job | None) -> None:
        self.app.marked = job.local_id if job is not None else None
        self.query_one(StatusLine).marked = job.short_id if job is not None else ""

    def action_mark(self) -> None:
        job = self._need_job()
        if job is None:
            return
        if self.app.marked == job.local_id:
            self._set_mark(None)
            self.notify(f"{clean(job.short_id)} unmarked", timeout=2)
            return
        self._set_mark(job)
        self.notify(f"{clean(job.short_id)} marked: select another job and press = to compare", timeout=4)

    def action_compare(self) -> None:
        from tui.ui.screens.compare import CompareScreen

        job = self._need_job()
        if job is None:
            return
        marked = self.app.service.store.get(self.app.marked) if self.app.service is not None and self.app.marked else None
        if marked is None:
            self.notify("mark a job with m first, then press = on another one", severity="warning", timeout=4)
            return
        if marked.local_id == job.local_id:
            self.notify("this is the marked job: select another one to compare with", severity="warning", timeout=4)
            return
        self.app.push_screen(CompareScreen(marked, job, now=self.app._clock(),
                                       previews=self.app.previews if self.app.preview_renderer != "off" else None))

    def action_toggle_stats(self) -> None:
        show = not self.has_class("-show-stats")
        self.set_class(show, "-show-stats")
        if not show:
            if self.app._stats_timer is not None:
                self.app._stats_timer.stop()
                self.app._stats_timer = None
            return
        self._ensure_stats()
        self._render_stats()
        # Figures change with every poll and with the clock: redrawn once a second, never per event.
        self.app._stats_timer = self.set_interval(LOW_BANDWIDTH_TICK if self.app.low_bandwidth else 1.0, self._render_stats)

    def _ensure_stats(self) -> None:
        """Count the history once, in a thread (50,000 jobs take a few hundred ms); changes meanwhile are kept."""
        if self.app.stats is None and self.app._stats_backlog is None and self.app.service is not None:
            self.app._stats_backlog = set()
            self.query_one(StatsPanel).counting()
            self._count_history(list(self.app.service.store.all()))

    @work(thread=True, exit_on_error=False, group="stats")
    def _count_history(self, jobs: list[Job]) -> Any:
        from tui.core.costs import SpendLedger
        from tui.core.stats import JobStats

        ledger = SpendLedger(self.app.service.prices, session_start=self.app.service.session_start,
                             bill_failed=self.app.settings.bill_failed, session_jobs=self.app.service.session_jobs)
        stats = JobStats(session_start=self.app._started_at, spend=ledger)
        stats.reset(jobs)
        return stats

    def _history_counted(self, stats: Any) -> None:
        for local_id in self.app._stats_backlog or ():
            job = self.app.service.store.get(local_id)
            if job is None:
                stats.remove(local_id)
            else:
                stats.update(job)
        self.app._stats_backlog = None
        self.app.stats = stats
        self._render_stats()

    def _render_stats(self) -> None:
        self._ensure_stats()
        if self.app.stats is not None:
            eta = getattr(self.app.service, "eta", None)
            self.query_one(StatsPanel).show_stats(self.app.stats.snapshot(self.app._clock()),
                                                  eta.figures() if eta is not None else None)

    def _templates(self):
        from tui.core.templates import TemplateStore

        return TemplateStore(self.app.settings.templates_path, clock=self.app._clock)

    def on_composer_recall_requested(self, event: "Composer.RecallRequested") -> None:
        from tui.core.templates import TemplateError, recent_prompts
        from tui.ui.screens.prompts import PromptPicker
        from tui.ui.widgets.composer import Composer

        if self._refused_in_read_only("Recalling a prompt"):
            return
        if not self._service_ready():
            return
        store = self._templates()
        try:
            templates = store.load()
        except TemplateError as exc:
            templates = []
            self.notify(clean(exc), title="Templates", severity="error", timeout=8)
        entries = templates + recent_prompts(self.app.service.store.all())
        if not entries:
            self.notify("no earlier prompts or templates yet", timeout=3)
            return

        def delete(entry) -> str | None:
            try:
                store.delete(entry.name)
            except TemplateError as exc:
                return str(exc)
            return None

        def picked(entry) -> None:
            if entry is None:
                return
            composer = self.query_one("#composer", Composer)
            composer.load(entry.request(composer.request))
            self._show_composer()
            what = f"template {clean(entry.name)!r}" if entry.is_template else "an earlier prompt"
            self.notify(f"{what} is in the form", timeout=3)

        self.app.push_screen(PromptPicker(entries, delete_template=delete, clock=self.app._clock), picked)

    def on_composer_save_template_requested(self, event: "Composer.SaveTemplateRequested") -> None:
        from tui.core.templates import TemplateError
        from tui.ui.screens.prompts import TemplateNameScreen

        if self._refused_in_read_only("Saving a template"):
            return
        store = self._templates()
        try:
            existing = [entry.name for entry in store.load()]
        except TemplateError as exc:
            self.notify(clean(exc), title="Templates", severity="error", timeout=8)
            return
        request = event.request

        def named(name: str | None) -> None:
            if not name:
                return
            try:
                _entry, replaced = store.save(name, request)
            except TemplateError as exc:
                self.notify(clean(exc), title="Templates", severity="error", timeout=8)
                return
            self.notify(f"template {clean(name)!r} {'replaced' if replaced else 'saved'} (ctrl+r recalls it)",
                        title="Templates", timeout=4)

        self.app.push_screen(TemplateNameScreen(request.prompt, existing), named)

    def action_forget(self) -> None:
        if self._refused_in_read_only("Forget"):
            return
        job = self._need_job()
        if job is None or not self._service_ready():
            return

        def answered(yes: bool | None) -> None:
            from tui.core.jobs import ReadOnlyRefused

            if yes:
                try:
                    self.app.service.forget(job.local_id)
                except ReadOnlyRefused as exc:
                    self.notify(f"Forget is off: {clean(exc)}", title="Read-only", severity="warning", timeout=6)
                    return
                self.notify(f"{clean(job.short_id)} forgotten here; it stays on the server", timeout=4)

        from tui.ui.screens.dialogs import ConfirmScreen

        self.app.push_screen(ConfirmScreen(f"Forget job {clean(job.short_id)}?",
                                       "It is removed from this history only; it stays on the server."), answered)

    def action_attach(self) -> None:
        if self._refused_in_read_only("Attach") or not self._service_ready():
            return
        from tui.ui.screens.attach import AttachScreen

        def answered(ids: list[str] | None) -> None:
            if ids:
                self._attach_ids(ids)

        self.app.push_screen(AttachScreen(), answered)

    @work(exit_on_error=False, group="attach")
    async def _attach_ids(self, ids: list[str]) -> None:
        from tui.core.api.errors import ApiError
        from tui.core.jobs import ReadOnlyRefused

        try:
            jobs = await self.app.service.attach(ids)
        except ReadOnlyRefused as exc:
            self.notify(f"Attach is off: {clean(exc)}", title="Read-only", severity="warning", timeout=6)
            return
        except ApiError as exc:
            self.notify(f"Not attached: {clean(exc.message)}", title="Attach", severity="error", timeout=8)
            return
        shown = ", ".join(clean(job.short_id) for job in jobs[:3]) + (f" and {len(jobs) - 3} more" if len(jobs) > 3 else "")
        self.notify(f"Attached {len(jobs)} job{'s' if len(jobs) != 1 else ''}: {shown}", title="Attach", timeout=5)

    def action_open_output(self) -> None:
        job = self._need_job()
        if job is None:
            return
        detail = self.built_now("detail")
        url = (detail.selected_output if detail is not None and detail.job is job
               else (job.outputs[0] if job.outputs else None))
        if not url:
            self.notify("this job has no output yet", severity="warning", timeout=3)
            return
        clipboard.open_url(self.app, url)

    def copy_choices(self, job: Job) -> list[tuple[str, str]]:
        choices = [("id", f"Id  {job.display_id}")]
        if job.outputs:
            choices.append(("output", "First output URL"))
            if len(job.outputs) > 1:
                choices.append(("outputs", f"All {len(job.outputs)} output URLs"))
        if not job.request.get("attached"):  # an attached job was not sent from here: no body to copy
            choices.append(("request", "Request body as sent (JSON)"))
        if job.server_id:
            choices.append(("curl", f"curl command for the result (key as ${ENV_KEY})"))
        return choices

    def copy_text_for(self, job: Job, choice: str) -> tuple[str, str] | None:
        if choice == "id":
            return job.display_id, f"id {job.display_id}"
        if choice == "output" and job.outputs:
            return job.outputs[0], "the output URL"
        if choice == "outputs" and job.outputs:
            return "\n".join(job.outputs), f"{len(job.outputs)} output URLs"
        if choice == "request":
            from tui.core.catalog import sent_body

            return json.dumps(sent_body(job.request), indent=2, ensure_ascii=False), "the request body as sent"
        if choice == "curl" and job.server_id:
            return curl_command(self.app.settings, job.server_id), "the curl command"
        return None

    def action_copy(self) -> None:
        job = self._need_job()
        if job is None:
            return

        def chosen(choice: str | None) -> None:
            picked = self.copy_text_for(job, choice) if choice else None
            if picked is not None:
                clipboard.copy_text(self.app, clean(picked[0]) if choice != "request" else picked[0], picked[1])

        from tui.ui.screens.dialogs import CopyMenu

        self.app.push_screen(CopyMenu(self.copy_choices(job)), chosen)


def _runner(node: Any, action: str) -> Callable[[], Any]:
    async def run() -> None:
        await node.run_action(action)

    return run
