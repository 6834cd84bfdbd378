"""The dashboard: composer, job table, detail pane, status line, keys.

The app routes keys and events; the job service does the work. Service events arrive on the
same asyncio loop and are turned into Textual messages, so every widget update happens in a
message handler.

Start-up is staged so the first frame comes as early as a bare Textual app's: the first frame
shows the status line, an empty table and the footer; then the newest jobs are read (in a
thread, from the head of the history) and shown, the detail pane is built, the whole history
is read (a slice at a time) and shown; then the request form, the costliest part of the
screen. Both panes are built in places kept at their size, and at once if a key asks for them
earlier.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from tui.ui import clipboard
from tui.core.catalog import VideoRequest
from tui.core.costs import PriceTable
from tui.core.config import ENV_KEY, Settings, styles_dir
from tui.core.events import DownloadFinished, DownloadProgress, JobChanged, JobRemoved, Notice, PollerState
from tui.core.records import Job
from tui.core.text import one_line
from tui.ui.widgets.detail import DetailPane, clean
from tui.ui.widgets.job_table import JobTable
from tui.ui.widgets.stats_panel import StatsPanel
from tui.ui.widgets.status_line import StatusLine
from tui.ui.glyphs import plain_screen

if TYPE_CHECKING:
    from tui.ui.screens.batch import BatchProgress
    from tui.ui.widgets.composer import Composer

WIDE_COLUMNS = 140
#: Jobs shown before the whole history is read: a few screens, read in milliseconds.
FIRST_GLIMPSE = 300
#: Seconds between clock ticks of the table in low-bandwidth mode (a tick rewrites every visible row's clock).
LOW_BANDWIDTH_TICK = 5.0
QUICK_FILTERS = {"1": None, "2": "pending", "3": "failed", "4": "completed"}


class ServiceEvent(Message):
    """A job-service event delivered as a Textual message."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class DownloadProgressed(Message):
    """Bytes arrived for a job's download; only the newest for each job matters."""

    def __init__(self, progress: DownloadProgress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DownloadProgressed) and message.progress.local_id == self.progress.local_id


class HistoryRead(Message):
    """The whole history, read in a thread before the job service is built."""

    def __init__(self, jobs: list[Job]) -> None:
        super().__init__()
        self.jobs = jobs
        #: Set once they are on screen (or will never be), for the reader to go on.
        self.shown = threading.Event()


class PollerStateChanged(Message):
    """Poller state only matters at its newest: older ones may be dropped."""

    def __init__(self, state: PollerState) -> None:
        super().__init__()
        self.state = state

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PollerStateChanged)


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


class HailuoApp(App[int]):
    TITLE = "hailuo-tui"
    CSS_PATH = [str(styles_dir() / "app.tcss"), str(styles_dir() / "job_table.tcss")]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
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
        Binding("v", "toggle_raw", "", show=False, id="app.raw"),
        Binding("escape", "back", "Back", show=False, id="app.back"),
    ]

    def __init__(self, settings: Settings, *, service_factory: Callable[[Settings], Any] | None = None,
                 on_started: Callable[["HailuoApp"], Any] | None = None, clock: Callable[[], float] = time.time,
                 poll: bool = True, freeze_history: bool = False) -> None:
        """`freeze_history`: this process is the dashboard's (run_app). Once the history is on
        screen, everything alive is moved out of the garbage collector's reach (`gc.freeze`):
        a full collection walks every object, 120 ms with 50,000 jobs, and would freeze the
        screen each time it ran. Not for tests, which run many apps in one process."""
        super().__init__()
        self.settings = settings
        self.service: Any = None
        self._service_factory = service_factory
        self._on_started = on_started
        self._clock = clock
        self._poll = poll
        self._freeze_history = freeze_history
        self._unsubscribe: Callable[[], None] | None = None
        self._submits_in_flight = 0
        from tui.core.repeats import RepeatGuard

        self.repeats = RepeatGuard(clock=clock)
        #: The batch run going on (or the last one), as the batch dialog shows it.
        self.batch: "BatchProgress | None" = None
        self._batch_running = False
        #: Downloads in progress, newest progress per job (local id).
        self.downloads: dict[str, DownloadProgress] = {}
        self._leaving = False
        self._built: dict[str, asyncio.Task] = {}
        self._signals: list[int] = []
        #: Set by run_app: leaves when the terminal goes away (tui.ui.lifecycle); None under Pilot.
        self.terminal_watch: Any = None
        self._started_at = clock()
        #: The whole history is in the table (the newest jobs may be shown before: `_history_loading`).
        self._history_shown = False
        self._history_loading = False
        self.ready = asyncio.Event()
        from tui.ui.session_signals import SessionSignals

        #: Notifications (terminal, desktop), the terminal title and the hooks of this session.
        self.signals = SessionSignals(self, settings, clock=clock)
        self.notifier = self.signals.notifier.desktop
        self.low_bandwidth = settings.low_bandwidth_on
        if self.low_bandwidth:
            self.animation_level = "none"
        #: The job `m` marked for `=`; by local id.
        self.marked: str | None = None
        #: Figures for the stats panel: built from the history the first time it is shown, then kept up to date.
        self.stats: Any = None
        self._stats_backlog: set[str] | None = None  # jobs changed while the history is being counted
        self._stats_timer: Any = None
        self._previews: Any = None
        self._preview_renderer: str | None = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The dashboard's keys act on the dashboard: not from under a dialog or the compare screen."""
        if action in _DASHBOARD_ACTIONS and len(self.screen_stack) > 1:
            return False
        return True

    def notify(self, message: str, *, title: str = "", severity: str = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Every toast is plain text: job ids, statuses, errors and template names come from the
        server or the user, so they are never parsed as markup (a stray "[/]" would even raise)
        nor shown with escapes — also when a widget's `notify()` passes its default `markup=True`."""
        super().notify(clean(message), title=clean(title), severity=severity, timeout=timeout, markup=False)

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # Layout classes first: set later, they would restyle every widget a second time.
        self._apply_width(self.size.width)
        yield StatusLine(id="status")
        with Horizontal(id="main"):
            # Its place is kept (same size) so nothing moves when the form arrives after the first frame.
            yield Static(id="composer-placeholder", classes="composer-pane")
            with Vertical(id="right"):
                filter_box = Input(placeholder="filter: id, prompt, model, status (Escape leaves)", compact=True,
                                   id="filter")
                filter_box.display = False  # until `/`
                yield filter_box
                yield JobTable(id="jobs", clock=self._clock, prices=PriceTable(self.settings.prices),
                               tick_interval=LOW_BANDWIDTH_TICK if self.low_bandwidth else 1.0)
                yield StatsPanel(id="stats")
                yield Static(id="detail-placeholder", classes="detail-pane")
        yield Footer()

    def on_mount(self) -> None:
        if self.settings.theme:
            try:
                self.theme = self.settings.theme
            except Exception:  # noqa: BLE001 - an unknown theme name must not stop the app
                self.notify(f"unknown theme {self.settings.theme!r}; using the default", severity="warning")
        if self.settings.keymap:
            self.set_keymap(dict(self.settings.keymap))
        status = self.query_one(StatusLine)
        status.host = self.settings.api_host
        status.key = self.settings.masked_key
        status.mode = "demo" if self.settings.demo else ""
        status.low_bandwidth = self.low_bandwidth
        if self.low_bandwidth:
            self._steady_cursors(self.screen)
        self.query_one(JobTable).focus()
        self._handle_signals()

    def on_ready(self) -> None:
        # The first frame is on screen: now the newest jobs (read from the head of the history
        # in a few milliseconds, here, so they make the very next frame), then the whole history
        # and the service in a thread.
        if self._service_factory is None:
            from tui.core.store import peek_newest

            try:
                newest = peek_newest(self.settings.db_path, limit=FIRST_GLIMPSE)
            except (OSError, ValueError):
                newest = None  # only a glimpse: the full read below says what is wrong
            if newest:
                self._show_jobs(newest, complete=False)
        self._open_service()

    async def composer(self) -> "Composer":
        """The request form, built once in its kept place (awaited by whatever needs it)."""
        from tui.ui.widgets.composer import Composer

        composer = await self._build_once("composer", lambda: Composer(
            id="composer", classes="composer-pane", allow_uncertain=self.settings.allow_uncertain_resolutions,
            prices=PriceTable(self.settings.prices)))
        if composer.disabled_reason is None and self.service is None:
            composer.disabled_reason = "opening the history…"
        if self.low_bandwidth:
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
        pane = await self._build_once("detail", lambda: DetailPane(
            id="detail", classes="detail-pane", clock=self._clock, prices=PriceTable(self.settings.prices),
            previews=self.previews, preview_mode=self.preview_renderer))
        return pane

    @property
    def preview_renderer(self) -> str:
        """How frames are drawn here ("kitty", "sixel", "blocks", "off"): the setting and the terminal."""
        if self._preview_renderer is None:
            import os

            from tui.ui.widgets.frame_strip import choose_renderer

            self._preview_renderer = choose_renderer(self.settings.preview, os.environ, web=self.is_web)
        return self._preview_renderer

    @property
    def previews(self) -> Any:
        """tui.core.previews.Previews for this dashboard (None when previews are off)."""
        if self._previews is None and self.settings.preview != "off":
            from tui.core.previews import Previews

            self._previews = Previews.for_settings(self.settings)
        return self._previews

    async def action_play(self) -> None:
        job = self._need_job()
        if job is not None:
            from tui.ui.play import play_job

            await play_job(self, job)

    async def _build_once(self, name: str, make: Callable[[], Any]) -> Any:
        task = self._built.get(name)
        if task is None:
            task = self._built[name] = asyncio.ensure_future(self._replace_placeholder(name, make()))
        return await asyncio.shield(task)

    async def _replace_placeholder(self, name: str, widget: Any) -> Any:
        placeholder = self.query_one(f"#{name}-placeholder")
        with self.batch_update():
            await placeholder.parent.mount(widget, before=placeholder)
            await placeholder.remove()
        if name == "composer" and self.service is not None:
            widget.disabled_reason = self.service.submit_disabled_reason
        elif name == "detail":
            widget.show_job(self.query_one(JobTable).selected_job, force=True)
        return widget

    def _built_now(self, name: str) -> Any:
        """A pane if it is built already (for what must not wait), else None."""
        task = self._built.get(name)
        return task.result() if task is not None and task.done() and not task.exception() else None

    def _handle_signals(self) -> None:
        """SIGHUP (the terminal went away) and SIGTERM: flush the history and leave cleanly."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError, AttributeError):
                continue  # not on this platform, or not the main thread
            self._signals.append(signum)
        if self.terminal_watch is not None:
            self.terminal_watch.start(self, loop, lambda code: self.call_later(self._leave, code))

    def _on_signal(self, signum: int) -> None:
        if self.terminal_watch is not None:
            self.terminal_watch.signalled(signum)
        self.call_later(self._leave, 128 + signum)

    def on_resize(self, event) -> None:
        self._apply_width(event.size.width)

    def _apply_width(self, width: int) -> None:
        narrow = width < WIDE_COLUMNS
        self.screen.set_class(narrow, "-narrow")
        self.screen.set_class(not narrow, "-wide")
        self.screen.set_class(plain_screen(), "-plain-glyphs")  # TERM=linux: ASCII borders (tui/ui/glyphs.py)

    # -- the service ----------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="open")
    def _open_service_thread(self) -> Any:
        # A large history takes a moment to read: off the event loop, so the first frame is not held.
        if self._service_factory is not None:
            return self._service_factory(self.settings)
        from tui.core.store import HistoryStore

        # The whole history, then the service (its HTTP client is a third of a second of
        # imports): the history is on screen before the service is built. The reader waits for
        # that frame (briefly): its work holds the interpreter, and the frame would wait too.
        store = HistoryStore.open(self.settings.db_path, read_only=self.settings.read_only)
        message = HistoryRead(store.all())
        if self.post_message(message):
            message.shown.wait(timeout=0.5)
        from tui.core.jobs import JobService

        return JobService.around(self.settings, store)

    def _open_service(self) -> None:
        self._open_service_thread()

    async def on_worker_state_changed(self, event) -> None:
        from textual.worker import WorkerState

        if event.worker.group == "stats":
            if event.state == WorkerState.SUCCESS:
                self._history_counted(event.worker.result)
            elif event.state == WorkerState.ERROR:
                self._stats_backlog = None
                self.notify(f"stats not counted: {clean(event.worker.error)}", severity="error", timeout=6)
            return
        if event.worker.group != "open":
            return
        if event.state == WorkerState.SUCCESS:
            await self._service_opened(event.worker.result)
        elif event.state == WorkerState.ERROR:
            message = clean(getattr(event.worker.error, "message", None) or event.worker.error)
            self.query_one(StatusLine).last_error = f"history not opened: {message}"
            (await self.composer()).disabled_reason = f"history not opened: {message}"
            await self.detail()
            self.ready.set()

    def on_history_read(self, message: HistoryRead) -> None:
        if not self._history_shown and self.is_running:
            self._show_jobs(message.jobs, complete=True)
        self.call_after_refresh(message.shown.set)

    def _show_jobs(self, jobs: list[Job], *, complete: bool) -> None:
        """Jobs read before the service exists: the newest few (`complete` False), then all."""
        self.query_one(JobTable).set_jobs(jobs)
        self._history_shown = complete
        self._history_loading = not complete
        self._show_activity()
        self.call_after_refresh(self.detail)

    async def _service_opened(self, service: Any) -> None:
        self.service = service
        self._unsubscribe = service.subscribe(self._forward)
        table = self.query_one(JobTable)
        if not self._history_shown:
            table.set_jobs(service.store.all())
            self._history_shown = True
        self._history_loading = False
        self._show_activity()
        await asyncio.sleep(0)  # the jobs get their frame before the form is built
        composer = await self.composer()
        composer.disabled_reason = service.submit_disabled_reason
        if self.read_only_reason is not None:
            self.query_one(StatusLine).mode = "demo · read-only" if self.settings.demo else "read-only"
        for notice in getattr(service.store, "notices", []) or []:
            self.notify(clean(notice), severity="warning", timeout=8)
        if not self.settings.has_key:
            self.notify(f"No API key: history is read-only. Set {ENV_KEY} and restart to submit.",
                        title="Read-only", severity="warning", timeout=10)
        if self._poll:
            await service.start()
        table.eta = service.eta
        self.signals.opened([job.local_id for job in service.store.pending()])
        self.query_one(StatusLine).state = service.poller_state
        (await self.detail()).show_job(table.selected_job, force=True)
        if self._on_started is not None:
            result = self._on_started(self)
            if asyncio.iscoroutine(result):
                await result
        if self._freeze_history:
            import gc

            gc.freeze()
        self.ready.set()

    def _forward(self, event: Any) -> None:
        # Emitted on this loop by the service: queue as messages so handlers run in order.
        if isinstance(event, PollerState):
            self.post_message(PollerStateChanged(event))
        elif isinstance(event, DownloadProgress):
            self.post_message(DownloadProgressed(event))
        else:
            self.post_message(ServiceEvent(event))

    def on_poller_state_changed(self, message: PollerStateChanged) -> None:
        if not self.is_running:
            return  # queued before the app began to close: its widgets are gone
        self.query_one(StatusLine).state = message.state

    def on_service_event(self, message: ServiceEvent) -> None:
        if not self.is_running:
            return  # queued before the app began to close: its widgets are gone
        event = message.event
        table = self.query_one(JobTable)
        if isinstance(event, JobChanged):
            table.upsert(event.job)
            if self.stats is not None:
                self.stats.update(event.job)
            elif self._stats_backlog is not None:
                self._stats_backlog.add(event.job.local_id)
            detail = self._built_now("detail")
            if detail is not None and detail.job is not None and detail.job.local_id == event.job.local_id:
                detail.show_job(event.job)
            elif detail is not None and detail.job is None:
                self._show_selected()
            self.signals.job_changed(event.job, ended_now=event.status_changed and event.job.is_finished
                                     and event.previous_status is not None)
        elif isinstance(event, JobRemoved):
            table.remove(event.local_id)
            self.signals.forgotten(event.local_id)
            self._show_selected()
            if self.stats is not None:
                self.stats.remove(event.local_id)
            elif self._stats_backlog is not None:
                self._stats_backlog.add(event.local_id)
            if self.marked == event.local_id:
                self._set_mark(None)
        elif isinstance(event, Notice):
            self.notify(event.message, severity=event.severity, timeout=8 if event.severity == "error" else 4)
            status = self.query_one(StatusLine)
            if event.severity == "error":
                status.last_error, status.last_error_topic = event.message, event.topic
            elif event.topic is not None and status.last_error_topic == event.topic:
                status.last_error, status.last_error_topic = None, None  # the problem it reported is over
        elif isinstance(event, DownloadFinished):
            self._download_finished(event)

    # -- downloads ----------------------------------------------------------------------------------
    def on_download_progressed(self, message: DownloadProgressed) -> None:
        if not self.is_running:
            return  # queued before the app began to close: its widgets are gone
        progress = message.progress
        if progress.local_id not in self.service_downloading():
            return  # a late update of a download that has ended
        self.downloads[progress.local_id] = progress
        detail = self._built_now("detail")
        if detail is not None:
            detail.set_download(progress.local_id, progress)
        self._show_activity()

    def service_downloading(self) -> set[str]:
        return getattr(self.service, "downloading", set()) if self.service is not None else set()

    def _download_finished(self, event: DownloadFinished) -> None:
        self.downloads.pop(event.local_id, None)
        detail = self._built_now("detail")
        if detail is not None:
            detail.set_download(event.local_id, None)
        self._show_activity()
        job = self.service.store.get(event.local_id) if self.service is not None else None
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
        parts = ["reading the history (newest shown)"] if self._history_loading else []
        if self.downloads:
            received = sum(p.received for p in self.downloads.values())
            totals = [p.total for p in self.downloads.values()]
            share = f" {100 * received // max(1, sum(totals))}%" if all(totals) else ""
            parts.append(f"{len(self.downloads)} downloading{share}")
        elif self.service_downloading():
            parts.append(f"{len(self.service_downloading())} downloading")
        if self._batch_running and self.batch is not None:
            parts.append(f"batch {len(self.batch.settled)}/{self.batch.rows}")
        self.query_one(StatusLine).activity = " · ".join(parts)

    def action_download(self) -> None:
        from tui.core.downloads import nothing_to_download

        job = self._need_job()
        if job is None or not self._service_ready():
            return
        reason = nothing_to_download(job)
        if reason is not None:
            self.notify(clean(reason), title="Nothing to download", severity="warning", timeout=5)
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
            await self.service.download(local_id)
        except DownloadError:
            pass  # told by the DownloadFinished event, like every other download

    # -- batch runs -----------------------------------------------------------------------------------
    def action_batch(self) -> None:
        if not self._service_ready():
            return
        from tui.ui.screens.batch import BatchScreen

        running = self.batch if self.batch is not None and (self._batch_running or self.batch.summary) else None
        self.push_screen(BatchScreen(store=self.service.store,
                                     allow_uncertain=self.settings.allow_uncertain_resolutions,
                                     submit_disabled=self.service.submit_disabled_reason,
                                     running=running, path=self.batch.path if self.batch else "",
                                     costs=self.service))

    def on_batch_screen_start(self, message: Any) -> None:  # BatchScreen.Start (imported when first used)
        from tui.ui.screens.batch import BatchProgress

        if self._batch_running:
            self.notify("a batch is running already; wait for it to end", severity="warning", timeout=4)
            return
        self.batch = BatchProgress(message.path, len(message.rows))
        self._batch_running = True
        self._run_batch(message.rows)
        self._batch_changed()

    @work(exit_on_error=False, group="batch")
    async def _run_batch(self, rows: list) -> None:
        from tui.core.batch import BatchRun

        progress = self.batch
        assert progress is not None

        def settled(outcome) -> None:
            progress.settled.append(outcome)
            self._batch_changed()

        run = BatchRun(self.service, rows, on_outcome=settled)
        try:
            progress.summary = await run.run()
        except Exception as exc:  # noqa: BLE001 - shown, never a crash
            progress.summary = run.summary()
            progress.summary.stopped = f"stopped: {clean(exc) or type(exc).__name__}"
        finally:
            self._batch_running = False
        summary = progress.summary
        self._batch_changed()
        self.notify(clean(summary.line()) + (f" — {clean(summary.stopped)}" if summary.stopped else ""),
                    title=f"Batch {clean(progress.path)}",
                    severity="information" if summary.exit_code() == 0 else "warning", timeout=12)

    def _batch_changed(self) -> None:
        self._show_activity()
        from tui.ui.screens.batch import BatchScreen

        if isinstance(self.screen, BatchScreen) and self.batch is not None:
            self.screen.show_progress(self.batch)

    def hook_failed(self, message: str) -> None:
        """A hook failed (the first time this session): on the status line, where it stays until cleared."""
        status = self.query_one(StatusLine)
        status.last_error, status.last_error_topic = message, "hooks"

    # -- selection --------------------------------------------------------------------------------
    @on(JobTable.Highlighted)
    def _highlighted(self, event: JobTable.Highlighted) -> None:
        self._show_selected()  # (before the pane is built, it shows the selected job when it is)

    @on(JobTable.Selected)
    async def _selected(self, event: JobTable.Selected) -> None:
        (await self.detail()).show_job(event.job)
        if self.screen.has_class("-narrow"):
            self.screen.add_class("-show-detail")
            self.query_one("#outputs").focus()

    def _show_selected(self, *, force: bool = False) -> None:
        detail = self._built_now("detail")
        if detail is not None:
            detail.show_job(self.query_one(JobTable).selected_job, force=force)

    @property
    def selected_job(self) -> Job | None:
        return self.query_one(JobTable).selected_job

    @property
    def read_only_reason(self) -> str | None:
        """Why this dashboard may not change the history (None when it may)."""
        if self.service is None:
            return "read-only mode (--read-only)" if self.settings.read_only else None
        return self.service.read_only_reason

    def _refused_in_read_only(self, what: str) -> bool:
        """Say why `what` is not done here, when the history is read-only."""
        reason = self.read_only_reason
        if reason is None:
            return False
        self.notify(f"{what} is off: {clean(reason)}", title="Read-only", severity="warning", timeout=6)
        return True

    def _service_ready(self) -> bool:
        """The job service is there (the newest jobs are shown a moment before it is)."""
        if self.service is None:
            self.notify("the history is still opening; try again in a moment", severity="warning", timeout=3)
        return self.service is not None

    def _need_job(self) -> Job | None:
        job = self.selected_job
        if job is None:
            self.notify("no job selected", severity="warning", timeout=3)
        return job

    # -- submitting ---------------------------------------------------------------------------------
    def on_composer_submitted(self, event: "Composer.Submitted") -> None:
        if self.service is None:
            event.composer.set_note("the history is still opening; try again in a moment", error=True)
            return
        request, composer = event.request, event.composer
        ago = self.repeats.since(request)
        if ago is None:
            self._send(request)
            return
        from tui.ui.screens.dialogs import RepeatSubmitScreen

        def answered(again: bool | None) -> None:
            if again:
                self._send(request)
            else:
                composer.set_note("not sent: the same request went out moments ago", error=False)
                self.notify("repeat dropped: nothing sent", timeout=3)

        composer.set_note("the same request went out moments ago: ctrl+s sends it again, Escape drops it")
        self.push_screen(RepeatSubmitScreen(
            f"Send the same request again? It went out {ago:.0f} s ago.",
            f"{one_line(request.model)} · {one_line(request.prompt, limit=60)}\n"
            "A second job is billed again. ctrl+s sends it again; Escape drops it."), answered)

    def _send(self, request: VideoRequest) -> None:
        # Recorded before the POST: a second ctrl+s during the first one's round trip is a repeat too.
        self.repeats.sent(request)
        self._submit(request)

    @work(exit_on_error=False, group="submit")
    async def _submit(self, request: VideoRequest) -> None:
        from tui.core.api.errors import ApiError, NetworkError, SubmitOutcomeUnknownError
        from tui.core.jobs import HistoryNotWritten, SubmitDisabled, SubmitFailed, ValidationFailed

        composer = await self.composer()
        self._submits_in_flight += 1
        what = f"{one_line(request.model)} · “{one_line(request.prompt, limit=40)}”"

        def not_sent(note: str) -> None:
            # Surely not billed: an identical request may go at once, and the draft stays a draft.
            self.repeats.forget(request)
            composer.set_note(note, error=True)
            self.notify(f"{what}\n{note}", title="Not sent", severity="error", timeout=8)

        try:
            job = await self.service.submit(request)
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
            self._submits_in_flight -= 1

    # -- actions ------------------------------------------------------------------------------------
    def action_help(self) -> None:
        from tui.ui.screens.dialogs import HelpScreen

        self.push_screen(HelpScreen(self.binding_rows()))

    def binding_rows(self) -> list[tuple[str, str, str]]:
        """(section, keys, description) for every binding of the screen, the app and the widgets."""
        rows: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for section, node in self._binding_sources(("Dashboard", "Jobs", "Composer", "Detail")):
            by_action: dict[str, tuple[list[str], str]] = {}
            for key, bindings in node._bindings.key_to_bindings.items():
                for binding in bindings:
                    if not binding.description or binding.id is None:
                        continue  # inherited scroll keys carry no id: they are not part of the product's keys
                    entry = by_action.setdefault(binding.action, ([], binding.description))
                    entry[0].append(_key_label(key))
            for action, (keys, description) in by_action.items():
                if (section, action) not in seen:
                    seen.add((section, action))
                    rows.append((section, ", ".join(keys), description))
        rows.append(("Dashboard", "ctrl+p", "Command palette"))
        return rows

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for section, node in self._binding_sources(("", "Jobs: ", "Composer: ", "Detail: ")):
            done: set[str] = set()
            for bindings in node._bindings.key_to_bindings.values():
                for binding in bindings:
                    if (not binding.description or binding.id is None or binding.action in done
                            or binding.action in ("back", "quit")):
                        continue
                    done.add(binding.action)
                    yield SystemCommand(f"{section}{binding.description}", f"key {_key_label(binding.key)}",
                                        _runner(node, binding.action))

    def _binding_sources(self, names: tuple[str, str, str, str]) -> list[tuple[str, Any]]:
        """(section name, node) of everything that has keys: the app, the table, the form, the detail."""
        nodes = (self, self.query_one(JobTable), self._built_now("composer"), self._built_now("detail"))
        return [(name, node) for name, node in zip(names, nodes) if node is not None]

    async def action_toggle_composer(self) -> None:
        await self.composer()
        screen = self.screen
        if screen.has_class("-narrow"):
            show = not screen.has_class("-show-composer")
            screen.set_class(show, "-show-composer")
            if show:
                self.query_one("#prompt").focus()
            else:
                self.query_one(JobTable).focus()
        else:
            self.query_one("#prompt").focus()

    async def action_submit(self) -> None:
        """Submit the composer's request from anywhere; its messages show beside its fields."""
        composer = await self.composer()
        if self._refused_in_read_only("Submit"):
            composer.set_note(clean(self.read_only_reason), error=True)
            return
        screen = self.screen
        if screen.has_class("-narrow") and not screen.has_class("-show-composer"):
            screen.add_class("-show-composer")
            self.query_one("#prompt").focus()
        await composer.action_submit()

    async def action_toggle_raw(self) -> None:
        (await self.detail()).action_toggle_raw()

    def action_toggle_detail(self) -> None:
        self.screen.toggle_class("-show-detail")

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

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
        screen = self.screen
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
        if self.service is not None:
            (self.service.pause if paused else self.service.resume)()
            self.query_one(StatusLine).state = self.service.poller_state
        self.notify("live updates paused (p resumes)" if paused else "live updates resumed", timeout=3)

    def action_refresh_job(self) -> None:
        job = self._need_job()
        if job is not None and self.service is not None:
            self.service.refresh(job.local_id)

    def action_refresh_all(self) -> None:
        if self.service is not None:
            self.service.refresh_all()
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
        if self.screen.has_class("-narrow"):
            self.screen.add_class("-show-composer")
        self.query_one("#prompt").focus()

    # -- compare two jobs -----------------------------------------------------------------------------
    def _set_mark(self, job: Job | None) -> None:
        self.marked = job.local_id if job is not None else None
        self.query_one(StatusLine).marked = job.short_id if job is not None else ""

    def action_mark(self) -> None:
        job = self._need_job()
        if job is None:
            return
        if self.marked == job.local_id:
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
        marked = self.service.store.get(self.marked) if self.service is not None and self.marked else None
        if marked is None:
            self.notify("mark a job with m first, then press = on another one", severity="warning", timeout=4)
            return
        if marked.local_id == job.local_id:
            self.notify("this is the marked job: select another one to compare with", severity="warning", timeout=4)
            return
        self.push_screen(CompareScreen(marked, job, now=self._clock(),
                                       previews=self.previews if self.preview_renderer != "off" else None))

    # -- stats ---------------------------------------------------------------------------------------
    def action_toggle_stats(self) -> None:
        show = not self.screen.has_class("-show-stats")
        self.screen.set_class(show, "-show-stats")
        if not show:
            if self._stats_timer is not None:
                self._stats_timer.stop()
                self._stats_timer = None
            return
        self._ensure_stats()
        self._render_stats()
        # Figures change with every poll and with the clock: redrawn once a second, never per event.
        self._stats_timer = self.set_interval(LOW_BANDWIDTH_TICK if self.low_bandwidth else 1.0, self._render_stats)

    def _ensure_stats(self) -> None:
        """Count the history once, in a thread (50,000 jobs take a few hundred ms); changes meanwhile are kept."""
        if self.stats is None and self._stats_backlog is None and self.service is not None:
            self._stats_backlog = set()
            self.query_one(StatsPanel).counting()
            self._count_history(list(self.service.store.all()))

    @work(thread=True, exit_on_error=False, group="stats")
    def _count_history(self, jobs: list[Job]) -> Any:
        from tui.core.costs import SpendLedger
        from tui.core.stats import JobStats

        ledger = SpendLedger(self.service.prices, session_start=self.service.session_start,
                             bill_failed=self.settings.bill_failed, session_jobs=self.service.session_jobs)
        stats = JobStats(session_start=self._started_at, spend=ledger)
        stats.reset(jobs)
        return stats

    def _history_counted(self, stats: Any) -> None:
        for local_id in self._stats_backlog or ():
            job = self.service.store.get(local_id)
            if job is None:
                stats.remove(local_id)
            else:
                stats.update(job)
        self._stats_backlog = None
        self.stats = stats
        self._render_stats()

    def _render_stats(self) -> None:
        self._ensure_stats()
        if self.stats is not None:
            eta = getattr(self.service, "eta", None)
            self.query_one(StatsPanel).show_stats(self.stats.snapshot(self._clock()),
                                                  eta.figures() if eta is not None else None)

    # -- prompt history and templates ----------------------------------------------------------------
    def _templates(self):
        from tui.core.templates import TemplateStore

        return TemplateStore(self.settings.templates_path, clock=self._clock)

    def on_composer_recall_requested(self, event: "Composer.RecallRequested") -> None:
        from tui.core.templates import TemplateError, recent_prompts
        from tui.ui.screens.prompts import PromptPicker

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
        entries = templates + recent_prompts(self.service.store.all())
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
            composer = self.query_one("#composer")
            composer.load(entry.request(composer.request))
            self._show_composer()
            what = f"template {clean(entry.name)!r}" if entry.is_template else "an earlier prompt"
            self.notify(f"{what} is in the form", timeout=3)

        self.push_screen(PromptPicker(entries, delete_template=delete, clock=self._clock), picked)

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

        self.push_screen(TemplateNameScreen(request.prompt, existing), named)

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
                    self.service.forget(job.local_id)
                except ReadOnlyRefused as exc:
                    self.notify(f"Forget is off: {clean(exc)}", title="Read-only", severity="warning", timeout=6)
                    return
                self.notify(f"{clean(job.short_id)} forgotten here; it stays on the server", timeout=4)

        from tui.ui.screens.dialogs import ConfirmScreen

        self.push_screen(ConfirmScreen(f"Forget job {clean(job.short_id)}?",
                                       "It is removed from this history only; it stays on the server."), answered)

    def action_open_output(self) -> None:
        job = self._need_job()
        if job is None:
            return
        detail = self._built_now("detail")
        url = (detail.selected_output if detail is not None and detail.job is job
               else (job.outputs[0] if job.outputs else None))
        if not url:
            self.notify("this job has no output yet", severity="warning", timeout=3)
            return
        clipboard.open_url(self, url)

    def copy_choices(self, job: Job) -> list[tuple[str, str]]:
        choices = [("id", f"Id  {job.display_id}")]
        if job.outputs:
            choices.append(("output", "First output URL"))
            if len(job.outputs) > 1:
                choices.append(("outputs", f"All {len(job.outputs)} output URLs"))
        choices.append(("request", "Request as JSON"))
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
            return json.dumps(job.request, indent=2, ensure_ascii=False), "the request as JSON"
        if choice == "curl" and job.server_id:
            return curl_command(self.settings, job.server_id), "the curl command"
        return None

    def action_copy(self) -> None:
        job = self._need_job()
        if job is None:
            return

        def chosen(choice: str | None) -> None:
            picked = self.copy_text_for(job, choice) if choice else None
            if picked is not None:
                clipboard.copy_text(self, clean(picked[0]) if choice != "request" else picked[0], picked[1])

        from tui.ui.screens.dialogs import CopyMenu

        self.push_screen(CopyMenu(self.copy_choices(job)), chosen)

    async def action_quit(self) -> None:
        from tui.ui.screens.dialogs import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.call_later(self._leave)

        if self._batch_running:
            self.push_screen(ConfirmScreen("A batch run is submitting. Quit anyway?",
                                           "Rows not sent yet stay unsent; run the file again to send them "
                                           "(rows already submitted are skipped)."), answered)
            return
        if self._submits_in_flight:
            self.push_screen(ConfirmScreen("A submit is in flight. Quit anyway?",
                                           "Its outcome will be recorded as unknown if it is cut off."), answered)
            return
        composer = self._built_now("composer")
        if composer is not None and composer.has_unsent_draft:
            self.push_screen(ConfirmScreen("The form holds an unsent draft. Quit anyway?",
                                           "Quitting loses what was typed; n or Escape goes back to it."), answered)
            return
        unwritten = getattr(getattr(self.service, "store", None), "last_write_error", None)
        if unwritten:
            self.push_screen(ConfirmScreen("The history could not be written. Quit anyway?",
                                           f"{clean(unwritten)}. Changes since then are only in memory: "
                                           "quitting now loses them (the jobs stay on the server)."), answered)
            return
        await self._leave()

    async def _leave(self, code: int = 0) -> None:
        if self._leaving:
            return
        self._leaving = True
        await self.close_service()
        self.exit(code)

    async def close_service(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.service is not None:
            try:
                await self.service.close()
            except Exception as exc:  # noqa: BLE001 - leaving must not fail
                self.log.error(f"closing the history failed: {exc!r}")

    async def on_unmount(self) -> None:
        await self.signals.closed()
        await self.close_service()
        if self._previews is not None:
            await self._previews.aclose()
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals.clear()


#: Actions of the dashboard's own keys (quit stays everywhere).
_DASHBOARD_ACTIONS = frozenset(
    binding.action.split("(")[0] for binding in HailuoApp.BINDINGS
    if isinstance(binding, Binding) and binding.action != "quit"
)


def _key_label(key: str) -> str:
    return {"question_mark": "?", "slash": "/", "escape": "Esc", "equals_sign": "="}.get(key, key)


def _runner(node: Any, action: str) -> Callable[[], Any]:
    async def run() -> None:
        await node.run_action(action)

    return run


def demo_app(demo_settings: Settings, seed: Callable[[Any], Any], *, read_only: bool = False,
             freeze_history: bool = False) -> HailuoApp:
    """The demo dashboard; read-only, its jobs are put in the history before it opens (it cannot write)."""
    if not read_only:
        return HailuoApp(demo_settings, on_started=seed, freeze_history=freeze_history)
    from tui.simulator.demo import seed_before_start

    seed_before_start(demo_settings, seed)
    return HailuoApp(demo_settings.with_changes(read_only=True), freeze_history=freeze_history)


def run_app(settings: Settings, *, demo: bool = False) -> int:
    """Run the dashboard until the user leaves, the terminal goes away or it crashes; returns
    the exit status (tui.ui.lifecycle: 129 after a hang-up, 70 after a crash, never 0 for either)."""
    if settings.low_bandwidth_on:
        from tui.ui.low_bandwidth import coalesce_repaints

        coalesce_repaints()
    from tui.ui.lifecycle import run_dashboard

    if demo:
        from tui.simulator.demo import demo_session

        with demo_session(settings) as (demo_settings, seed):
            return run_dashboard(demo_app(demo_settings, seed, read_only=settings.read_only, freeze_history=True))
    return run_dashboard(HailuoApp(settings, freeze_history=True))
