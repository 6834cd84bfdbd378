"""What the dashboard tells the operator who is looking elsewhere: the end of jobs, through the
terminal (also over SSH and tmux) or the desktop, the terminal title, and the user's hooks.

The app hands it every job change; it keeps the session's tally (tui.core.session) and:
- a round of one job is announced as that job (a toast, and a notification through the
  channel `notify` chose); a round of many is announced once, when its last job ends
  ("12 done · 10 completed · 2 failed · 4m12s"), failures still getting a toast each;
- the title shows `hailuo · 3▶ 2✓ 1✗` and is put back on exit; OSC 9;4 shows the round's
  progress in the tab where the terminal supports it;
- `on_complete` / `on_fail` hooks run in a thread; a failing one is shown once on the status line;
- inside tmux with `allow-passthrough` off, one hint says how to let notifications through.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, Callable

from tui.core import terminal_seq as seq
from tui.core.config import Settings
from tui.core.hooks import HookRunner
from tui.core.session import RoundEnded, SessionTally
from tui.ui.notify import DesktopNotifier, TerminalNotifier, tmux_passthrough_on

if TYPE_CHECKING:
    from tui.ui.app import HailuoApp


def _short_prompt(prompt: str) -> str:
    return prompt if len(prompt) <= 80 else prompt[:79] + "…"


class SessionSignals:
    def __init__(self, app: "HailuoApp", settings: Settings, *, clock: Callable[[], float],
                 env: dict[str, str] | None = None, write: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.settings = settings
        self._clock = clock
        self._env = dict(os.environ if env is None else env)
        self.tally = SessionTally()
        desktop = DesktopNotifier(enabled=settings.desktop_notifications, env=self._env)
        self.notifier = TerminalNotifier(settings.notify, write or self._write_to_terminal, env=self._env,
                                         desktop=desktop)
        self.hooks = HookRunner(on_complete=settings.on_complete, on_fail=settings.on_fail,
                                log_path=settings.state_dir / "hooks.log", timeout=settings.hook_timeout,
                                key=settings.api_key, env=self._env)
        self._hook_tasks: set[asyncio.Task] = set()
        #: What was written last (the title is rewritten only when it changes).
        self.title: str | None = None

    def _write_to_terminal(self, text: str) -> None:
        driver = getattr(self.app, "_driver", None)
        if driver is not None and not self.app.is_headless:
            driver.write(text)
            driver.flush()

    # -- life ---------------------------------------------------------------------------------
    def opened(self, pending_ids: list[str]) -> None:
        self.tally.start_with(pending_ids, self._clock())
        self._show_title()
        if self.notifier.in_tmux and self.notifier.kind.startswith("osc"):
            asyncio.get_running_loop().create_task(self._check_passthrough())

    async def _check_passthrough(self) -> None:
        on = await asyncio.to_thread(tmux_passthrough_on, self._env)
        if on is False and self.app.is_running:
            self.app.notify(seq.passthrough_hint(), title="Notifications", severity="warning", timeout=10)

    async def closed(self) -> None:
        self.notifier.restore()
        for task in list(self._hook_tasks):
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=1.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - leaving: a slow hook finishes alone
                pass

    # -- jobs ---------------------------------------------------------------------------------
    def job_changed(self, job: Any, *, ended_now: bool) -> None:
        ended = self.tally.seen(job, self._clock())
        if ended_now:
            self._job_ended(job, ended)
        self._show_title()

    def forgotten(self, local_id: str) -> None:
        self.tally.forget(local_id)
        self._show_title()

    def _show_title(self) -> None:
        if self.settings.terminal_title:
            title = seq.state_title(len(self.tally.running), self.tally.completed, self.tally.failed)
            if title != self.title:
                self.title = title
                self.notifier.set_title(title)
        self.notifier.progress(self.tally.round_share_done)

    def _job_ended(self, job: Any, ended: RoundEnded | None) -> None:
        from tui.ui.format import clean

        alone = ended is not None and ended.only_job is job
        if job.is_success:
            if alone:
                self.app.notify(f"{clean(job.short_id)} completed", title="Job done", timeout=5)
                self.notifier.notify(f"Video ready: {job.short_id}", _short_prompt(job.prompt))
        else:
            reason = clean(job.error or job.status)
            self.app.notify(f"{clean(job.short_id)} {clean(job.status)}: {reason}", title="Job ended",
                            severity="error", timeout=8)
            if alone:
                self.notifier.notify(f"Job {job.status}: {job.short_id}",
                                     f"{job.error or job.status}\n{_short_prompt(job.prompt)}", urgency="critical")
        if ended is not None and not alone:
            self.app.notify(ended.line(), title="All done", severity="information" if not ended.failed else "warning",
                            timeout=10)
            self.notifier.notify("hailuo: all done", ended.line(), urgency="critical" if ended.failed else "normal")
        if self.settings.bell and (alone or ended is not None):
            self.app.bell()
        if self.hooks.event_for(job) is not None:
            # A copy: the hook's thread must not read the job while polls change it here.
            task = asyncio.get_running_loop().create_task(self._run_hook(type(job).from_doc(job.to_doc())))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    async def _run_hook(self, job: Any) -> None:
        outcome = await asyncio.to_thread(self.hooks.run, job)
        if outcome is not None and outcome.failed and outcome.first_failure and self.app.is_running:
            self.app.hook_failed(f"{outcome.describe()} (output in {self.hooks.log_path})")
