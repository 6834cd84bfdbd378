"""The dashboard app: start-up, the job service, the session's state, quit.

The dashboard itself, its panes, keys and actions, is a screen (tui.ui.dashboard), returned by
`get_default_screen()`. The app builds the service and routes its events: they are emitted on
this loop and posted to the dashboard as typed messages (tui.ui.messages), so every widget
update happens in a message handler, in order.

Start-up is staged so the first frame comes as early as a bare Textual app's: the first frame
shows the status line, an empty table and the footer; then the newest jobs are read (in a
thread, from the head of the history) and shown, the detail pane is built, the whole history
is read (a slice at a time) and shown; then the request form, the costliest part of the
screen.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input, TextArea

from tui.core.config import ENV_KEY, Settings, styles_dir
from tui.ui.dashboard import DashboardScreen
from tui.ui.messages import HistoryRead, message_for
from tui.ui.format import clean

if TYPE_CHECKING:
    from tui.core.events import DownloadProgress
    from tui.ui.screens.batch import BatchProgress
    from tui.ui.widgets.composer import Composer
    from tui.ui.widgets.detail import DetailPane

#: Jobs shown before the whole history is read: a few screens, read in milliseconds.
FIRST_GLIMPSE = 300


class HailuoApp(App[int]):
    TITLE = "hailuo-tui"
    CSS_PATH = [str(styles_dir() / "app.tcss"), str(styles_dir() / "job_table.tcss")]

    #: Quit works on every screen; the dashboard's own keys are DashboardScreen's.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, settings: Settings, *, service_factory: Callable[[Settings], Any] | None = None,
                 on_started: Callable[["HailuoApp"], Any] | None = None, clock: Callable[[], float] = time.time,
                 poll: bool = True, freeze_history: bool = False) -> None:
        """`freeze_history`: this process is the dashboard's (run_app). The history is moved out
        of the garbage collector's reach (`gc.freeze`) as it is read, and once it is on screen
        everything else alive too:
        a full collection walks every object, 120 ms with 50,000 jobs, and would freeze the
        screen each time it ran. Not for tests, which run many apps in one process."""
        super().__init__()
        #: The dashboard screen (the default one), made before the app composes.
        self.dashboard = DashboardScreen(id="dashboard")
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

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            event.typed_at = self.focused  # where Textual is about to hand it (see _on_key)
        await super().on_event(event)

    async def _on_key(self, event: events.Key) -> None:
        # A key read in one burst with a key that moved the focus into a text field (`/` then
        # the filter) was handed to the widget focused before, and comes back up here unused:
        # it belongs to the field, not to the bindings (`x` would ask to forget a job).
        typed_at, focused = getattr(event, "typed_at", None), self.focused
        if (typed_at is not None and focused is not None and focused is not typed_at
                and isinstance(focused, (Input, TextArea)) and focused.screen is typed_at.screen):
            event.prevent_default()  # Textual's own handler (the bindings) is not run for it
            focused._forward_event(events.Key(event.key, event.character))
        # Otherwise Textual calls App._on_key after this one, as for every class that has it.

    def notify(self, message: str, *, title: str = "", severity: str = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Every toast is plain text: job ids, statuses, errors and template names come from the
        server or the user, so they are never parsed as markup (a stray "[/]" would even raise)
        nor shown with escapes — also when a widget's `notify()` passes its default `markup=True`."""
        super().notify(clean(message), title=clean(title), severity=severity, timeout=timeout, markup=False)

    def watch_theme(self, theme: str) -> None:
        """A theme picked (in the palette) after start is remembered for the next run."""
        if getattr(self, "_theme_restored", False):
            self._save_theme(theme)

    @work(thread=True, exit_on_error=False, group="ui-state")
    def _save_theme(self, theme: str) -> None:
        from tui.core.ui_state import save_theme, ui_state_path

        try:
            save_theme(ui_state_path(self.settings.state_dir), theme, self.settings.theme)
        except OSError as exc:
            self.call_from_thread(self.notify, f"the theme is not remembered: {exc.strerror or exc}",
                                  severity="warning", timeout=6)

    def get_default_screen(self) -> Screen:
        return self.dashboard

    def on_mount(self) -> None:
        from tui.core.ui_state import saved_theme, ui_state_path

        # The theme picked in the palette last time, unless the config's theme changed since.
        theme = saved_theme(ui_state_path(self.settings.state_dir), self.settings.theme) or self.settings.theme
        if theme:
            try:
                self.theme = theme
            except Exception:  # noqa: BLE001 - an unknown theme name must not stop the app
                self.notify(f"unknown theme {theme!r}; using the default", severity="warning")
        self._theme_restored = True
        if self.settings.keymap:
            self.set_keymap(dict(self.settings.keymap))
        self._handle_signals()

    def _report_keymap_problems(self) -> None:
        """Ids no binding has and keys bound twice are named, not silently applied: in a toast each,
        and the first on the status line (where it stays: the config is read again only at start)."""
        from tui.ui.keys import keymap_problems

        problems = keymap_problems(self.settings.keymap) if self.settings.keymap else []
        for problem in problems:
            self.notify(problem, title="Keymap", severity="warning", timeout=15)
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            self.dashboard.show_error(problems[0] + more, "keymap")

    def on_ready(self) -> None:
        self._report_keymap_problems()
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
                self.dashboard.show_jobs(newest, complete=False)
        self._open_service()

    async def composer(self) -> "Composer":
        """The dashboard's request form, built at once if it is not yet."""
        return await self.dashboard.composer()

    async def detail(self) -> "DetailPane":
        """The dashboard's detail pane, built at once if it is not yet."""
        return await self.dashboard.detail()

    @property
    def selected_job(self) -> Any:
        return self.dashboard.selected_job

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

    @property
    def read_only_reason(self) -> str | None:
        """Why this dashboard may not change the history (None when it may)."""
        if self.service is None:
            return "read-only mode (--read-only)" if self.settings.read_only else None
        return self.service.read_only_reason

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
        # Lazily: the dashboard opens few of the finished jobs it holds (see `LazyJob`).
        store = HistoryStore.open(self.settings.db_path, read_only=self.settings.read_only,
                                  freeze=self._freeze_history, lazy=True)
        message = HistoryRead(store.all())
        if self.post_message(message):
            message.shown.wait(timeout=0.5)
        if store.read_only:
            return store  # another process may own it and serve it: asked on the loop (_service_opened)
        from tui.core.jobs import JobService

        return JobService.around(self.settings, store)

    async def _service_for(self, store: Any) -> Any:
        """For a history this process could not open for writing: the owner's service when a
        process serves it (this dashboard then submits, forgets and downloads through it, and
        sees its changes as they happen; `--read-only` only follows them), else a read-only one."""
        from tui.core import share
        from tui.core.jobs import JobService

        if getattr(store, "held_elsewhere", False) or self.settings.read_only:
            try:
                owner = await share.find_owner(self.settings.db_path)
            except share.ShareRefused as exc:
                self.notify(clean(str(exc)), title="Not shared", severity="warning", timeout=10)
                owner = None
            if owner is not None:
                try:
                    service = await share.RemoteService.open(self.settings, owner, role="dashboard", store=store)
                except (share.NoOwner, share.OwnerGone):
                    service = None
                if service is not None:
                    service.read_only_mode = self.settings.read_only
                    store.notices[:] = [n for n in store.notices if "another hailuo-tui is writing" not in n]
                    store.notices.append(f"the history is owned by pid {owner.pid} ({owner.role}); this dashboard "
                                         "works through it" + (" (watching only)" if self.settings.read_only else ""))
                    return service
        return await asyncio.to_thread(JobService.around, self.settings, store)

    def _open_service(self) -> None:
        self._open_service_thread()

    async def on_worker_state_changed(self, event) -> None:
        from textual.worker import WorkerState

        if event.worker.group != "open":
            return
        if event.state == WorkerState.SUCCESS:
            if self._on_its_way_out:
                # Quit (or the terminal went) before the history finished opening: nothing is
                # left to show it on, but its lock and files are let go as on any exit. (A service
                # closes on the loop; a read-only history, handed over bare, closes at once.)
                closing = event.worker.result.close()
                if asyncio.iscoroutine(closing):
                    await closing
                return
            await self._service_opened(event.worker.result)
        elif event.state == WorkerState.ERROR and not self._on_its_way_out:
            await self.dashboard.service_failed(clean(getattr(event.worker.error, "message", None)
                                                      or event.worker.error))
            self.ready.set()

    @property
    def _on_its_way_out(self) -> bool:
        return self._leaving or not self.is_running or self.dashboard._closing or self.dashboard._closed

    def on_history_read(self, message: HistoryRead) -> None:
        if not self._history_shown and self.is_running:
            self.dashboard.show_jobs(message.jobs, complete=True)
        self.call_after_refresh(message.shown.set)

    async def _service_opened(self, service: Any) -> None:
        from tui.core.store import HistoryStore

        if isinstance(service, HistoryStore):
            service = await self._service_for(service)
        self.service = service
        self._unsubscribe = service.subscribe(self._forward)
        await self.dashboard.service_opened(service)
        for notice in getattr(service.store, "notices", []) or []:
            self.notify(clean(notice), severity="warning", timeout=8)
        if not self.settings.has_key:
            self.notify(f"No API key: history is read-only. Set {ENV_KEY} and restart to submit.",
                        title="Read-only", severity="warning", timeout=10)
        if self._poll:
            await service.start()
        if hasattr(service, "serve_others"):
            # This dashboard owns the history: the user's other terminals submit through it.
            await service.serve_others("dashboard")
        self.signals.opened([job.local_id for job in service.store.pending()])
        await self.dashboard.service_running(service)
        if self._on_started is not None:
            result = self._on_started(self)
            if asyncio.iscoroutine(result):
                await result
        if self._freeze_history:
            import gc

            gc.freeze()
        self.ready.set()

    def _forward(self, event: Any) -> None:
        # Emitted on this loop by the service: queued as messages so the handlers run in order.
        # A screen that has closed takes no more messages (post_message is then a no-op).
        message = message_for(event)
        if message is not None:
            self.dashboard.post_message(message)

    def on_batch_screen_start(self, message: Any) -> None:  # BatchScreen.Start (imported when first used)
        # A dialog is a screen of its own, a child of the app: the run it starts is the dashboard's.
        self.dashboard.start_batch(message)

    def hook_failed(self, message: str) -> None:
        """A hook failed (the first time this session): on the status line, where it stays until cleared."""
        self.dashboard.show_error(message, "hooks")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from self.dashboard.key_commands()

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
        # Jobs that are only in memory weigh more than a draft: that question comes first.
        unwritten = getattr(getattr(self.service, "store", None), "last_write_error", None)
        if unwritten:
            self.push_screen(ConfirmScreen("The history could not be written. Quit anyway?",
                                           f"{clean(unwritten)}. Changes since then are only in memory: "
                                           "quitting now loses them (the jobs stay on the server)."), answered)
            return
        composer = self.dashboard.built_now("composer")
        if composer is not None and composer.has_unsent_draft:
            self.push_screen(ConfirmScreen("The form holds an unsent draft. Quit anyway?",
                                           "Quitting loses what was typed; n or Escape goes back to it."), answered)
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
