"""The dashboard: composer, job table, detail pane, status line, keys.

The app routes keys and events; the job service does the work. Service events arrive on the
same asyncio loop and are turned into Textual messages, so every widget update happens in a
message handler.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import time
from typing import Any, Callable, ClassVar, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input

from tui import clipboard
from tui.catalog import VideoRequest
from tui.config import ENV_KEY, Settings, styles_dir
from tui.events import JobChanged, JobRemoved, Notice, PollerState
from tui.records import Job
from tui.screens.dialogs import ConfirmScreen, CopyMenu, HelpScreen
from tui.widgets.composer import Composer
from tui.widgets.detail import DetailPane, clean
from tui.widgets.job_table import JobTable
from tui.widgets.status_line import StatusLine

WIDE_COLUMNS = 140
QUICK_FILTERS = {"1": None, "2": "pending", "3": "failed", "4": "completed"}


class ServiceEvent(Message):
    """A job-service event delivered as a Textual message."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


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
        Binding("d", "toggle_detail", "Detail", show=False, id="app.detail"),
        Binding("escape", "back", "Back", show=False, id="app.back"),
    ]

    def __init__(self, settings: Settings, *, service_factory: Callable[[Settings], Any] | None = None,
                 on_started: Callable[["HailuoApp"], Any] | None = None, clock: Callable[[], float] = time.time,
                 poll: bool = True) -> None:
        super().__init__()
        self.settings = settings
        self.service: Any = None
        self._service_factory = service_factory
        self._on_started = on_started
        self._clock = clock
        self._poll = poll
        self._unsubscribe: Callable[[], None] | None = None
        self._submits_in_flight = 0
        self._leaving = False
        self._signals: list[int] = []
        self.ready = asyncio.Event()

    def notify(self, message: str, *, title: str = "", severity: str = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Every toast is plain text: job ids, statuses and errors come from the server, so
        they are never parsed as markup (a stray "[/]" would even raise) nor shown with escapes."""
        super().notify(clean(message), title=clean(title), severity=severity, timeout=timeout, markup=markup)

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="main"):
            yield Composer(id="composer", allow_uncertain=self.settings.allow_uncertain_resolutions)
            with Vertical(id="right"):
                yield Input(placeholder="filter: id, prompt, model, status (Escape leaves)", compact=True, id="filter")
                yield JobTable(id="jobs", clock=self._clock)
                yield DetailPane(id="detail", clock=self._clock)
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
        self.query_one("#filter", Input).display = False
        self._apply_width(self.size.width)
        self.query_one(JobTable).focus()
        composer = self.query_one(Composer)
        composer.disabled_reason = "opening the history…"
        self._handle_signals()
        self._open_service()

    def _handle_signals(self) -> None:
        """SIGHUP (the terminal went away) and SIGTERM: flush the history and leave cleanly."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError, AttributeError):
                continue  # not on this platform, or not the main thread
            self._signals.append(signum)

    def _on_signal(self, signum: int) -> None:
        self.call_later(self._leave, 128 + signum)

    def on_resize(self, event) -> None:
        self._apply_width(event.size.width)

    def _apply_width(self, width: int) -> None:
        narrow = width < WIDE_COLUMNS
        self.screen.set_class(narrow, "-narrow")
        self.screen.set_class(not narrow, "-wide")

    # -- the service ----------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="open")
    def _open_service_thread(self) -> Any:
        # A large history takes a moment to read: off the event loop, so the first frame is not held.
        factory = self._service_factory
        if factory is None:
            from tui.jobs import JobService

            factory = JobService.open
        return factory(self.settings)

    def _open_service(self) -> None:
        self._open_service_thread()

    async def on_worker_state_changed(self, event) -> None:
        from textual.worker import WorkerState

        if event.worker.group != "open":
            return
        if event.state == WorkerState.SUCCESS:
            await self._service_opened(event.worker.result)
        elif event.state == WorkerState.ERROR:
            message = clean(getattr(event.worker.error, "message", None) or event.worker.error)
            self.query_one(StatusLine).last_error = f"history not opened: {message}"
            self.query_one(Composer).disabled_reason = f"history not opened: {message}"
            self.ready.set()

    async def _service_opened(self, service: Any) -> None:
        self.service = service
        self._unsubscribe = service.subscribe(self._forward)
        table = self.query_one(JobTable)
        table.set_jobs(service.store.all())
        composer = self.query_one(Composer)
        composer.disabled_reason = service.submit_disabled_reason
        for notice in getattr(service.store, "notices", []) or []:
            self.notify(clean(notice), severity="warning", timeout=8)
        if not self.settings.has_key:
            self.notify(f"No API key: history is read-only. Set {ENV_KEY} and restart to submit.",
                        title="Read-only", severity="warning", timeout=10)
        if self._poll:
            await service.start()
        self.query_one(StatusLine).state = service.poller_state
        self._show_selected(force=True)
        if self._on_started is not None:
            result = self._on_started(self)
            if asyncio.iscoroutine(result):
                await result
        self.ready.set()

    def _forward(self, event: Any) -> None:
        # Emitted on this loop by the service: queue as messages so handlers run in order.
        if isinstance(event, PollerState):
            self.post_message(PollerStateChanged(event))
        else:
            self.post_message(ServiceEvent(event))

    def on_poller_state_changed(self, message: PollerStateChanged) -> None:
        self.query_one(StatusLine).state = message.state

    def on_service_event(self, message: ServiceEvent) -> None:
        event = message.event
        table = self.query_one(JobTable)
        if isinstance(event, JobChanged):
            table.upsert(event.job)
            detail = self.query_one(DetailPane)
            if detail.job is not None and detail.job.local_id == event.job.local_id:
                detail.show_job(event.job)
            elif detail.job is None:
                self._show_selected()
            if event.status_changed and event.job.is_finished and event.previous_status is not None:
                self._announce_end(event.job)
        elif isinstance(event, JobRemoved):
            table.remove(event.local_id)
            self._show_selected()
        elif isinstance(event, Notice):
            self.notify(event.message, severity=event.severity, timeout=8 if event.severity == "error" else 4)
            status = self.query_one(StatusLine)
            if event.severity == "error":
                status.last_error, status.last_error_topic = event.message, event.topic
            elif event.topic is not None and status.last_error_topic == event.topic:
                status.last_error, status.last_error_topic = None, None  # the problem it reported is over

    def _announce_end(self, job: Job) -> None:
        if job.is_success:
            self.notify(f"{clean(job.short_id)} completed", title="Job done", timeout=5)
        else:
            reason = clean(job.error or job.status)
            self.notify(f"{clean(job.short_id)} {clean(job.status)}: {reason}", title="Job ended",
                        severity="error", timeout=8)
        if self.settings.bell:
            self.bell()

    # -- selection --------------------------------------------------------------------------------
    @on(JobTable.Highlighted)
    def _highlighted(self, event: JobTable.Highlighted) -> None:
        self.query_one(DetailPane).show_job(event.job)

    @on(JobTable.Selected)
    def _selected(self, event: JobTable.Selected) -> None:
        self.query_one(DetailPane).show_job(event.job)
        if self.screen.has_class("-narrow"):
            self.screen.add_class("-show-detail")
            self.query_one("#outputs").focus()

    def _show_selected(self, *, force: bool = False) -> None:
        self.query_one(DetailPane).show_job(self.query_one(JobTable).selected_job, force=force)

    @property
    def selected_job(self) -> Job | None:
        return self.query_one(JobTable).selected_job

    def _need_job(self) -> Job | None:
        job = self.selected_job
        if job is None:
            self.notify("no job selected", severity="warning", timeout=3)
        return job

    # -- submitting ---------------------------------------------------------------------------------
    @on(Composer.Submitted)
    def _submit_requested(self, event: Composer.Submitted) -> None:
        if self.service is None:
            event.composer.set_note("the history is still opening; try again in a moment", error=True)
            return
        self._submit(event.request)

    @work(exit_on_error=False, group="submit")
    async def _submit(self, request: VideoRequest) -> None:
        from tui.api.errors import ApiError, NetworkError, SubmitOutcomeUnknownError
        from tui.jobs import HistoryNotWritten, SubmitDisabled, SubmitFailed, ValidationFailed

        composer = self.query_one(Composer)
        self._submits_in_flight += 1
        try:
            job = await self.service.submit(request)
        except ValidationFailed as exc:
            composer.show_errors(exc.errors)
            composer.set_note("not sent: fix the fields marked above", error=True)
        except (SubmitDisabled, HistoryNotWritten) as exc:
            composer.set_note(clean(exc), error=True)
        except SubmitFailed as exc:
            if isinstance(exc.error, SubmitOutcomeUnknownError):
                cause = exc.error.cause.message if exc.error.cause is not None else exc.message
                composer.set_note(f"outcome unknown ({clean(cause)}): not re-sent, as it may exist and be billed; "
                                  "check the job before submitting again", error=True)
            elif isinstance(exc.error, NetworkError):
                composer.set_note(f"not sent: {clean(exc.message)}", error=True)
            else:
                composer.set_note(f"refused: {clean(exc.message)}", error=True)
        except ApiError as exc:
            composer.set_note(f"refused: {clean(exc.message)}", error=True)
        except Exception as exc:  # noqa: BLE001 - shown beside the form, never a traceback
            composer.set_note(f"not sent: {clean(exc) or type(exc).__name__}", error=True)
        else:
            composer.set_note(f"sent as {clean(job.short_id)}; the form keeps its values for a variation")
            self.query_one(JobTable).select(job.local_id)
        finally:
            self._submits_in_flight -= 1

    # -- actions ------------------------------------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.binding_rows()))

    def binding_rows(self) -> list[tuple[str, str, str]]:
        """(section, keys, description) for every binding of the screen, the app and the widgets."""
        rows: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        sources: list[tuple[str, Any]] = [("Dashboard", self), ("Jobs", self.query_one(JobTable)),
                                          ("Composer", self.query_one(Composer)),
                                          ("Detail", self.query_one(DetailPane))]
        for section, node in sources:
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
        for section, node in (("", self), ("Jobs: ", self.query_one(JobTable)),
                              ("Composer: ", self.query_one(Composer)), ("Detail: ", self.query_one(DetailPane))):
            done: set[str] = set()
            for bindings in node._bindings.key_to_bindings.values():
                for binding in bindings:
                    if (not binding.description or binding.id is None or binding.action in done
                            or binding.action in ("back", "quit")):
                        continue
                    done.add(binding.action)
                    yield SystemCommand(f"{section}{binding.description}", f"key {binding.key}",
                                        _runner(node, binding.action))

    def action_toggle_composer(self) -> None:
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

    def action_submit(self) -> None:
        """Submit the composer's request from anywhere; its messages show beside its fields."""
        screen = self.screen
        if screen.has_class("-narrow") and not screen.has_class("-show-composer"):
            screen.add_class("-show-composer")
            self.query_one("#prompt").focus()
        self.query_one(Composer).action_submit()

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

    def action_clone(self) -> None:
        job = self._need_job()
        if job is None:
            return
        self.query_one(Composer).load(_request_of(job))
        if self.screen.has_class("-narrow"):
            self.screen.add_class("-show-composer")
        self.query_one("#prompt").focus()
        self.notify(f"request of {clean(job.short_id)} copied into the form", timeout=3)

    def action_forget(self) -> None:
        job = self._need_job()
        if job is None or self.service is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.service.forget(job.local_id)
                self.notify(f"{clean(job.short_id)} forgotten here; it stays on the server", timeout=4)

        self.push_screen(ConfirmScreen(f"Forget job {clean(job.short_id)}?",
                                       "It is removed from this history only; it stays on the server."), answered)

    def action_open_output(self) -> None:
        job = self._need_job()
        if job is None:
            return
        detail = self.query_one(DetailPane)
        url = detail.selected_output if detail.job is job else (job.outputs[0] if job.outputs else None)
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

        self.push_screen(CopyMenu(self.copy_choices(job)), chosen)

    async def action_quit(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.call_later(self._leave)

        if self._submits_in_flight:
            self.push_screen(ConfirmScreen("A submit is in flight. Quit anyway?",
                                           "Its outcome will be recorded as unknown if it is cut off."), answered)
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
        await self.close_service()
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals.clear()


def _key_label(key: str) -> str:
    return {"question_mark": "?", "slash": "/", "escape": "Esc"}.get(key, key)


def _runner(node: Any, action: str) -> Callable[[], Any]:
    async def run() -> None:
        await node.run_action(action)

    return run


def run_app(settings: Settings, *, demo: bool = False) -> int:
    """Run the dashboard until the user leaves; returns the exit code."""
    if demo:
        from tui.demo import demo_session

        with demo_session(settings) as (demo_settings, seed):
            app = HailuoApp(demo_settings, on_started=seed)
            result = app.run()
    else:
        app = HailuoApp(settings)
        result = app.run()
    return int(result or 0)
